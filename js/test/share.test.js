// Tab sharing without a browser: several clients in one process act as
// the tabs of one browser, with Node's BroadcastChannel and a Web Locks
// stand-in (test/hub.js). Each "tab" gets its own event target for the
// Page Lifecycle events, so that one tab can freeze while the others run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "../src/index.js";
import { startHub, waitFor, record, fakeLocks } from "./hub.js";

Object.defineProperty(globalThis, "navigator", { value: { locks: fakeLocks() }, configurable: true });

// tab connects a client as one tab: a recorder of what it delivers, and
// its own window for freeze/resume.
function tab(t, options) {
  const win = new EventTarget();
  const rec = record();
  const saved = [globalThis.addEventListener, globalThis.removeEventListener];
  globalThis.addEventListener = win.addEventListener.bind(win);
  globalThis.removeEventListener = win.removeEventListener.bind(win);
  const client = connect({ ...rec, ...options });
  [globalThis.addEventListener, globalThis.removeEventListener] = saved;
  t.after(() => client.close());
  return { client, rec, win, messages: () => rec.types("m").map((e) => e.data) };
}

// assertOnce checks that a tab delivered the messages 1..n once each, in order.
function assertOnce(tab, n, what) {
  assert.deepEqual(tab.messages(), Array.from({ length: n }, (_, i) => i + 1), what);
}

// threeTabs starts a hub and three tabs of one stream, all live.
async function threeTabs(t, extra = {}) {
  const hub = await startHub();
  t.after(hub.close);
  const opts = { url: hub.url, scope: "u1", ...extra };
  const tabs = [tab(t, opts), tab(t, opts), tab(t, opts)];
  await waitFor("all live", () => tabs.every((x) => x.client.state === "live"));
  return { hub, opts, tabs };
}

const leaderOf = (tabs) => tabs.filter((x) => x.client.role === "leader");

test("three tabs, one stream: one leader, every tab gets every event once", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  let tokens = 0;
  const opts = { url: hub.url, topics: ["b", "a"], scope: "u1", getToken: () => `t${++tokens}` };
  const tabs = [tab(t, opts), tab(t, opts), tab(t, { ...opts, topics: ["a", "b"] })];
  await waitFor("all live", () => tabs.every((x) => x.client.state === "live"));
  assert.equal(leaderOf(tabs).length, 1);
  assert.deepEqual(tabs.map((x) => x.client.role).sort(), ["follower", "follower", "leader"]);
  for (let i = 1; i <= 20; i++) hub.publish("m", i);
  await waitFor("20 each", () => tabs.every((x) => x.messages().length === 20));
  await sleep(50);
  for (const [i, x] of tabs.entries()) assertOnce(x, 20, `tab ${i}`);
  assert.equal(hub.requests.length, 1);
  assert.equal(hub.open(), 1);
  assert.equal(tokens, 1, "only the leader asks for a token");

  // A tab that joins late learns the stream's connected event and
  // position, and nothing from before it came.
  const late = tab(t, opts);
  await waitFor("late connected", () => late.rec.types("connected").length === 1);
  assert.equal(late.client.lastEventId, "e20");
  assert.equal(late.client.state, "live");
  hub.publish("m", 21);
  await waitFor("21", () => late.messages().length === 1);
  assert.deepEqual(late.messages(), [21]);
  assert.equal(hub.open(), 1);
});

test("streams are shared only by tabs that want the same one", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  const tabs = [
    tab(t, { url: hub.url, scope: "u1" }),
    tab(t, { url: hub.url, scope: "u2" }),
    tab(t, { url: hub.url, scope: "u1", topics: ["x"] }),
    tab(t, { url: hub.url + "?v=2", scope: "u1" }),
    tab(t, { url: hub.url, scope: "u1", share: false }),
  ];
  await waitFor("all live", () => tabs.every((x) => x.client.state === "live"));
  assert.equal(hub.open(), 5);
  assert.equal(tabs[4].client.role, "solo");
});

test("the leader closes while events are published: another takes over, every tab has every event once", async (t) => {
  const { hub, opts, tabs } = await threeTabs(t);
  const [old] = leaderOf(tabs);
  let n = 0;
  for (; n < 10; n++) hub.publish("m", n + 1);
  await waitFor("10", () => tabs.every((x) => x.messages().length === 10));
  // Published as the leader goes, and while no tab has the stream.
  hub.publish("m", ++n);
  old.client.close();
  for (; n < 15; ) hub.publish("m", ++n);
  const rest = tabs.filter((x) => x !== old);
  await waitFor("a new leader", () => leaderOf(rest).length === 1);
  for (; n < 30; ) {
    hub.publish("m", ++n);
    await sleep(2);
  }
  await waitFor("30 each", () => rest.every((x) => x.messages().length >= 30));
  await sleep(50);
  for (const x of rest) assertOnce(x, 30, x.client.role);
  // The new leader resumed from the last id it saw.
  assert.equal(hub.requests.length, 2);
  assert.match(hub.requests[1].url.searchParams.get("lastEventId"), /^e\d+$/);
  await waitFor("one stream", () => hub.open() === 1);
});

