// Shared helpers of the end-to-end tests: start and kill the real ssehub
// binary on a loopback port, sign tokens, publish, and wait for things.
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export const BIN = process.env.SSEHUB_BIN;
if (!BIN) throw new Error("SSEHUB_BIN is not set: run the tests with e2e/run.sh");

export const SECRET = "e2e-secret-0123456789abcdef0123456789";
export const KEY = "e2e-publish-key-0123456789";

// Every wait is bounded by this, so that a failure fails instead of
// hanging; no test asserts how long anything takes.
export const GUARD = 20_000;

// freePort asks the kernel for a free loopback port. The hub is then
// started on it, and restarted on the same one, so that clients reconnect
// to the URL they know.
export async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

// startHub runs the binary on port with the given flags and environment,
// and resolves once it logs that it listens. Its logs are kept for
// failure messages.
export async function startHub(port, { args = [], env = {} } = {}) {
  const proc = spawn(
    BIN,
    ["--addr", `127.0.0.1:${port}`, "--log-format", "json", "--retry", "300ms", "--shutdown-timeout", "2s", ...args],
    { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const hub = { proc, port, url: `http://127.0.0.1:${port}`, logs: "" };
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  hub.exited = exited;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ssehub did not start:\n${hub.logs}`)), GUARD);
    const onData = (chunk) => {
      hub.logs += chunk;
      if (hub.logs.includes('"msg":"listening"')) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout.setEncoding("utf8").on("data", (c) => { hub.logs += c; });
    proc.stderr.setEncoding("utf8").on("data", onData);
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`ssehub exited with ${code} before listening:\n${hub.logs}`));
    });
  });
  // Keep collecting, for diagnostics.
  return hub;
}

// kill ends the hub with signal and waits for the process to exit.
export async function kill(hub, signal = "SIGKILL") {
  if (hub.proc.exitCode !== null || hub.proc.signalCode !== null) return hub.exited;
  hub.proc.kill(signal);
  return hub.exited;
}

// signHS256 signs a subscriber token for sub, as an app's backend would,
// with claims added (a tenant_id, topics, allowed_topics).
export function signHS256(sub, secret = SECRET, ttlSeconds = 3600, claims = {}) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ ...claims, sub, iat: now, exp: now + ttlSeconds })}`;
  const sig = createHmac("sha256", secret).update(input).digest("base64url");
  return `${input}.${sig}`;
}

// publish posts an event through the HTTP API and returns its id. A
// broadcast must say so: { all: true, … }.
export async function publish(baseURL, body, key = KEY) {
  const { status, answer } = await tryPublish(baseURL, body, key);
  if (status !== 200) throw new Error(`publish ${JSON.stringify(body)}: ${status} ${JSON.stringify(answer)}`);
  return answer.id;
}

// tryPublish posts an event and returns the status and the JSON answer,
// whatever they are.
export async function tryPublish(baseURL, body, key = KEY) {
  const res = await fetch(`${baseURL}/sse/publish`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(GUARD),
  });
  return { status: res.status, answer: await res.json() };
}

// devPublishKey returns the publish key a dev hub (--dev) generated: the
// one its demo page gets with a token. A dev hub refuses a key of ours.
export async function devPublishKey(baseURL) {
  const res = await fetch(`${baseURL}/demo/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
    signal: AbortSignal.timeout(GUARD),
  });
  const answer = await res.json();
  if (res.status !== 200 || !answer.publish_key) throw new Error(`POST /demo/token: ${res.status} ${JSON.stringify(answer)}`);
  return answer.publish_key;
}

// metric returns the value of one sample of the hub's /metrics, or 0.
export async function metric(baseURL, sample) {
  const res = await fetch(`${baseURL}/metrics`, { signal: AbortSignal.timeout(GUARD) });
  const text = await res.text();
  for (const line of text.split("\n")) {
    if (line.startsWith(sample + " ")) return Number(line.slice(sample.length + 1));
  }
  return 0;
}

// waitFor polls cond until it is true, up to GUARD.
export async function waitFor(what, cond) {
  const deadline = Date.now() + GUARD;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export const newUser = () => randomUUID();

// positions takes an event id of the hub apart: the connection's position
// in each of its channels, by the channel's tag ("a" everyone, "u" the
// user), e.g. "a1796001559980081987-1.u1796001559980081987-0" gives
// { a: "1796001559980081987-1", u: "1796001559980081987-0" }. It throws on
// anything else, a cursor id ("c…", for positions over 128 bytes) too:
// these tests' streams follow two channels, whose ids are short.
export function positions(id) {
  if (typeof id !== "string" || id === "" || id.length > 128) throw new Error(`event id ${JSON.stringify(id)} is not a position`);
  const pos = {};
  for (const comp of id.split(".")) {
    const m = /^([a-z]+)(\d+(?:-\d+)*)$/.exec(comp);
    if (!m || m[1] in pos) throw new Error(`event id ${JSON.stringify(id)} is not a position`);
    pos[m[1]] = m[2];
  }
  return pos;
}

// comparePositions compares two positions in one channel as the hub's
// sse.CompareIDs does: numerically, field by field of their "-" separated
// numbers (BigInt: a field may pass 2^53), a missing field first. It
// returns -1, 0 or 1.
export function comparePositions(a, b) {
  const fa = a.split("-").map(BigInt);
  const fb = b.split("-").map(BigInt);
  for (let i = 0; i < Math.max(fa.length, fb.length); i++) {
    if (i >= fa.length) return -1;
    if (i >= fb.length) return 1;
    if (fa[i] !== fb[i]) return fa[i] < fb[i] ? -1 : 1;
  }
  return 0;
}

// moved reports whether event id next may follow prev on one stream: at
// or after it in every channel, and after it in at least one.
export function moved(prev, next) {
  const a = positions(prev);
  const b = positions(next);
  let forward = false;
  for (const [tag, p] of Object.entries(b)) {
    if (!(tag in a)) {
      forward = true;
      continue;
    }
    const c = comparePositions(p, a[tag]);
    if (c < 0) return false;
    if (c > 0) forward = true;
  }
  return forward;
}

// assertMoving checks that ids, the successive event ids of one stream,
// each move it forward from the one before.
export function assertMoving(ids, what) {
  for (let i = 1; i < ids.length; i++) {
    if (!moved(ids[i - 1], ids[i])) throw new Error(`${what}: id ${ids[i]} after ${ids[i - 1]} does not move forward (ids: ${ids.join(" ")})`);
  }
}
