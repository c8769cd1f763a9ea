// Tokens that expire, in a real browser (headless Chromium): the demo page
// in dev mode with a short-lived token (/?ttl=, a dev-only knob) gets
// session_ended when its token expires, fetches a new one and resumes
// from the stream's position, so that every event reaches its log once;
// and the debugger page, whose pasted tokens it cannot renew, says that a
// token expired (session_ended, or a reconnect refused 401
// credentials_expired) and resumes from there with the next one pasted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { launch, logEntry } from "./chromium.js";
import { startHub, kill, freePort, publish, devPublishKey, signHS256, newUser, SECRET, KEY } from "./helpers.js";

// messages returns the texts of the message events in the page's log,
// oldest first (the log shows the newest on top).
async function messages(page) {
  const data = await page.locator('#log li[data-type="message"] pre').allTextContents();
  return data.map((d) => JSON.parse(d).text).reverse();
}

// assertOnce checks that the page's log has every text of sent, once and
// in order, and nothing else.
async function assertOnce(page, sent) {
  const got = await messages(page);
  const seen = new Map();
  for (const text of got) seen.set(text, (seen.get(text) || 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1).map(([text]) => text);
  const missing = sent.filter((text) => !seen.has(text));
  assert.deepEqual({ twice, missing }, { twice: [], missing: [] }, `log: ${got.join(" ")}`);
  assert.deepEqual(got, sent);
}

test("demo page with a short-lived token: events before, during and after its refresh each appear once", async (t) => {
  const port = await freePort();
  const hub = await startHub(port, { args: ["--dev"] });
  t.after(() => kill(hub, "SIGTERM"));
  const key = await devPublishKey(hub.url);
  const page = await launch(t);

  // The page's first token comes at once; the second, the refresh after
  // the first expires, is held until events have been published while
  // the page has no stream.
  let mints = 0;
  let held = false;
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  t.after(() => release());
  await page.route((url) => url.pathname === "/demo/token", async (route) => {
    if (++mints === 2) {
      held = true;
      await released;
    }
    await route.continue();
  });

  await page.goto(hub.url + "/?ttl=3s");
  await logEntry(page, "connected", "client_id");
  const user = await page.locator("#user").inputValue();

  const sent = [];
  const send = async (phase) => {
    const text = `${phase}-${String(sent.length).padStart(3, "0")}`;
    await publish(hub.url, { users: [user], type: "message", data: { text } }, key);
    sent.push(text);
  };
  const refreshed = page.locator('#log li[data-type="system"]', { hasText: "Token refreshed, resumed" });
  // Paced so that the log (300 entries) holds them all; bounded so that a
  // page that never refreshes fails rather than publishing for ever.
  let during = 0;
  let after = 0;
  for (let i = 0; after < 5; i++) {
    assert.ok(i < 200, `no refresh after ${i} events; mints: ${mints}`);
    if (!held) {
      await send("before");
    } else if (during < 5) {
      await send("during");
      if (++during === 5) release();
    } else {
      await send("after");
      if (after > 0 || (await refreshed.count()) > 0) after++;
    }
    await sleep(40);
  }
  await logEntry(page, "message", sent.at(-1));

  await logEntry(page, "session_ended", '"reason":"expired"');
  assert.ok(sent.some((s) => s.startsWith("before-")), "no event before the refresh");
  await assertOnce(page, sent);
});

test("debugger page: an expired pasted token ends its stream or is refused credentials_expired, and a new one resumes", async (t) => {
  const port = await freePort();
  const hub = await startHub(port, { env: { SSEHUB_JWT_SECRET: SECRET, SSEHUB_PUBLISH_KEY: KEY } });
  t.after(() => kill(hub, "SIGTERM"));
  const page = await launch(t);
  await page.goto(hub.url + "/");
  await page.locator("#token").waitFor();
  const user = newUser();
  const sent = [];
  const send = async (text) => {
    await publish(hub.url, { users: [user], type: "message", data: { text } });
    sent.push(text);
  };
  const paste = async (token) => {
    await page.fill("#token", token);
    await page.click("#connect");
  };
  const expiredNote = page.locator('#log li[data-type="system"]', { hasText: "The token expired: paste a new one" });

  // A token that expires under its stream: session_ended, and the page
  // says to paste a new one.
  await paste(signHS256(user, SECRET, 3));
  await page.locator('#state[data-state="open"]').waitFor();
  await send("one"); // on this stream, or on the next if it ended first
  await logEntry(page, "session_ended", '"reason":"expired"');
  await expiredNote.first().waitFor();
  await send("two");
  // A new token for the same user resumes from where the stream ended.
  await paste(signHS256(user, SECRET));
  await logEntry(page, "message", "two");
  await send("three");
  await logEntry(page, "message", "three");

  // A token that expired before it was pasted: refused 401
  // credentials_expired, which the page reads and says so.
  await paste(signHS256(user, SECRET, -60));
  await expiredNote.nth(1).waitFor();
  await page.locator('#state[data-state="closed"]').waitFor();
  await send("four");
  await paste(signHS256(user, SECRET));
  await logEntry(page, "message", "four");
  await send("five");
  await logEntry(page, "message", "five");
  await assertOnce(page, sent);
});
