// Tab sharing in a real browser (headless Chromium): tabs of the demo
// page in one browser context share one stream (Web Locks elect the tab
// that holds it, BroadcastChannel relays its events), and every tab gets
// every event exactly once: when the tab that holds the stream closes or
// freezes while events are published, when the token expires, and, where
// BroadcastChannel or Web Locks are missing, with a stream per tab.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium } from "playwright-core";
import { startHub, kill, freePort, publish, devPublishKey, metric, waitFor, GUARD } from "./helpers.js";

const STREAMS = "ssekit_connected_clients";
const HOLDS = "this tab holds it";

// browserContext starts Chromium and returns a new context, both closed
// after t; openTab opens the demo page in it. A page error fails t.
async function browserContext(t, { init } = {}) {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  if (init) await context.addInitScript(init);
  const errors = [];
  t.after(() => assert.deepEqual(errors, [], "a page threw"));
  context.openTab = async (url) => {
    const page = await context.newPage();
    page.setDefaultTimeout(GUARD);
    page.on("pageerror", (err) => errors.push(err));
    await page.goto(url);
    await page.locator('#state[data-state="open"]').waitFor();
    return page;
  };
  return context;
}

// messages returns the texts of the message events in a tab's log,
// oldest first.
async function messages(page) {
  const data = await page.locator('#log li[data-type="message"] pre').allTextContents();
  return data.map((d) => JSON.parse(d).text).reverse();
}

// assertOnce checks that each tab's log has every text of sent, once and
// in order, and nothing else.
async function assertOnce(tabs, sent) {
  for (const [i, page] of tabs.entries()) assert.deepEqual(await messages(page), sent, `tab ${i}`);
}

// allHave waits until every tab's log has as many messages as sent.
function allHave(tabs, sent) {
  return waitFor(`${sent.length} messages in every tab`, async () => {
    for (const page of tabs) if ((await messages(page)).length < sent.length) return false;
    return true;
  });
}

// leaders returns the tabs that say they hold the stream.
async function leaders(tabs) {
  const out = [];
  for (const page of tabs) if ((await page.locator("#fact-stream").textContent()).startsWith(HOLDS)) out.push(page);
  return out;
}

// devHub starts a dev hub, and returns it with a sender of numbered
// messages to the demo user of the tabs.
async function devHub(t) {
  const hub = await startHub(await freePort(), { args: ["--dev"] });
  t.after(() => kill(hub, "SIGTERM"));
  const key = await devPublishKey(hub.url);
  hub.sent = [];
  hub.sendTo = async (user, phase = "m") => {
    const text = `${phase}-${String(hub.sent.length).padStart(3, "0")}`;
    await publish(hub.url, { users: [user], type: "message", data: { text } }, key);
    hub.sent.push(text);
  };
  return hub;
}

// threeTabs opens the first tab, which picks the demo user and stores it,
// then two more of the same user.
async function threeTabs(context, url) {
  const first = await context.openTab(url);
  const rest = [await context.openTab(url), await context.openTab(url)];
  const tabs = [first, ...rest];
  const user = await first.locator("#user").inputValue();
  for (const page of rest) assert.equal(await page.locator("#user").inputValue(), user);
  return { tabs, user };
}

test("three tabs in one browser hold one stream, and each gets every event once", async (t) => {
  const hub = await devHub(t);
  const context = await browserContext(t);
  const { tabs, user } = await threeTabs(context, hub.url + "/");
  assert.equal((await leaders(tabs)).length, 1);
  assert.equal(await metric(hub.url, STREAMS), 1);
  // Tabs that joined later learnt the shared stream's connection.
  const clientIds = await Promise.all(tabs.map((p) => p.locator("#fact-client").textContent()));
  assert.equal(new Set(clientIds).size, 1, `client ids: ${clientIds}`);

  for (let i = 0; i < 20; i++) await hub.sendTo(user);
  await allHave(tabs, hub.sent);
  await sleep(200); // a repeat would have arrived by now
  await assertOnce(tabs, hub.sent);
  assert.equal(await metric(hub.url, STREAMS), 1);
});

