// The client against a stand-in hub on a loopback port, one tab (no
// sharing: Node has no Web Locks): events and handlers, resume, backoff,
// token refresh, refusals, close.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, backoff } from "../src/index.js";
import { startHub, waitFor, record } from "./hub.js";

test("no Web Locks here: the client is solo", () => {
  assert.equal(globalThis.navigator?.locks, undefined);
});

test("events reach the handlers of their type and *, data parsed, once", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  const rec = record();
  const notes = [];
  const client = connect({ url: hub.url, topics: ["a", "b c"], ...rec, on: { ...rec.on, note: (e) => notes.push(e) } });
  t.after(() => client.close());
  assert.equal(client.state, "connecting");
  assert.equal(client.role, "solo");
  await waitFor("live", () => client.state === "live");
  await waitFor("connected", () => rec.types("connected").length === 1);
  assert.deepEqual(hub.requests[0].url.searchParams.getAll("topic"), ["a", "b c"]);
  assert.equal(hub.requests[0].headers.accept, "text/event-stream");
  assert.equal(hub.requests[0].headers.authorization, undefined);

  const off = client.on("note", (e) => notes.push({ second: e.id }));
  hub.publish("note", { n: 1 });
  hub.publish("other", [1, 2]);
  hub.send("event: plain\ndata: not json\n\n"); // no id: never taken for a repeat
  hub.send("event: plain\ndata: not json\n\n");
  await waitFor("4 events", () => rec.events.length === 5);
  off();
  hub.publish("note", { n: 2 });
  await waitFor("the last note", () => rec.events.length === 6);

  assert.deepEqual(
    rec.events.slice(1).map((e) => [e.type, e.id, e.data]),
    [
      ["note", "e1", { n: 1 }],
      ["other", "e2", [1, 2]],
      ["plain", "", "not json"],
      ["plain", "", "not json"],
      ["note", "e3", { n: 2 }],
    ],
  );
  assert.equal(rec.events[1].text, '{"n":1}');
  assert.deepEqual(notes.map((e) => e.data?.n ?? e), [1, { second: "e1" }, 2]);
  assert.equal(client.lastEventId, "e3");
  assert.deepEqual(rec.states.map((s) => s.state), ["live"]);
});

test("a dropped stream comes back from the last id, no sooner than the hub's retry:", async (t) => {
  const hub = await startHub({ retry: 300 });
  t.after(hub.close);
  const rec = record();
  const client = connect({ url: hub.url, ...rec });
  t.after(() => client.close());
  await waitFor("connected", () => rec.types("connected").length === 1);
  hub.publish("m", 1);
  await waitFor("m 1", () => rec.types("m").length === 1);

  hub.drop();
  const dropped = Date.now();
  await waitFor("retrying", () => client.state === "retrying");
  assert.equal(client.reason.code, "ended");
  hub.publish("m", 2); // while no stream is open: replayed on resume
  await waitFor("a second request", () => hub.requests.length === 2);
  assert.ok(Date.now() - dropped >= 300, "came back sooner than retry: 300");
  assert.equal(hub.requests[1].url.searchParams.get("lastEventId"), "e1");
  await waitFor("m 2", () => rec.types("m").length === 2);
  hub.publish("m", 3);
  await waitFor("m 3", () => rec.types("m").length === 3);
  assert.deepEqual(rec.types("m").map((e) => e.data), [1, 2, 3]);
  assert.deepEqual(rec.states.map((s) => s.state), ["live", "retrying", "live"]);
  // The resumed connected event has no id: it does not move the position.
  assert.deepEqual(rec.types("connected").map((e) => [e.id, e.data.resumed]), [["e0", false], ["", true]]);
});

test("backoff: full jitter above the server's retry:, capped", () => {
  for (const tries of [1, 2, 3, 10]) {
    assert.equal(backoff(1000, 30000, tries, 0), 1000, `tries ${tries}, random 0`);
  }
  assert.equal(backoff(1000, 30000, 1, 0.999999) < 2000, true);
  assert.equal(Math.round(backoff(1000, 30000, 3, 0.5)), 4500); // 1000 + 0.5·(8000 − 1000)
  assert.equal(Math.round(backoff(1000, 30000, 20, 0.5)), 15500); // capped at 30000
  assert.equal(backoff(40000, 30000, 5, 0.7), 40000); // the server's retry: wins over the cap
  // Spread, not in lockstep: 200 draws at tries 4 cover most of [floor, 16·floor).
  const draws = Array.from({ length: 200 }, () => backoff(300, 30000, 4));
  assert.ok(draws.every((d) => d >= 300 && d < 4800));
  assert.ok(Math.max(...draws) - Math.min(...draws) > 3000, "no jitter");
  // A retry: 0 (or anything under 250 ms) does not make a loop.
  assert.equal(backoff(0, 30000, 1, 0), 250);
  assert.equal(backoff(0, 30000, 5, 0.999), 250 + 0.999 * (8000 - 250));
  assert.equal(backoff(100, 30000, 1, 0), 250);
});

