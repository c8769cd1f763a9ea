// @ssekit/client/react: the client as a React hook.
//
// What React wrappers of EventSource get wrong, and this one does not:
// a stream opened during render (StrictMode and concurrent rendering run
// renders that never commit: streams leak); a new stream on every render
// because the options object or a handler is new each time; handlers that
// see the state of the render that opened the stream; no close on
// unmount; and a stream reopened for new topics that starts from scratch
// instead of from where it was.

import { useEffect, useRef, useState } from "react";
import { connect } from "./index.js";

/**
 * useStream keeps a stream open while the component is mounted; see
 * react.d.ts.
 *
 * @param {import("./react.d.ts").StreamOptions<any>} options
 * @returns {import("./react.d.ts").StreamInfo<any>}
 */
export function useStream(options) {
  // The latest options, for the handlers and getToken to read when they
  // are called: changing them needs no new stream.
  const latest = useRef(options);
  useEffect(() => {
    latest.current = options;
  });
  const [info, setInfo] = useState(() => ({ state: "connecting", reason: undefined, role: "solo", client: null }));
  const { url, topics = [], scope = "", tokenParam, credentials, share, maxRetry, enabled = true } = options;
  const hasToken = !!options.getToken;
  // What makes another stream: topics by value, so that an array literal
  // in render does not reopen it.
  const key = JSON.stringify([String(url), topics, scope, tokenParam, credentials, share, maxRetry, hasToken, enabled]);
  // Where the last stream was, and whose it was: a new stream for the same
  // URL and scope (new topics) resumes from there.
  const last = useRef({ id: options.lastEventId || "", url: "", scope: "" });

  useEffect(() => {
    if (!enabled) {
      setInfo({ state: "closed", reason: { code: "disabled" }, role: "solo", client: null });
      return;
    }
    const from = last.current;
    const same = from.url === String(url) && from.scope === scope;
    const client = connect({
      url,
      topics,
      scope,
      tokenParam,
      credentials,
      share,
      maxRetry,
      lastEventId: same || !from.url ? from.id : "",
      getToken: hasToken ? (reason) => latest.current.getToken?.(reason) : undefined,
      on: {
        "*": (event) => {
          const { on = {}, onResync } = latest.current;
          on[event.type]?.(event);
          on["*"]?.(event);
          if (event.type === "resync") onResync?.(event);
        },
      },
      onState: ({ state, reason, role }) => setInfo({ state, reason, role, client }),
    });
    setInfo({ state: client.state, reason: client.reason, role: client.role, client });
    return () => {
      last.current = { id: client.lastEventId, url: String(url), scope };
      client.close();
    };
    // key holds every option the effect reads besides latest's.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  return info;
}
