// Tenants and topics in a real browser (headless Chromium): the demo page
// shows its stream's tenant, joins a topic and gets its events, and shows
// why a topic is refused; a browser's EventSource refused for a topic
// stops for good, and the same URL fetched says why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, logEntry } from "./chromium.js";
import { startHub, kill, freePort, signHS256, publish, devPublishKey, newUser, SECRET, KEY } from "./helpers.js";

test("demo page topics: join one and get its events; a denied one shows its reason", async (t) => {
  const port = await freePort();
  const hub = await startHub(port, { args: ["--dev"] });
  t.after(() => kill(hub, "SIGTERM"));
  const key = await devPublishKey(hub.url);
  const page = await launch(t);

  await page.goto(hub.url + "/");
  await logEntry(page, "connected", "client_id");
  // Dev mode's token puts the stream in the demo tenant, and allows demo:*.
  assert.equal(await page.locator("#fact-tenant").textContent(), "demo");
  assert.match(await page.locator("#grants").textContent(), /demo:\*/);
  await publish(hub.url, { tenant: "demo", type: "message", data: { text: "to the demo tenant" } }, key);
  await logEntry(page, "message", "to the demo tenant");

  // Joining reopens the stream with ?topic=demo:news, resuming where it
  // was: a second connected event.
  await page.fill("#topic", "demo:news");
  await page.click("#join");
  await page.locator('#topics li[data-topic="demo:news"]').waitFor();
  await page.locator('#log li[data-type="connected"]').nth(1).waitFor();
  await publish(hub.url, { topics: ["demo:other"], type: "message", data: { text: "a topic not joined" } }, key);
  await publish(hub.url, { topics: ["demo:news"], type: "message", data: { text: "breaking demo news" } }, key);
  await logEntry(page, "message", "breaking demo news");

  // From the page's own form, to the topic just joined.
  await page.check('input[name="to"][value="topic"]');
  assert.equal(await page.inputValue("#to-topic"), "demo:news");
  await page.selectOption("#type", "message");
  await page.fill("#data", JSON.stringify({ text: "posted to demo:news from the form" }));
  await page.click("#publish-btn");
  await logEntry(page, "message", "posted to demo:news from the form");
  assert.equal(await page.locator("#log li", { hasText: "a topic not joined" }).count(), 0, "an event of a topic not joined reached the page");

  // A topic the token does not allow: the hub answers 403, the
  // EventSource stops, and the page fetches the URL to show why.
  await page.fill("#topic", "secret:x");
  await page.click("#join");
  await page.locator("#topic-error", { hasText: 'not allowed to follow topic "secret:x"' }).waitFor();
  await logEntry(page, "system", "Stream refused (403)");
  // The page left the refused topic and reopened with the one it may
  // follow.
  assert.equal(await page.locator('#topics li[data-topic="secret:x"]').count(), 0);
  await page.locator('#topics li[data-topic="demo:news"]').waitFor();
  await page.locator('#state[data-state="open"]').waitFor();
  assert.equal(await page.inputValue("#to-topic"), "demo:news", "the form still targets the refused topic");
  await page.fill("#data", JSON.stringify({ text: "still following demo:news" }));
  await page.click("#publish-btn");
  await logEntry(page, "message", "still following demo:news");
});

test("a refused topic ends a browser's EventSource for good, and the same URL fetched says why", async (t) => {
  const port = await freePort();
  const hub = await startHub(port, { env: { SSEHUB_JWT_SECRET: SECRET, SSEHUB_PUBLISH_KEY: KEY } });
  t.after(() => kill(hub, "SIGTERM"));
  const page = await launch(t);
  await page.goto(hub.url + "/");
  const token = signHS256(newUser(), SECRET, 3600, { tenant_id: "acme", allowed_topics: ["acme:*"] });

  // The debugger page shows a pasted token's tenant, and follows a topic
  // joined before it connects.
  await page.fill("#token", token);
  await page.fill("#key", KEY);
  await page.fill("#topic", "acme:board:1");
  await page.click("#join");
  await page.click("#connect");
  await page.locator('#state[data-state="open"]').waitFor();
  assert.equal(await page.locator("#fact-tenant").textContent(), "acme");
  await publish(hub.url, { topics: ["acme:board:1"], type: "message", data: { text: "board update" } });
  await logEntry(page, "message", "board update");
  await page.check('input[name="to"][value="tenant"]');
  await page.selectOption("#type", "message");
  await page.fill("#data", JSON.stringify({ text: "to everyone at acme" }));
  await page.click("#publish-btn");
  await logEntry(page, "message", "to everyone at acme");

  // EventSources of our own: a status other than 200 fires one error, no
  // open, and leaves the EventSource CLOSED, which never reconnects.
  const stream = `/sse/stream?access_token=${token}`;
  for (const { topics, status, error, refused, message } of [
    { topics: ["acme:board:1", "globex:board:1"], status: 403, error: "topic_forbidden", refused: ["globex:board:1"], message: 'not allowed to follow topic "globex:board:1"' },
    { topics: ["acme:a b"], status: 400, error: "invalid_topic", refused: ["acme:a b"], message: 'topic "acme:a b" has' },
  ]) {
    const url = stream + topics.map((tp) => "&topic=" + encodeURIComponent(tp)).join("");
    const seen = await page.evaluate(async (url) => {
      const es = new EventSource(url);
      const counts = { open: 0, error: 0 };
      es.onopen = () => { counts.open++; };
      await new Promise((resolve) => {
        es.onerror = () => {
          counts.error++;
          resolve();
        };
      });
      const res = await fetch(url);
      return { counts, readyState: es.readyState, status: res.status, body: await res.json() };
    }, url);
    assert.deepEqual(seen.counts, { open: 0, error: 1 }, `${url}: events`);
    assert.equal(seen.readyState, 2, `${url}: readyState, want CLOSED`);
    assert.equal(seen.status, status, url);
    assert.equal(seen.body.error, error, url);
    assert.deepEqual(seen.body.topics, refused, url);
    assert.ok(seen.body.message.includes(message), `${url}: message ${JSON.stringify(seen.body.message)}`);
  }
});