test("a frozen leader lets go; frozen tabs catch up on resume; a tab that slept too long gets a resync", async (t) => {
  let resyncs = 0; // onResync, the app's handler, in every tab
  const { hub, opts, tabs } = await threeTabs(t, { onResync: () => resyncs++ });
  let n = 0;
  const publish = (count) => {
    for (let i = 0; i < count; i++) hub.publish("m", ++n);
  };
  publish(5);
  await waitFor("5", () => tabs.every((x) => x.messages().length === 5));

  const [a] = leaderOf(tabs);
  a.win.dispatchEvent(new Event("freeze"));
  publish(5);
  await waitFor("a new leader", () => leaderOf(tabs).length === 1 && leaderOf(tabs)[0] !== a);
  const follower = tabs.find((x) => x !== a && x.client.role === "follower");
  follower.win.dispatchEvent(new Event("freeze"));
  publish(5);
  const [b] = leaderOf(tabs);
  await waitFor("15 at the leader", () => b.messages().length === 15);
  assert.equal(a.messages().length, 5, "a frozen tab got events");

  a.win.dispatchEvent(new Event("resume"));
  follower.win.dispatchEvent(new Event("resume"));
  await waitFor("15 each", () => tabs.every((x) => x.messages().length === 15));
  publish(5);
  await waitFor("20 each", () => tabs.every((x) => x.messages().length === 20));
  await sleep(50);
  for (const x of tabs) assertOnce(x, 20, x.client.role);
  assert.equal(a.client.role, "follower");
  assert.equal(hub.open(), 1);
  assert.equal(tabs.flatMap((x) => x.rec.types("resync")).length, 0);

  // Asleep while more events pass than the others remember (512).
  follower.win.dispatchEvent(new Event("freeze"));
  publish(600);
  await waitFor("620 at the leader", () => b.messages().length === 620);
  follower.win.dispatchEvent(new Event("resume"));
  await waitFor("a resync", () => follower.rec.types("resync").length === 1);
  const [resync] = follower.rec.types("resync");
  assert.deepEqual(resync.data, { reason: "history_unavailable", last_event_id: "e20", channels: ["all"] });
  assert.equal(resyncs, 1, "onResync calls");
  assert.equal(follower.client.lastEventId, "e620");
  publish(1);
  await waitFor("621", () => follower.messages().at(-1) === 621);
  assert.equal(follower.messages().length, 21);
});

test("a refusal ends every tab of the stream; a tab's own close leaves the others running", async (t) => {
  let refuse = false;
  const hub = await startHub({ answer: () => (refuse ? { status: 403, body: { error: "topic_forbidden", topics: ["x"] } } : null) });
  t.after(hub.close);
  const opts = { url: hub.url, topics: ["x"] };
  const tabs = [tab(t, opts), tab(t, opts)];
  await waitFor("all live", () => tabs.every((x) => x.client.state === "live"));
  const [follower] = tabs.filter((x) => x.client.role === "follower");
  follower.client.close();
  assert.equal(leaderOf(tabs)[0].client.state, "live");

  const more = tab(t, opts);
  await waitFor("live", () => more.client.state === "live");
  refuse = true;
  hub.drop();
  await waitFor("all closed", () => [...tabs, more].every((x) => x.client.state === "closed"));
  assert.equal(more.client.reason.code, "topic_forbidden");
  assert.deepEqual(leaderOf(tabs)[0].client.reason.topics, ["x"]);
});

test("a leader that freezes while a refusal's body is still coming opens nothing when it is a follower again", async (t) => {
  // The leader's second request gets a 503 whose body ends 300 ms after
  // its headers; it freezes in between, another tab takes over, and it
  // wakes as a follower.
  const hub = await startHub({ answer: () => hub.requests.length === 2 && { status: 503, body: { error: "x" }, slow: 300 } });
  t.after(hub.close);
  const opts = { url: hub.url, scope: "u1", maxRetry: 300 };
  const tabs = [tab(t, opts), tab(t, opts)];
  await waitFor("all live", () => tabs.every((x) => x.client.state === "live"));
  const [a] = leaderOf(tabs);
  const b = tabs.find((x) => x !== a);
  hub.drop();
  await waitFor("the second request", () => hub.requests.length === 2);
  await sleep(100); // its headers are in, its body is not
  a.win.dispatchEvent(new Event("freeze"));
  await waitFor("b leads", () => b.client.role === "leader" && hub.open() === 1);
  a.win.dispatchEvent(new Event("resume"));
  await sleep(1200);
  assert.equal(a.client.role, "follower");
  assert.equal(hub.requests.length, 3, "the frozen leader's refusal opened a stream");
  assert.equal(hub.open(), 1);
  hub.publish("m", 1);
  await waitFor("m 1", () => tabs.every((x) => x.messages().length === 1));
  await sleep(50);
  for (const x of tabs) assertOnce(x, 1, x.client.role);
});