test("a full hub (200 with only retry: 0, then the end): not live, and not asked again in a loop", async (t) => {
  const hub = await startHub({ answer: () => ({ raw: "retry: 0\n\n" }) });
  t.after(hub.close);
  const rec = record();
  const client = connect({ url: hub.url, ...rec });
  t.after(() => client.close());
  await sleep(1000);
  client.close();
  // 525 a second before the floor of 250 ms: now at most 1 + 1000/250.
  assert.ok(hub.requests.length >= 2 && hub.requests.length <= 5, `${hub.requests.length} requests in 1 s`);
  const states = rec.states.map((s) => s.state);
  assert.ok(!states.includes("live"), `went live on headers alone: ${states}`);
  assert.deepEqual(new Set(states), new Set(["retrying", "closed"]));
  assert.equal(rec.states[0].reason.code, "ended");
});

test("close while a refusal's body is still coming: the client stays closed and opens nothing more", async (t) => {
  // The first request gets a stream (the token is then one a stream
  // accepted), the next a refusal whose body ends 300 ms after its
  // headers; close() comes in between.
  await Promise.all(
    [503, 429, 408, 401].map(async (status) => {
      const hub = await startHub({ answer: (req) => hub.requests.length > 1 && { status, body: { error: "x" }, slow: 300 } });
      t.after(hub.close);
      const rec = record();
      const client = connect({ url: hub.url, maxRetry: 300, getToken: () => "t", ...rec });
      t.after(() => client.close());
      await waitFor("live", () => client.state === "live");
      hub.drop();
      await waitFor("the second request", () => hub.requests.length === 2);
      await sleep(100); // its headers are in, its body is not
      client.close();
      await sleep(1200);
      assert.equal(client.state, "closed", `${status}`);
      assert.equal(hub.requests.length, 2, `${status}: a closed client asked again`);
      assert.deepEqual(rec.states.at(-1), { state: "closed", reason: { code: "closed" }, role: "solo" }, `${status}`);
    }),
  );
});

test("a network failure is retried with growing waits; state retrying with the reason", async (t) => {
  // A port nothing listens on: every attempt fails at once.
  const hub = await startHub();
  const url = hub.url;
  await hub.close();
  const rec = record();
  const client = connect({ url, maxRetry: 400, ...rec });
  t.after(() => client.close());
  await sleep(1500);
  client.close();
  const failures = rec.states.filter((s) => s.state === "retrying");
  assert.ok(failures.length >= 2, `attempts: ${failures.length}`);
  // With a floor of 1000 ms (no retry: heard), at most two attempts fit in 1.5 s.
  assert.ok(failures.length <= 2, `attempts: ${failures.length}`);
  assert.equal(failures[0].reason.code, "network");
  assert.deepEqual(rec.states.at(-1), { state: "closed", reason: { code: "closed" }, role: "solo" });
});

test("getToken: Bearer header, or tokenParam; session_ended expired refreshes and resumes from its id", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  const asked = [];
  let n = 0;
  const rec = record();
  const client = connect({
    url: hub.url,
    getToken: async (reason) => {
      asked.push(reason?.code);
      return `tok${++n}`;
    },
    ...rec,
  });
  t.after(() => client.close());
  await waitFor("connected", () => rec.types("connected").length === 1);
  assert.equal(hub.requests[0].headers.authorization, "Bearer tok1");
  hub.publish("m", 1);
  await waitFor("m 1", () => rec.types("m").length === 1);

  // The hub's last event of an expired stream: its id is the position.
  hub.send('id: e1\nevent: session_ended\ndata: {"reason":"expired","last_event_id":"e1"}\n\n');
  await waitFor("a second request", () => hub.requests.length === 2);
  hub.publish("m", 2);
  await waitFor("m 2", () => rec.types("m").length === 2);
  assert.equal(hub.requests[1].headers.authorization, "Bearer tok2");
  assert.equal(hub.requests[1].url.searchParams.get("lastEventId"), "e1");
  assert.deepEqual(asked, [undefined, "credentials_expired"]);
  assert.equal(rec.types("session_ended").length, 1);
  assert.equal(hub.open(), 1, "the old stream is still open");
  assert.deepEqual(rec.types("m").map((e) => e.data), [1, 2]);

  // In the query instead, for a hub that reads ?access_token=.
  const other = connect({ url: hub.url, getToken: () => "q1", tokenParam: "access_token" });
  t.after(() => other.close());
  await waitFor("a third request", () => hub.requests.length === 3);
  assert.equal(hub.requests[2].url.searchParams.get("access_token"), "q1");
  assert.equal(hub.requests[2].headers.authorization, undefined);
});

