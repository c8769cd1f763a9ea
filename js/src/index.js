// @ssekit/client: one Server-Sent Events stream per browser, shared by
// all its tabs, that refreshes its token and resumes where it was.
//
// How it works. Every tab that asks for the same stream (same URL, topics
// and scope) joins a group named after them. One tab of the group, the
// leader, holds a Web Lock of that name and the stream; it relays every
// event to the others over a BroadcastChannel of the same name. When the
// leader's tab closes, or freezes and lets go of the lock, the browser
// hands the lock to the next tab waiting for it, which opens the stream
// from the last event id it saw: the hub replays what was published
// meanwhile, and each tab drops what it already had (by event type and
// id). Without Web Locks or BroadcastChannel each tab has its own stream.
//
// The stream is read with fetch rather than EventSource, which hides
// everything a client needs to recover: the status and JSON reason of a
// refusal (401 credentials_expired: get a new token and resume; 403: stop),
// and the server's retry: (the floor of the backoff). fetch also lets the
// token travel in a header rather than the URL.

import { parser } from "./parse.js";

/** @typedef {import("./parse.js").RawEvent} RawEvent */
/** @typedef {import("./index.d.ts").Reason} Reason */
/** @typedef {import("./index.d.ts").State} State */
/** @typedef {import("./index.d.ts").Role} Role */

// How many events (with an id) each tab remembers, to drop repeats and to
// catch up a tab that slept: about 40 KB of 80-byte events.
const RECENT = 512;

/**
 * connect starts a stream and returns its client; see index.d.ts for the
 * options. It returns at once: the stream opens in a microtask, after the
 * caller has had the chance to add handlers with `client.on`.
 *
 * @param {import("./index.d.ts").Options<any>} options
 * @returns {import("./index.d.ts").Client<any>}
 */
