// The event-stream parser against the WHATWG rules, with the stream cut
// into chunks at every possible place.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parser } from "../src/parse.js";

// parse feeds chunks and returns what came out: events and retries.
function parse(...chunks) {
  const out = [];
  const feed = parser((ev) => out.push(ev), (ms) => out.push({ retry: ms }));
  for (const c of chunks) feed(c);
  return out;
}

const stream =
  ": a comment\r\n" +
  "retry: 300\r\n\r\n" +
  "id: a1.u2\r\nevent: connected\r\ndata: {\"client_id\":\"x\"}\r\n\r\n" +
  "data: line one\ndata:line two\ndata\n\n" + // no space after the colon, and a bare field name
  "event: heartbeat\rdata: \r\r" + // CR line endings, an empty data field
  "id: b\0ad\nretry: 5s\nretry: 1e3\nevent: x\n\n" + // an id with NUL is ignored; bad retries; no data: nothing
  "event: last\ndata: 1\n\n" +
  "data: never finished";

const want = [
  { retry: 300 },
  { type: "connected", id: "a1.u2", text: '{"client_id":"x"}' },
  { type: "message", id: "", text: "line one\nline two\n" },
  { type: "heartbeat", id: "", text: "" },
  { type: "last", id: "", text: "1" },
];

test("the WHATWG rules: fields, comments, line endings, ids, retry", () => {
  assert.deepEqual(parse(stream), want);
});

test("a stream cut anywhere parses the same", () => {
  for (let i = 0; i <= stream.length; i++) {
    assert.deepEqual(parse(stream.slice(0, i), stream.slice(i)), want, `cut at ${i}: ${JSON.stringify(stream.slice(i - 2, i + 2))}`);
  }
  assert.deepEqual(parse(...stream), want, "one character at a time");
});

test("a CR at the end of a chunk and the LF after it end one line, not two", () => {
  assert.deepEqual(parse("data: a\r", "\ndata: b\r", "\n\r", "\n"), [{ type: "message", id: "", text: "a\nb" }]);
  // A lone CR is a line ending too, once the next chunk shows no LF.
  assert.deepEqual(parse("data: a\r", "\r"), []);
  assert.deepEqual(parse("data: a\r", "\r", "data: b"), [{ type: "message", id: "", text: "a" }]);
});

test("an event's id is its own: not inherited from the event before", () => {
  assert.deepEqual(
    parse("id: 1\ndata: a\n\ndata: b\n\nid: 2\nid: 3\ndata: c\n\n").map((e) => e.id),
    ["1", "", "3"],
  );
});
