// The demo page in a real browser (headless Chromium through
// playwright-core): it connects with a real EventSource, shows events
// published through the HTTP API, and reconnects by itself when the hub
// is killed and restarted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch, logEntry } from "./chromium.js";
import { startHub, kill, freePort, signHS256, publish, tryPublish, devPublishKey, newUser, positions, moved, SECRET, KEY } from "./helpers.js";

// The README's screenshot is rewritten only on request (UPDATE_SCREENSHOT=1
// bash e2e/run.sh), so that a test run leaves the work tree clean; otherwise
// the screenshot is still taken, to a temporary file.
const SCREENSHOT = process.env.UPDATE_SCREENSHOT === "1"
  ? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../docs/demo.png")
  : path.join(os.tmpdir(), `ssehub-demo-${process.pid}.png`);

test("demo page in dev mode: live events, toast, badge, publish form, survives a restart", async (t) => {
  const port = await freePort();
  // Dev mode generates its own secrets: the test publishes with the key
  // the demo page gets too.
  const args = ["--dev"];
  let hub = await startHub(port, { args });
  t.after(() => kill(hub, "SIGTERM"));
  let key = await devPublishKey(hub.url);
  const page = await launch(t);

  await page.goto(hub.url + "/");
  await page.locator('#state[data-state="open"]').waitFor();
  assert.equal(await page.locator("#mode").textContent(), "dev mode");
  const user = await page.locator("#user").inputValue();
  assert.match(user, /^[0-9a-f-]{36}$/);
  await logEntry(page, "connected", "client_id");

  // Published by a backend through the HTTP API.
  await publish(hub.url, { users: [user], type: "new_item", data: { item_type: "post", item_id: "42", item: { title: "Launch notes" } } }, key);
  await logEntry(page, "new_item", "Launch notes");
  await publish(hub.url, { users: [user], type: "badge_update", data: { count: 3 } }, key);
  await page.locator('#badge[data-count="3"]').waitFor();
  await publish(hub.url, { all: true, type: "message", data: { text: "Deploy finished for everyone" } }, key);
  await logEntry(page, "message", "Deploy finished");
  // Not for this user: must not show up.
  await publish(hub.url, { users: [newUser()], type: "message", data: { text: "someone else's" } }, key);

  // Published from the page's own form, to "me".
  await page.selectOption("#type", "notification");
  await page.fill("#data", JSON.stringify({ title: "Ada Lovelace followed you", message: "Say hello back!" }, null, 2));
  await page.click("#publish-btn");
  await page.locator(".toast", { hasText: "Ada Lovelace followed you" }).waitFor();
  await logEntry(page, "notification", "Ada Lovelace");
  assert.match(await page.locator("#publish-result").textContent(), /^Published \d+-\d+$/);
  await publish(hub.url, { users: [user], type: "notification", data: { title: "Build #128 passed", message: "main is green: 412 tests in 38 s" } }, key);
  await page.locator(".toast", { hasText: "Build #128 passed" }).waitFor();
  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  // From the top, as a person first sees the page (publishing scrolled to
  // the form), the whole page, with finished animations, so that the
  // toasts are shown as a person sees them.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: SCREENSHOT, animations: "disabled", fullPage: true });
  assert.equal(await page.locator("#log li", { hasText: "someone else's" }).count(), 0, "another user's event reached the page");

  // Kill the hub (no goodbye) and start a new one on the same port. In dev
  // mode the new one has a new secret, so the old cookie is refused (401);
  // the page gets a new token by itself and resumes from its last id,
  // which died with the in-memory history: it is told so with a resync.
  await kill(hub, "SIGKILL");
  await page.locator('#state[data-state="reconnecting"]').waitFor();
  hub = await startHub(port, { args });
  key = await devPublishKey(hub.url);
  await logEntry(page, "resync", "history_unavailable");
  await page.locator('#state[data-state="open"]').waitFor();
  await publish(hub.url, { users: [user], type: "message", data: { text: "after the restart" } }, key);
  await logEntry(page, "message", "after the restart");
});