test("401 credentials_expired at connect: a new token and resume; a new token refused as expired backs off", async (t) => {
  let expired = 3; // the first three requests are refused as expired
  const hub = await startHub({
    answer: () => (expired-- > 0 ? { status: 401, body: { error: "credentials_expired", message: "token expired" } } : null),
  });
  t.after(hub.close);
  const asked = [];
  const rec = record();
  const started = Date.now();
  // maxRetry: 1000 keeps each backoff at the floor (1000 ms before any retry:).
  const client = connect({ url: hub.url, lastEventId: "e0", maxRetry: 1000, getToken: (r) => (asked.push(r?.code), "t"), ...rec });
  t.after(() => client.close());
  await waitFor("live", () => client.state === "live");
  // Each token is new and refused, so each next one comes after a backoff
  // of at least the floor: not in a loop.
  assert.equal(hub.requests.length, 4);
  assert.ok(Date.now() - started >= 3000, "refreshed sooner than the backoff allows");
  assert.deepEqual(asked, [undefined, "credentials_expired", "credentials_expired", "credentials_expired"]);
  assert.deepEqual(
    hub.requests.map((r) => r.url.searchParams.get("lastEventId")),
    ["e0", "e0", "e0", "e0"],
  );
  assert.deepEqual(rec.states[0], {
    state: "retrying",
    reason: { code: "credentials_expired", status: 401, message: "token expired", topics: undefined },
    role: "solo",
  });
});

test("401 for a token a stream accepted before: one new token; refused again: closed", async (t) => {
  let refuse = false;
  const hub = await startHub({ answer: () => (refuse ? { status: 401, body: { error: "unauthorized", message: "bad token" } } : null) });
  t.after(hub.close);
  const asked = [];
  const rec = record();
  const client = connect({ url: hub.url, getToken: (r) => (asked.push(r?.code), "t"), ...rec });
  t.after(() => client.close());
  await waitFor("live", () => client.state === "live");
  refuse = true; // the hub restarted with a new secret
  hub.drop();
  await waitFor("closed", () => client.state === "closed");
  assert.deepEqual(asked, [undefined, "unauthorized"]);
  assert.equal(hub.requests.length, 3);
  assert.deepEqual(client.reason, { code: "unauthorized", status: 401, message: "bad token", topics: undefined });
  await sleep(1200);
  assert.equal(hub.requests.length, 3, "a closed client tried again");
});

test("a refusal that a retry would not change ends the client with its reason; 5xx is retried", async (t) => {
  for (const { answer, reason, state } of [
    {
      answer: { status: 403, body: { error: "topic_forbidden", message: "not allowed", topics: ["x"] } },
      reason: { code: "topic_forbidden", status: 403, message: "not allowed", topics: ["x"] },
      state: "closed",
    },
    { answer: { status: 400, body: { error: "invalid_topic", topics: ["a b"] } }, reason: { code: "invalid_topic", status: 400, message: undefined, topics: ["a b"] }, state: "closed" },
    { answer: { status: 401, body: { error: "unauthorized" } }, reason: { code: "unauthorized", status: 401, message: undefined, topics: undefined }, state: "closed" },
    { answer: { status: 404, json: false }, reason: { code: "http_404", status: 404, message: undefined, topics: undefined }, state: "closed" },
    { answer: { status: 503, json: false }, reason: { code: "http_503", status: 503, message: undefined, topics: undefined }, state: "retrying" },
  ]) {
    const hub = await startHub({ answer: () => answer });
    const client = connect({ url: hub.url, topics: ["x"] }); // no getToken: a 401 cannot be mended
    await waitFor(state, () => client.state === state);
    assert.deepEqual(client.reason, reason, JSON.stringify(answer));
    client.close();
    await hub.close();
    assert.equal(hub.requests.length, 1, JSON.stringify(answer));
  }
});

test("session_ended revoked: closed, no new token asked", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  let asked = 0;
  const client = connect({ url: hub.url, getToken: () => (asked++, "t") });
  await waitFor("live", () => client.state === "live");
  hub.send('id: e0\nevent: session_ended\ndata: {"reason":"revoked","last_event_id":"e0"}\n\n');
  await waitFor("closed", () => client.state === "closed");
  assert.equal(client.reason.code, "session_revoked");
  await waitFor("the stream closed", () => hub.open() === 0);
  assert.equal(asked, 1);
  assert.equal(hub.requests.length, 1);
});

test("close ends the stream; a throwing handler does not break it", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  // As a browser reports it (window.onerror); Node 20 has no reportError.
  const thrown = [];
  globalThis.reportError = (err) => thrown.push(err.message);
  t.after(() => delete globalThis.reportError);
  const rec = record();
  const client = connect({ url: hub.url, ...rec });
  client.on("m", (e) => {
    if (e.data === 1) throw new Error("handler bug");
  });
  await waitFor("connected", () => rec.types("connected").length === 1);
  hub.publish("m", 1);
  hub.publish("m", 2);
  await waitFor("m 2", () => rec.types("m").length === 2);
  await waitFor("the error", () => thrown.length === 1);
  assert.deepEqual(thrown, ["handler bug"]);
  assert.equal(hub.requests.length, 1, "the stream broke");

  client.close();
  await waitFor("the stream closed", () => hub.open() === 0);
  assert.deepEqual(client.reason, { code: "closed" });
  hub.publish("m", 3);
  await sleep(100);
  assert.equal(rec.types("m").length, 2);
  assert.equal(hub.requests.length, 1);
});

test("a client closed before it started opens nothing", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  const client = connect({ url: hub.url, getToken: () => "t" });
  client.close();
  await sleep(100);
  assert.equal(hub.requests.length, 0);
  assert.equal(client.state, "closed");
});
