// The React hook with a real React (react-test-renderer) against the
// stand-in hub: one stream per mount however often it renders, the
// latest handlers, new topics resume where the stream was, unmount
// closes, and StrictMode's double effects leak nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { StrictMode, createElement as h, useEffect } from "react";
import TestRenderer from "react-test-renderer";
import { useStream } from "../src/react.js";
import { startHub, waitFor } from "./hub.js";

// The stream updates state from network callbacks, at any time: the
// tests let React render as it would in a page (no act), and wait for
// what they expect to show.
globalThis.IS_REACT_ACT_ENVIRONMENT = false;

// React's warnings go to console.error: any would fail the test, but the
// one that react-test-renderer is deprecated (there is no DOM here for
// react-dom).
const warnings = [];
const consoleError = console.error;
console.error = (...args) => {
  if (!String(args[0]).startsWith("react-test-renderer is deprecated")) warnings.push(args.join(" "));
};
test.afterEach(() => assert.deepEqual(warnings.splice(0), [], "React warned"));
test.after(() => {
  console.error = consoleError;
});

// Feed renders the hook with props, and shows its state; seen gets every
// event with the handler of the render that saw it; commits the tag of
// each render React committed (after the hook's own effects).
const commits = [];
function Feed({ props, seen, infos }) {
  const info = useStream({ ...props, on: { m: (e) => seen.push([props.tag, e.data]) } });
  infos.push(info);
  useEffect(() => {
    commits.push(props.tag);
  });
  return h("span", null, info.state);
}

const until = waitFor;

test("one stream across renders; latest handlers; new topics resume; unmount closes", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  const seen = [];
  const infos = [];
  let tokens = 0;
  const props = (tag, topics) => ({ url: hub.url, topics, scope: "u1", tag, getToken: () => `t${++tokens}` });
  const root = TestRenderer.create(h(Feed, { props: props("A", ["x"]), seen, infos }));
  await until("live", () => infos.at(-1)?.state === "live");
  assert.equal(root.toJSON().children[0], "live");
  assert.equal(infos.at(-1).role, "solo");
  assert.ok(infos.at(-1).client, "no client");
  hub.publish("m", 1);
  await until("1", () => seen.length === 1);

  // New props objects, new handlers, same topics by value: same stream.
  for (const tag of ["B", "C"]) {
    root.update(h(Feed, { props: props(tag, ["x"]), seen, infos }));
    await until(`render ${tag}`, () => commits.at(-1) === tag);
  }
  hub.publish("m", 2);
  await until("2", () => seen.length === 2);
  assert.deepEqual(seen, [["A", 1], ["C", 2]]);
  assert.equal(hub.requests.length, 1);
  assert.equal(tokens, 1);

  // New topics: a new stream, from where the last one was.
  root.update(h(Feed, { props: props("D", ["x", "y"]), seen, infos }));
  await until("render D", () => commits.at(-1) === "D");
  await until("a second stream", () => hub.requests.length === 2 && hub.open() === 1);
  assert.deepEqual(hub.requests[1].url.searchParams.getAll("topic"), ["x", "y"]);
  assert.equal(hub.requests[1].url.searchParams.get("lastEventId"), "e2");
  hub.publish("m", 3);
  await until("3", () => seen.length === 3);
  assert.deepEqual(seen.at(-1), ["D", 3]);

  root.unmount();
  await until("no stream", () => hub.open() === 0);
  hub.publish("m", 4);
  await sleep(50);
  assert.equal(seen.length, 3);
  assert.equal(hub.requests.length, 2);
});

test("StrictMode mounts twice: one stream left, closed on unmount", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  const seen = [];
  const infos = [];
  const root = TestRenderer.create(h(StrictMode, null, h(Feed, { props: { url: hub.url, tag: "S" }, seen, infos })));
  await until("live", () => infos.at(-1)?.state === "live");
  await sleep(50);
  assert.equal(hub.open(), 1);
  hub.publish("m", 1);
  await until("1", () => seen.length === 1);
  await sleep(20);
  assert.deepEqual(seen, [["S", 1]]);
  root.unmount();
  await until("no stream", () => hub.open() === 0);
});

test("enabled: false holds no stream", async (t) => {
  const hub = await startHub();
  t.after(hub.close);
  const infos = [];
  const root = TestRenderer.create(h(Feed, { props: { url: hub.url, enabled: false }, seen: [], infos }));
  await until("closed", () => infos.at(-1)?.state === "closed");
  await sleep(50);
  assert.equal(hub.requests.length, 0);
  assert.deepEqual(infos.at(-1), { state: "closed", reason: { code: "disabled" }, role: "solo", client: null });
  root.unmount();
});