test("demo page outside dev mode: a pasted token, and the browser's own reconnect", async (t) => {
  const port = await freePort();
  const env = { SSEHUB_JWT_SECRET: SECRET, SSEHUB_PUBLISH_KEY: KEY };
  let hub = await startHub(port, { env });
  t.after(() => kill(hub, "SIGTERM"));
  const page = await launch(t);

  await page.goto(hub.url + "/");
  assert.equal(await page.locator("#mode").textContent(), "debugger");
  await page.locator("#token").waitFor();
  const user = newUser();
  await page.fill("#token", signHS256(user));
  await page.fill("#key", KEY);
  await page.click("#connect");
  await page.locator('#state[data-state="open"]').waitFor();
  assert.equal(await page.locator("#fact-user").textContent(), user);

  await logEntry(page, "connected", "client_id");
  const connectedId = await page.locator("#fact-last").textContent();
  const id = await publish(hub.url, { users: [user], type: "notification", data: { title: "Hello from curl" } });
  await page.locator(".toast", { hasText: "Hello from curl" }).waitFor();
  // The page shows the stream's position after the event: past the
  // connected event's, at the publish's id in the user's channel (the
  // in-memory broker's positions are its publish ids).
  const lastId = await page.locator("#fact-last").textContent();
  assert.ok(moved(connectedId, lastId), `last event id ${lastId} after ${connectedId} does not move forward`);
  assert.equal(positions(lastId).u, id);

  // Same secret after the restart: the EventSource reconnects by itself
  // with Last-Event-ID, the id of the last event it got, and gets a resync
  // that echoes it, since the history is gone.
  await kill(hub, "SIGKILL");
  await page.locator('#state[data-state="reconnecting"]').waitFor();
  hub = await startHub(port, { env });
  await logEntry(page, "resync", `"last_event_id":"${lastId}"`);
  await page.locator('#state[data-state="open"]').waitFor();
  await publish(hub.url, { users: [user], type: "notification", data: { title: "Back online" } });
  await page.locator(".toast", { hasText: "Back online" }).waitFor();

  // Publishing from the page uses the pasted key.
  await page.check('input[name="to"][value="all"]');
  await page.selectOption("#type", "message");
  await page.click("#publish-btn");
  await logEntry(page, "message", "Hi there");
});

test("reserved types: error and open are refused, and no extra error or open fires in the browser", async (t) => {
  const port = await freePort();
  const hub = await startHub(port, { env: { SSEHUB_JWT_SECRET: SECRET, SSEHUB_PUBLISH_KEY: KEY } });
  t.after(() => kill(hub, "SIGTERM"));
  const page = await launch(t);
  // Same origin as the hub, so that the page's CSP lets it connect.
  await page.goto(hub.url + "/");
  const user = newUser();

  // A browser's EventSource dispatches an event named "error" to onerror
  // and one named "open" to onopen: the app would think its stream failed
  // or reopened. Count both on an EventSource of our own.
  await page.evaluate((token) => {
    const counts = { open: 0, error: 0, connected: 0, after: 0 };
    window.reserved = { counts };
    const es = new EventSource(`/sse/stream?access_token=${encodeURIComponent(token)}`);
    window.reserved.es = es;
    for (const type of Object.keys(counts)) es.addEventListener(type, () => { counts[type]++; });
  }, signHS256(user));
  await page.waitForFunction(() => window.reserved.counts.open === 1 && window.reserved.counts.connected === 1);

  for (const body of [
    { users: [user], type: "error", data: { fake: true } },
    { users: [user], type: "open", data: { fake: true } },
    { all: true, type: "error", data: null },
    { all: true, type: "open", data: null },
  ]) {
    const { status, answer } = await tryPublish(hub.url, body);
    assert.equal(status, 400, `publish ${JSON.stringify(body)}: ${status} ${JSON.stringify(answer)}`);
    assert.equal(answer.error, "bad_request");
    assert.match(answer.message, /EventSource/);
  }
  // An event published after them arrives; had either of them been sent,
  // it would have fired before this one, on the same stream.
  await publish(hub.url, { users: [user], type: "after", data: { n: 1 } });
  await page.waitForFunction(() => window.reserved.counts.after === 1);
  const counts = await page.evaluate(() => {
    window.reserved.es.close();
    return window.reserved.counts;
  });
  assert.deepEqual(counts, { open: 1, error: 0, connected: 1, after: 1 }, "an extra open or error fired");
});
