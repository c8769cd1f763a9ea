// What the browser tests share: a headless Chromium page (playwright-core
// on Debian's chromium) and a wait on the demo page's event log.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { GUARD } from "./helpers.js";

// launch starts Chromium and returns a new page, both closed after t. A
// page error fails t: it is not a silent console line.
export async function launch(t) {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  page.setDefaultTimeout(GUARD);
  const errors = [];
  page.on("pageerror", (err) => errors.push(err));
  t.after(() => assert.deepEqual(errors, [], "the page threw"));
  return page;
}

// logEntry waits for an entry of type in the page's event log whose text
// has needle.
export function logEntry(page, type, needle) {
  return page.locator(`#log li[data-type="${type}"]`, { hasText: needle }).first().waitFor();
}