test("a tab that wakes while no tab leads asks the next leader, and misses nothing", async (t) => {
  const { hub, opts, tabs } = await threeTabs(t);
  const [a] = leaderOf(tabs);
  const [b, w] = tabs.filter((x) => x !== a);
  w.win.dispatchEvent(new Event("freeze"));
  for (let i = 1; i <= 5; i++) hub.publish("m", i);
  await waitFor("5 at a and b", () => a.messages().length === 5 && b.messages().length === 5);

  // The leader goes, and the browser is slow to hand the lock to the next
  // tab: w wakes and says hello while no tab leads.
  let grant;
  navigator.locks.gate = new Promise((resolve) => (grant = resolve));
  a.win.dispatchEvent(new Event("freeze"));
  w.win.dispatchEvent(new Event("resume"));
  await sleep(100);
  assert.equal(leaderOf(tabs).length, 0);
  navigator.locks.gate = undefined;
  grant();
  await waitFor("b leads", () => b.client.role === "leader");
  await waitFor("w caught up", () => w.messages().length === 5);
  for (let i = 6; i <= 8; i++) hub.publish("m", i);
  await waitFor("8 at b and w", () => b.messages().length === 8 && w.messages().length === 8);
  await sleep(50);
  assertOnce(b, 8, "b");
  assertOnce(w, 8, "w");
  assert.equal(w.client.lastEventId, "e8");
  assert.equal(tabs.flatMap((x) => x.rec.types("resync")).length, 0);
});

test("the old leader's relays in flight reach the new leader: a tab that had them is neither resynced nor moved back", async (t) => {
  const { hub, opts, tabs } = await threeTabs(t);
  const [a] = leaderOf(tabs);
  const [b, w] = tabs.filter((x) => x !== a); // b waits for the lock before w
  for (let i = 1; i <= 5; i++) hub.publish("m", i);
  await waitFor("5 each", () => tabs.every((x) => x.messages().length === 5));

  // a relays 6 and freezes at once: b leads before it reads the relay,
  // and its stream waits at the hub. w gets 6, sleeps and wakes, and asks
  // b from there.
  let release;
  const held = new Promise((resolve) => (release = resolve));
  a.client.on("m", (e) => e.data === 6 && queueMicrotask(() => a.win.dispatchEvent(new Event("freeze"))));
  w.client.on("m", (e) => {
    if (e.data !== 6) return;
    queueMicrotask(() => {
      w.win.dispatchEvent(new Event("freeze"));
      w.win.dispatchEvent(new Event("resume"));
    });
  });
  hub.hold = held;
  hub.publish("m", 6);
  await waitFor("b leads", () => b.client.role === "leader");
  await waitFor("b has 6", () => b.messages().length === 6);
  await sleep(100);
  assert.equal(w.client.lastEventId, "e6", "w's last id moved back");
  assert.equal(w.rec.types("resync").length, 0, "w was resynced");
  release();
  await waitFor("b's stream", () => hub.open() === 1);
  for (let i = 7; i <= 8; i++) hub.publish("m", i);
  await waitFor("8 at b and w", () => b.messages().length === 8 && w.messages().length === 8);
  await sleep(50);
  assertOnce(b, 8, "b");
  assertOnce(w, 8, "w");
  assert.equal(hub.requests.at(-1).url.searchParams.get("lastEventId"), "e5");
});

test("a tab ahead of the new leader keeps its last id: a catch-up never moves it back", async (t) => {
  const { hub, opts, tabs } = await threeTabs(t);
  const [a] = leaderOf(tabs);
  const [b, w] = tabs.filter((x) => x !== a);
  for (let i = 1; i <= 5; i++) hub.publish("m", i);
  await waitFor("5 each", () => tabs.every((x) => x.messages().length === 5));

  // b sleeps through 6, which w gets; then w sleeps, a goes, and b wakes
  // and leads from 5, its stream waiting at the hub. w wakes and asks b
  // from 6, which b has not seen.
  b.win.dispatchEvent(new Event("freeze"));
  hub.publish("m", 6);
  await waitFor("6 at w", () => w.messages().length === 6);
  w.win.dispatchEvent(new Event("freeze"));
  let release;
  hub.hold = new Promise((resolve) => (release = resolve));
  a.win.dispatchEvent(new Event("freeze"));
  b.win.dispatchEvent(new Event("resume"));
  await waitFor("b leads", () => b.client.role === "leader");
  w.win.dispatchEvent(new Event("resume"));
  await sleep(100);
  assert.equal(b.client.lastEventId, "e5");
  assert.equal(w.client.lastEventId, "e6", "w's last id moved back");
  release();
  hub.publish("m", 7);
  await waitFor("7 at b and w", () => b.messages().length === 7 && w.messages().length === 7);
  await sleep(50);
  assertOnce(b, 7, "b");
  assertOnce(w, 7, "w");
  assert.equal(w.client.lastEventId, "e7");
});
