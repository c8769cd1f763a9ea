// The event-stream parser of the WHATWG HTML standard ("Server-sent
// events", 9.2.6), for text already decoded from UTF-8 (TextDecoderStream
// drops the BOM).

/**
 * One event as the stream carried it. `id` is the event's own `id:` field
 * ("" when it had none, as the hub's heartbeats do); unlike EventSource's
 * `lastEventId` it is not inherited from the event before, so that an event
 * without an id is never mistaken for a repeat of the one before it.
 *
 * @typedef {{ type: string, id: string, text: string }} RawEvent
 */

/**
 * parser returns a function to feed with the stream's text, chunk by
 * chunk, which calls onEvent for each complete event and onRetry for each
 * valid `retry:` field. Lines may end in CRLF, LF or CR, and a chunk may
 * end anywhere, between the CR and LF of one line ending too.
 *
 * @param {(event: RawEvent) => void} onEvent
 * @param {(ms: number) => void} onRetry
 * @returns {(chunk: string) => void}
 */
export function parser(onEvent, onRetry) {
  let buf = "";
  /** @type {string | undefined} the data buffer; undefined until a data field */
  let data;
  let type = "";
  let id = "";

  /** @param {string} line */
  const field = (line) => {
    if (!line) {
      // A blank line dispatches, unless no data field came: then the spec
      // only resets the buffers. (An id in such a block would move
      // EventSource's lastEventId; the hub never sends one.)
      if (data !== undefined) onEvent({ type: type || "message", id, text: data });
      data = undefined;
      type = id = "";
      return;
    }
    const colon = line.indexOf(":");
    if (!colon) return; // a comment
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (name === "data") data = data === undefined ? value : data + "\n" + value;
    else if (name === "event") type = value;
    else if (name === "id") {
      if (!value.includes("\0")) id = value;
    } else if (name === "retry" && /^\d+$/.test(value)) onRetry(+value);
  };

  return (chunk) => {
    buf += chunk;
    const eol = /\r\n?|\n/g;
    let start = 0;
    for (let m; (m = eol.exec(buf)); start = eol.lastIndex) {
      // A CR that ends the chunk may be the first half of a CRLF: wait.
      if (eol.lastIndex === buf.length && m[0] === "\r") break;
      field(buf.slice(start, m.index));
    }
    buf = buf.slice(start);
  };
}