test("the tab that holds the stream closes while events are published: another takes over, none missed or repeated", async (t) => {
  const hub = await devHub(t);
  const context = await browserContext(t);
  const { tabs, user } = await threeTabs(context, hub.url + "/");
  const [leader] = await leaders(tabs);
  const rest = tabs.filter((p) => p !== leader);

  // Published at a steady pace; the leader's tab closes a third of the way.
  for (let i = 0; i < 60; i++) {
    if (i === 20) await leader.close();
    await hub.sendTo(user);
    await sleep(20);
  }
  await allHave(rest, hub.sent);
  await sleep(200);
  await assertOnce(rest, hub.sent);
  assert.equal((await leaders(rest)).length, 1);
  await waitFor("one stream", async () => (await metric(hub.url, STREAMS)) === 1);
});

test("a frozen leader lets another tab take over; on resume it catches up, with every event once", async (t) => {
  const hub = await devHub(t);
  const context = await browserContext(t);
  const { tabs, user } = await threeTabs(context, hub.url + "/");
  const [leader] = await leaders(tabs);
  const rest = tabs.filter((p) => p !== leader);
  for (let i = 0; i < 5; i++) await hub.sendTo(user);
  await allHave(tabs, hub.sent);

  // Chrome fires freeze at a tab it is about to freeze (a background tab,
  // on a phone or with Memory Saver), and resume when it thaws it.
  // Headless Chromium freezes no visible page (Page.setWebLifecycleState
  // fires nothing here), so the test fires the events Chrome fires; what
  // the client does on freeze (stop its stream, close its channel, let go
  // of the lock) is what makes a frozen tab deaf, as a real one is.
  const lifecycle = (type) => leader.evaluate((type) => document.dispatchEvent(new Event(type)), type);
  await lifecycle("freeze");
  for (let i = 0; i < 20; i++) {
    await hub.sendTo(user);
    await sleep(20);
  }
  await allHave(rest, hub.sent);
  assert.equal((await leaders(rest)).length, 1, "no other tab took over");
  await waitFor("one stream", async () => (await metric(hub.url, STREAMS)) === 1);

  assert.equal((await messages(leader)).length, 5, "a frozen tab got events");
  await lifecycle("resume");
  for (let i = 0; i < 5; i++) await hub.sendTo(user);
  await allHave(tabs, hub.sent);
  await sleep(200);
  await assertOnce(tabs, hub.sent);
  assert.equal((await leaders(tabs)).length, 1);
  assert.equal(await leader.locator('#log li[data-type="resync"]').count(), 0);
});

test("a token that expires under shared tabs: refreshed by the tab that holds the stream, resumed with no gap", async (t) => {
  const hub = await devHub(t);
  const context = await browserContext(t);
  const { tabs, user } = await threeTabs(context, hub.url + "/?ttl=3s");
  const [leader] = await leaders(tabs);
  const refreshed = leader.locator('#log li[data-type="system"]', { hasText: "Token refreshed, resumed" });
  // Paced, and bounded: the token lives 2 to 3 s; two refreshes in at most 200 events.
  for (let i = 0; (await refreshed.count()) < 2; i++) {
    assert.ok(i < 200, "no two refreshes after 200 events");
    await hub.sendTo(user);
    await sleep(40);
  }
  for (let i = 0; i < 5; i++) await hub.sendTo(user);
  await allHave(tabs, hub.sent);
  await sleep(200);
  await assertOnce(tabs, hub.sent);
  for (const page of tabs) assert.ok((await page.locator('#log li[data-type="session_ended"]').count()) >= 2);
  assert.equal(await metric(hub.url, STREAMS), 1);
});

for (const { what, init } of [
  { what: "BroadcastChannel", init: () => delete window.BroadcastChannel },
  { what: "Web Locks", init: () => Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined }) },
]) {
  test(`without ${what} each tab has its own stream, and gets every event once`, async (t) => {
    const hub = await devHub(t);
    const context = await browserContext(t, { init });
    const first = await context.openTab(hub.url + "/");
    const second = await context.openTab(hub.url + "/");
    const user = await first.locator("#user").inputValue();
    for (const page of [first, second]) assert.equal(await page.locator("#fact-stream").textContent(), "this tab's own");
    await waitFor("two streams", async () => (await metric(hub.url, STREAMS)) === 2);
    for (let i = 0; i < 10; i++) await hub.sendTo(user);
    await allHave([first, second], hub.sent);
    await sleep(200);
    await assertOnce([first, second], hub.sent);
  });
}
