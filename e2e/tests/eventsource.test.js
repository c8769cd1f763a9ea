// A non-browser client, as a React Native app would be: the npm
// `eventsource` package sending `Authorization: Bearer`, through a TCP
// proxy the test can cut, to check user targeting and the resume with
// Last-Event-ID after the stream is cut.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { EventSource } from "eventsource";
import { startHub, kill, freePort, signHS256, publish, metric, waitFor, newUser, positions, assertMoving, SECRET, KEY } from "./helpers.js";

// cutProxy forwards loopback connections to target; cut() destroys every
// open one, and while blocked it refuses new ones, as a dead network would.
async function cutProxy(targetPort) {
  const sockets = new Set();
  let blocked = false;
  const server = net.createServer((client) => {
    if (blocked) return client.destroy();
    const upstream = net.connect(targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    block() {
      blocked = true;
      for (const s of sockets) s.destroy();
    },
    unblock() { blocked = false; },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(resolve);
    }),
  };
}

// subscribe opens an EventSource for user with the token in a header and
// records every event of the given types, with the ids the client saw.
function subscribe(url, token, types) {
  const got = [];
  const seen = { opens: 0, errors: 0, lastEventIds: [] };
  const es = new EventSource(`${url}/sse/stream`, {
    fetch: (input, init) => {
      // The header a reconnect sends tells whether it resumes.
      seen.lastEventIds.push(new Headers(init.headers).get("Last-Event-ID"));
      return fetch(input, { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } });
    },
  });
  es.addEventListener("open", () => { seen.opens++; });
  es.addEventListener("error", () => { seen.errors++; });
  for (const t of types) {
    es.addEventListener(t, (ev) => got.push({ type: t, id: ev.lastEventId, data: JSON.parse(ev.data) }));
  }
  return { es, got, seen };
}

test("eventsource client: Bearer auth, user targeting, resume after a cut", async (t) => {
  const port = await freePort();
  const hub = await startHub(port, { env: { SSEHUB_JWT_SECRET: SECRET, SSEHUB_PUBLISH_KEY: KEY } });
  t.after(() => kill(hub, "SIGTERM"));
  const proxy = await cutProxy(port);
  t.after(() => proxy.close());

  const alice = newUser();
  const bob = newUser();
  const a = subscribe(proxy.url, signHS256(alice), ["connected", "update", "resync"]);
  const b = subscribe(hub.url, signHS256(bob), ["connected", "update"]);
  t.after(() => { a.es.close(); b.es.close(); });
  await waitFor("both connected", () => a.got.length === 1 && b.got.length === 1);
  assert.equal(a.got[0].type, "connected");

  // Before the cut: one for Alice, one for Bob, one for both.
  const before = [
    await publish(hub.url, { users: [alice], type: "update", data: { n: 1 } }),
    await publish(hub.url, { users: [bob], type: "update", data: { n: -1 } }),
    await publish(hub.url, { users: [alice, bob], type: "update", data: { n: 2 } }),
  ];
  await waitFor("Alice's two events", () => a.got.filter((e) => e.type === "update").length === 2);

  // The id of the last event Alice got before the cut: her position,
  // which her reconnects must send.
  const lastBeforeCut = a.got.at(-1).id;
  // Cut Alice's connection and keep the network down while events for
  // her are published: she can only get them from the history.
  const replayedBefore = await metric(hub.url, "ssekit_events_replayed_total");
  proxy.block();
  await waitFor("the client to notice the cut", () => a.seen.errors > 0);
  const during = [];
  for (let n = 3; n <= 6; n++) during.push(await publish(hub.url, { users: [alice], type: "update", data: { n } }));
  await publish(hub.url, { users: [bob], type: "update", data: { n: -2 } });
  proxy.unblock();

  await waitFor("the missed events after the reconnect", () => a.got.filter((e) => e.type === "update").length === 6);
  const after = await publish(hub.url, { users: [alice], type: "update", data: { n: 7 } });
  await waitFor("a live event after the replay", () => a.got.filter((e) => e.type === "update").length === 7);

  const updates = a.got.filter((e) => e.type === "update");
  assert.deepEqual(updates.map((e) => e.data.n), [1, 2, 3, 4, 5, 6, 7], "Alice gets hers, in order, once each");
  // Each id is Alice's position in her channels, moving forward from her
  // first connected event's (a resumed stream's connected event has no id
  // of its own); with the in-memory broker, an event's position in her own
  // channel is the id its publish answered.
  assertMoving([a.got[0].id, ...updates.map((e) => e.id)], "Alice's ids");
  assert.deepEqual(updates.map((e) => positions(e.id).u), [before[0], before[2], ...during, after], "Alice's positions in her channel");
  assert.ok(!a.got.some((e) => e.type === "resync"), "a resume within the history needs no resync");
  assert.ok(a.seen.opens >= 2, "the client reconnected by itself");
  // The first request sent none; every reconnect, the id of the last event
  // received before the cut (nothing came between).
  const [first, ...reconnects] = a.seen.lastEventIds;
  assert.equal(first, null, "the first request resumes from nothing");
  assert.ok(reconnects.length > 0 && reconnects.every((id) => id === lastBeforeCut),
    `every reconnect sent Last-Event-ID ${lastBeforeCut}: ${reconnects}`);
  assert.ok((await metric(hub.url, "ssekit_events_replayed_total")) >= replayedBefore + 4, "the hub replayed the missed events");

  await waitFor("Bob's events", () => b.got.filter((e) => e.type === "update").length === 3);
  assert.deepEqual(b.got.filter((e) => e.type === "update").map((e) => e.data.n), [-1, 2, -2], "Bob never sees Alice's events");
  assertMoving(b.got.map((e) => e.id), "Bob's ids"); // one stream, never cut

  // SIGTERM: the streams end cleanly (the clients see the end and go
  // back to reconnecting, not to a final failure) and the hub exits 0.
  const bobErrors = b.seen.errors;
  const { code, signal } = await kill(hub, "SIGTERM");
  assert.equal(code, 0, `ssehub exited with ${code} (signal ${signal}) on SIGTERM:\n${hub.logs}`);
  assert.match(hub.logs, /"msg":"stopped"/);
  await waitFor("Bob's client to see the stream end", () => b.seen.errors > bobErrors);
  assert.equal(b.es.readyState, EventSource.CONNECTING, "the client goes on trying, as it should after a clean end");
});

test("eventsource client: a refused token is final", async (t) => {
  const port = await freePort();
  const hub = await startHub(port, { env: { SSEHUB_JWT_SECRET: SECRET, SSEHUB_PUBLISH_KEY: KEY } });
  t.after(() => kill(hub, "SIGTERM"));
  const { es, seen } = subscribe(hub.url, signHS256(newUser(), "some-other-secret-0123456789abcdef"), []);
  t.after(() => es.close());
  await waitFor("the error", () => seen.errors > 0);
  await waitFor("the client to give up", () => es.readyState === EventSource.CLOSED);
  assert.equal(seen.opens, 0);
});
