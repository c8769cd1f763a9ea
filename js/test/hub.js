// A stand-in for the hub on a loopback port, for the tests that need no
// browser: it speaks the hub's side of the wire (retry:, connected,
// ids, replay after ?lastEventId=, session_ended, JSON refusals), records
// every request, and lets each test decide how a request is answered.
// Also a Web Locks stand-in, so that several clients in one process act as
// the tabs of one browser (Node has BroadcastChannel, but no Web Locks).
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

// Every wait is bounded by this, so that a failure fails instead of
// hanging; no test asserts how long anything takes, except as a floor.
export const GUARD = 10_000;

/**
 * startHub listens on 127.0.0.1. answer(req, url) may return a refusal
 * { status, body } (or { status, json }; with slow: ms, its body ends only
 * that much later), or { raw } for a 200 stream of just that text, closed
 * at once (a full hub's answer); otherwise the request gets a stream:
 * retry:, connected (with an id only when fresh, as the hub), the history
 * after its lastEventId, then what is published. While hub.hold is a
 * promise, streams wait for it before they answer.
 */
export async function startHub({ retry = 50, answer } = {}) {
  const hub = {
    requests: [], // { url, headers } of every request
    streams: new Set(), // open stream responses
    history: [], // { id, type, data }
    seq: 0,
    url: "",
    publish(type, data) {
      const ev = { id: `e${++hub.seq}`, type, data: JSON.stringify(data) };
      hub.history.push(ev);
      for (const s of hub.streams) s.write(frame(ev));
      return ev.id;
    },
    // send writes a raw frame to every open stream.
    send(text) {
      for (const s of hub.streams) s.write(text);
    },
    // drop ends every open stream, as a hub does when it rotates them.
    drop() {
      for (const s of hub.streams) s.end();
    },
    open: () => hub.streams.size,
    hold: undefined,
  };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    hub.requests.push({ url, headers: req.headers });
    const refusal = answer?.(req, url);
    if (refusal?.raw !== undefined) {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.end(refusal.raw);
      return;
    }
    if (refusal) {
      res.writeHead(refusal.status, { "Content-Type": refusal.json === false ? "text/plain" : "application/json" });
      const body = refusal.json === false ? "no" : JSON.stringify(refusal.body || {});
      if (!refusal.slow) return res.end(body);
      // The headers, and the body's first half: the rest comes later.
      res.write(body.slice(0, -1));
      setTimeout(() => res.end(body.slice(-1)), refusal.slow);
      return;
    }
    await hub.hold;
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
    const from = url.searchParams.get("lastEventId") || req.headers["last-event-id"] || "";
    const at = hub.history.findIndex((ev) => ev.id === from);
    res.write(`retry: ${retry}\n\n`);
    const id = from ? "" : `id: ${hub.history.at(-1)?.id || "e0"}\n`;
    res.write(`${id}event: connected\ndata: {"client_id":"c${hub.requests.length}","resumed":${!!from}}\n\n`);
    for (const ev of from ? hub.history.slice(at + 1) : []) res.write(frame(ev));
    hub.streams.add(res);
    res.on("close", () => hub.streams.delete(res));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  hub.url = `http://127.0.0.1:${server.address().port}/sse/stream`;
  hub.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return hub;
}

export const frame = (ev) => `id: ${ev.id}\nevent: ${ev.type}\ndata: ${ev.data}\n\n`;

// waitFor polls cond until it is true, up to GUARD.
export async function waitFor(what, cond) {
  const deadline = Date.now() + GUARD;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// record collects what a client delivers: every event, and every state.
export function record() {
  const rec = { events: [], states: [] };
  rec.on = { "*": (e) => rec.events.push(e) };
  rec.onState = (s) => rec.states.push(s);
  rec.types = (type) => rec.events.filter((e) => e.type === type);
  return rec;
}

/**
 * fakeLocks is the part of the Web Locks API the client uses:
 * request(name, { signal }, callback) grants each name to one holder at
 * a time, in the order asked, until the callback's promise settles. Each
 * "tab" of a test gets the same one, as the tabs of one browser share the
 * browser's lock manager.
 */
export function fakeLocks() {
  const queues = new Map(); // name → [{ callback, resolve, reject, signal }]
  const held = new Set();
  const next = (name) => {
    const q = queues.get(name) || [];
    if (held.has(name) || !q.length) return;
    const w = q.shift();
    held.add(name);
    // A grant waits while locks.gate is a promise: the time a browser may
    // take to hand a lock let go to the next tab.
    Promise.resolve(locks.gate)
      .then(() => w.callback())
      .then(w.resolve, w.reject)
      .finally(() => {
        held.delete(name);
        next(name);
      });
  };
  const locks = {
    gate: undefined,
    request(name, { signal }, callback) {
      return new Promise((resolve, reject) => {
        const w = { callback, resolve, reject };
        if (!queues.has(name)) queues.set(name, []);
        queues.get(name).push(w);
        signal?.addEventListener("abort", () => {
          const q = queues.get(name);
          if (q.includes(w)) {
            q.splice(q.indexOf(w), 1);
            reject(new DOMException("aborted", "AbortError"));
          }
        });
        next(name);
      });
    },
  };
  return locks;
}