export function connect(options) {
  const {
    url,
    topics = [],
    scope = "",
    getToken,
    tokenParam,
    credentials = "same-origin",
    maxRetry = 30000,
    share = true,
    onState,
    onResync,
    on = {},
  } = options;
  const href = String(new URL(url, globalThis.location?.href));
  const name = "ssekit " + JSON.stringify([href, [...topics].sort(), scope]);
  const locks = share && globalThis.navigator?.locks;
  const Channel = share && globalThis.BroadcastChannel;
  const me = Math.random().toString(36).slice(2);

  /** @type {Map<string, Set<Function>>} handlers by event type, "*" for all */
  const handlers = new Map();
  /** @type {Map<string, RawEvent>} "type id" → event, oldest first, at most RECENT */
  const recent = new Map();
  /** @type {RawEvent | undefined} the stream's last connected event, for tabs that join */
  let connected;

  /** @type {State} */
  let state = "connecting";
  /** @type {Reason | undefined} */
  let reason;
  /** @type {Role} */
  let role = locks && Channel ? "follower" : "solo";
  let lastId = options.lastEventId || "";
  let closed = false;
  let asleep = false;
  let asking = false; // asked the leader where the stream stands, no answer yet

  // The stream, in the leader or a solo tab. ctl aborts the attempt under
  // way; a callback of an attempt that is no longer ctl's does nothing.
  /** @type {AbortController | undefined} */
  let ctl;
  /** @type {any} */
  let timer;
  /** @type {string | null | undefined} */
  let token;
  let needToken = !!getToken;
  let fresh = false; // token came from getToken for this attempt, and no stream accepted it yet
  let floor = 1000; // the server's retry:, once it sent one
  let tries = 0; // failed attempts since the last event

  // The group, when shared.
  /** @type {BroadcastChannel | undefined} */
  let bc;
  /** @type {AbortController | undefined} aborts the wait for the lock */
  let waiting;
  /** @type {Function | undefined} lets go of the lock */
  let release;

  /**
   * @param {State} s
   * @param {Reason | undefined} r
   * @param {Role} [as]
   */
  const update = (s, r, as = role) => {
    if (s === state && r === reason && as === role) return;
    state = s;
    reason = r;
    role = as;
    if (as === "leader") post({ s, r });
    call(onState, { state, reason, role });
  };

  /** @param {any} msg */
  const post = (msg) => bc?.postMessage(msg);

  // deliver hands an event to this tab's handlers once: an event whose
  // type and id it already delivered (a relay, then the same event
  // replayed by a new leader's resume) is dropped. It reports whether the
  // event was new. (The hub's cursor ids, c…, of a stream with many
  // channels differ from stream to stream: across a takeover such an
  // event may come twice; see README.md.)
  /** @param {RawEvent} ev */
  const deliver = (ev) => {
    if (ev.id) {
      const key = ev.type + " " + ev.id;
      if (recent.has(key)) return false;
      recent.set(key, ev);
      if (recent.size > RECENT) recent.delete(recent.keys().next().value);
      lastId = ev.id;
    }
    if (ev.type === "connected") connected = ev;
    let data = ev.text;
    try {
      data = JSON.parse(data);
    } catch {
      // not JSON: the text itself
    }
    const event = { type: ev.type, id: ev.id, data, text: ev.text };
    for (const fn of [...(handlers.get(ev.type) || []), ...(handlers.get("*") || [])]) call(fn, event);
    return true;
  };

  /** @param {RawEvent} ev */
  const publish = (ev) => deliver(ev) && post({ e: ev });

  // open makes one attempt at the stream and reads it while it lasts. A
  // client that closed, or a tab that no longer leads, opens nothing; and
  // after each await, an attempt that is no longer ctl's (close, freeze,
  // or a newer attempt) does nothing more.
  const open = async () => {
    clearTimeout(timer);
    ctl?.abort();
    if (closed || role === "follower") return;
    const ac = (ctl = new AbortController());
    const current = () => ac === ctl;
    try {
      if (needToken) {
        try {
          token = await /** @type {Function} */ (getToken)(reason);
        } catch (err) {
          if (current()) retry({ code: "token_error", message: String(err) });
          return;
        }
        needToken = false;
        fresh = true;
      }
      if (!current()) return;
      const u = new URL(href);
      for (const t of topics) u.searchParams.append("topic", t);
      if (lastId) u.searchParams.set("lastEventId", lastId);
      /** @type {Record<string, string>} */
      const headers = { Accept: "text/event-stream" };
      if (token) {
        if (tokenParam) u.searchParams.set(tokenParam, token);
        else headers.Authorization = "Bearer " + token;
      }
      const res = await fetch(u, { headers, credentials, cache: "no-store", signal: ac.signal });
      const type = res.headers.get("Content-Type") || "";
      if (!res.ok || !type.startsWith("text/event-stream")) {
        const body = type.includes("json") ? await res.json().catch(() => ({})) : {};
        return current() && refused(res.status, body);
      }
      // Live on the first event (the hub's connected), not on the headers:
      // a full hub answers 200 with only a retry: and closes.
      fresh = false;
      const feed = parser(
        (ev) => current() && receive(ev),
        (ms) => (floor = ms),
      );
      const reader = /** @type {ReadableStream<Uint8Array>} */ (res.body).pipeThrough(new TextDecoderStream()).getReader();
      for (let chunk; !(chunk = await reader.read()).done; ) feed(chunk.value);
      // A clean end: the hub rotated the stream, is shutting down, or was
      // full (a 200 with only a retry:). Come back, from the last id.
      if (current()) retry({ code: "ended" });
    } catch (err) {
      if (current()) retry({ code: "network", message: String(err) });
    }
  };

  /** @param {RawEvent} ev */
  const receive = (ev) => {
    tries = 0;
    update("live", undefined);
    publish(ev);
    if (ev.type !== "session_ended") return;
    // The hub's last event on a stream whose credentials expired or whose
    // session was revoked. Its id is the stream's position. Stop reading
    // before the hub closes, and come back from there with a new token.
    /** @type {any} */
    let data = {};
    try {
      data = JSON.parse(ev.text);
    } catch {
      // no reason given: treated as revoked
    }
    ctl?.abort();
    if (data.reason !== "expired") return end({ code: "session_revoked" }, true);
    // Without getToken the app's cookie may have been renewed: try it.
    needToken = !!getToken;
    update("retrying", { code: "credentials_expired" });
    open();
  };

  // refused handles an answer that is not a stream: 401 with a token that
  // may just be stale gets a new one at once, and a new one refused as
  // expired gets it after a backoff (a clock that is off, a backend that
  // cached it) rather than in a loop; a server error or a rate limit is
  // retried; anything else (403 topic_forbidden, 400, a 401 for a new
  // token) would be refused again, and ends the client.
  /**
   * @param {number} status
   * @param {any} body
   */
  const refused = (status, body) => {
    /** @type {Reason} */
    const r = { code: body.error || "http_" + status, status, message: body.message, topics: body.topics };
    if (status === 401 && getToken && (!fresh || r.code === "credentials_expired")) {
      needToken = true;
      if (fresh) return retry(r);
      update("retrying", r);
      return open();
    }
    if (status > 499 || status === 429 || status === 408) return retry(r);
    end(r, true);
  };

  // retry waits, then opens again (see backoff).
  /** @param {Reason} r */
  const retry = (r) => {
    if (closed || role === "follower") return;
    update("retrying", r);
    timer = setTimeout(open, backoff(floor, maxRetry, ++tries));
  };

  // join enters the group: wait for the lock (and lead), and meanwhile
  // follow; or, without sharing, open a stream of its own.
  const join = () => {
    if (closed) return;
    if (role === "solo") return open();
    const ch = (bc = new Channel(name));
    ch.onmessage = (m) => heard(m.data);
    const wait = (waiting = new AbortController());
    locks
      .request(name, { signal: wait.signal }, () => {
        if (bc !== ch) return; // left just as the lock came
        return new Promise((resolve) => {
          release = resolve;
          asking = false;
          update(state, reason, "leader");
          // Tabs whose hello no leader heard (sent as the old one went)
          // ask this one again.
          post({ lead: 1 });
          open();
        });
      })
      .catch(() => {}); // AbortError: it stopped waiting
    hello();
  };

  // hello asks the leader, if there is one yet, where the stream stands
  // and what this tab missed while it slept. Until it answers, the tab
  // drops relays: the answer has the events with an id among them, in
  // order (and a new tab's stream starts at the answer, as a new
  // EventSource's starts when it connects).
  const hello = () => {
    asking = true;
    post({ hello: lastId, from: me });
  };

  /** @param {any} m */
  const heard = (m) => {
    if (role === "leader") {
      if (m.from) answer(m.hello, m.from);
      // A relay of the old leader, posted before it went: this tab's own
      // stream replays it too (and dedupe drops one), but a tab that got
      // it already and asks from there must find it here. The other tabs
      // had it from the old leader: not posted again.
      else if (m.e) deliver(m.e);
      return;
    }
    if (m.lead && asking) hello();
    if (m.to) {
      // An answer: this tab's, once.
      if (m.to !== me || !asking) return;
      asking = false;
    }
    if (m.e && !asking) deliver(m.e);
    if (m.c) {
      m.c.forEach(deliver);
      // The leader's position, unless this tab is ahead of it already (it
      // has the leader's last event, from the old leader): the last id
      // only moves forward.
      if (m.l && ![...recent.values()].some((ev) => ev.id === m.l)) lastId = m.l;
    }
    if (m.s) m.s === "closed" ? end(m.r) : update(m.s, m.r);
  };

  // answer tells a tab that joined where the stream stands: a new tab gets
  // the stream's connected event and position; a tab that slept gets the
  // events after its last id, or a resync if they are no longer here.
  /**
   * @param {string} hello the tab's last event id, "" for a new tab
   * @param {string} from the tab
   */
  const answer = (hello, from) => {
    let c = connected && !hello ? [connected] : [];
    if (hello && hello !== lastId) {
      let found = false;
      for (const ev of recent.values()) found ? c.push(ev) : (found = ev.id === hello);
      if (!found) {
        const text = JSON.stringify({ reason: "history_unavailable", last_event_id: hello, channels: ["all"] });
        c = [{ type: "resync", id: "", text }];
      }
    }
    post({ to: from, c, l: lastId, s: state, r: reason });
  };

  // stop ends the stream and leaves the group: another tab takes over.
  const stop = () => {
    clearTimeout(timer);
    ctl?.abort();
    ctl = undefined;
    waiting?.abort();
    release?.();
    bc?.close();
    waiting = release = bc = undefined;
  };

  // A tab that freezes (Page Lifecycle) or goes into the back/forward
  // cache lets go of the stream, so that another tab takes over at once
  // instead of the group waiting on a tab that runs no code; it comes back
  // as a follower, or as the leader resuming from its last id.
  const sleep = () => {
    asleep = true;
    stop();
    if (role === "leader") update(state, reason, "follower");
  };
  const wake = () => {
    if (asleep) {
      asleep = false;
      join();
    }
  };
  /** @type {[string, () => void][]} */
  const lifecycle = [
    ["freeze", sleep],
    ["pagehide", sleep],
    ["resume", wake],
    ["pageshow", wake],
  ];
  // In the capture phase: freeze and resume are fired at the document.
  const listen = (add = "add") => {
    for (const [type, fn] of lifecycle) globalThis[add + "EventListener"]?.(type, fn, true);
  };

  /**
   * @param {Reason} r
   * @param {boolean} [tell] the hub refused the stream: the followers end too
   */
  const end = (r, tell) => {
    if (closed) return;
    closed = true;
    if (!tell) stop();
    update("closed", r);
    stop();
    listen("remove");
  };

  const client = {
    get state() {
      return state;
    },
    get reason() {
      return reason;
    },
    get role() {
      return role;
    },
    get lastEventId() {
      return lastId;
    },
    /**
     * @param {string} type
     * @param {Function} fn
     */
    on(type, fn) {
      const set = handlers.get(type) || new Set();
      handlers.set(type, set.add(fn));
      return () => set.delete(fn);
    },
    close: (r = { code: "closed" }) => end(r),
  };
  for (const type in on) client.on(type, on[type]);
  if (onResync) client.on("resync", onResync);
  listen();
  queueMicrotask(join);
  return client;
}

/**
 * backoff returns how long to wait before attempt number tries (1, 2, …)
 * after a failure: exponential backoff with full jitter, uniform over
 * [floor, min(max, floor·2^tries)], so that a hub that comes back is not
 * met by all its clients at once, and never sooner than the server's
 * retry: (floor) asks, nor than 250 ms (a retry: 0 would make a loop).
 *
 * @param {number} floor ms, the server's retry:
 * @param {number} max ms
 * @param {number} tries
 * @param {number} [random] in [0, 1)
 */
export function backoff(floor, max, tries, random = Math.random()) {
  floor = Math.max(floor, 250);
  const cap = Math.max(floor, Math.min(max, floor * 2 ** tries));
  return floor + random * (cap - floor);
}

// call calls an application's callback, whose error must not break the
// stream: it is reported on its own (reportError, or thrown again from a
// timer), where the page sees it, as it sees an error in an EventSource
// listener.
/**
 * @param {Function | undefined} fn
 * @param {any} arg
 */
function call(fn, arg) {
  try {
    fn?.(arg);
  } catch (err) {
    if (globalThis.reportError) reportError(err);
    else
      setTimeout(() => {
        throw err;
      });
  }
}
