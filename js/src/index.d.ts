/**
 * @ssekit/client: one Server-Sent Events stream per browser, shared by all
 * its tabs, that refreshes its token and resumes where it was.
 *
 * @example
 * import { connect } from "@ssekit/client";
 *
 * type Events = { notification: { title: string }; badge_update: { count: number } };
 * const client = connect<Events>({
 *   url: "https://hub.example.com/sse/stream",
 *   scope: user.id,
 *   getToken: () => fetch("/api/sse-token").then((r) => r.text()),
 *   onResync: () => refetchEverything(),
 *   onState: ({ state, reason }) => showStatus(state, reason),
 * });
 * client.on("notification", (e) => toast(e.data.title));
 */

/**
 * Where the stream stands.
 *
 * - `connecting`: opening, and never live yet;
 * - `live`: the stream is open and has sent its first event (in this tab,
 *   or in the tab that shares it);
 * - `retrying`: it ended or failed, and opens again after a backoff;
 *   `reason` says why;
 * - `closed`: for good: `close()` was called, or the hub refused the stream
 *   in a way a retry would not change (`reason` says how). Create a new
 *   client to start again.
 */
export type State = "connecting" | "live" | "retrying" | "closed";

/**
 * This tab's part in the stream: `leader` holds it and relays its events to
 * the other tabs of the same stream, `follower` gets them from the leader
 * (and takes over when the leader goes), `solo` holds a stream of its own
 * (sharing is off, or the browser has no Web Locks or BroadcastChannel).
 */
export type Role = "leader" | "follower" | "solo";

/** Why the client is retrying or closed. */
export interface Reason {
  /**
   * The hub's error code (`credentials_expired`, `unauthorized`,
   * `session_revoked`, `topic_forbidden`, `invalid_topic`, …), or the
   * client's: `network` (no answer, or the stream broke), `ended` (the hub
   * ended the stream cleanly), `token_error` (getToken threw), `http_<status>`
   * (a refusal without a JSON error), `closed` (close() was called).
   */
  code: string;
  /** The HTTP status of a refusal. */
  status?: number;
  /** The hub's message for a refusal, or the error's. */
  message?: string;
  /** The topics a refusal names (403 topic_forbidden, 400 invalid_topic). */
  topics?: string[];
}

/** An event, with its JSON data parsed. */
export interface StreamEvent<T = unknown, K extends string = string> {
  /** The event type: `message` when the stream named none. */
  type: K;
  /** The event's own id: "" for an event without one (a heartbeat, an event sent to one connection). */
  id: string;
  /** The data parsed as JSON; the text itself when it is not JSON. */
  data: T;
  /** The data as it came. */
  text: string;
}

/** The data of the events the hub itself sends. */
export interface HubEvents {
  /** The first event of every stream. */
  connected: { client_id: string; timestamp: string; resumed: boolean };
  /** Sent on a quiet stream; it has no id. */
  heartbeat: unknown;
  /**
   * Events of the named channels were lost (their history is gone, or this
   * tab slept longer than the other tabs remember): refetch that state.
   * `channels` holds `all`, `user`, `tenant` or `topic:<name>`.
   */
  resync: { reason: string; last_event_id: string; channels: string[] };
  /** The stream's credentials expired (the client gets a new token and resumes) or its session was revoked. */
  session_ended: { reason: "expired" | "revoked"; last_event_id: string };
}

/** The data type of each event type an application expects. */
export type EventMap = Record<string, unknown>;

type AllEvents<E extends EventMap> = Omit<HubEvents, keyof E> & E;

/** A handler for each event type; `"*"` gets every event. */
export type Handlers<E extends EventMap> = {
  [K in keyof AllEvents<E> & string]?: (event: StreamEvent<AllEvents<E>[K], K>) => void;
} & { "*"?: (event: StreamEvent) => void };

export interface Options<E extends EventMap = EventMap> {
  /** The stream's URL, such as `https://hub.example.com/sse/stream`, or relative to the page. */
  url: string | URL;
  /** Topics to follow: a `?topic=` each. */
  topics?: readonly string[];
  /**
   * Whose stream this is, such as the signed-in user's id. Tabs share a
   * stream only when their URL, topics and scope are the same: set it
   * whenever tabs of one origin may hold different users' credentials.
   * Defaults to "".
   */
  scope?: string;
  /**
   * Returns the token to open the stream with: at the start, and again
   * when the hub says it expired or refused it (with that reason). A token
   * is sent as `Authorization: Bearer`, or as the `tokenParam` query
   * parameter. Return null to send none (a cookie). If it throws, the
   * client retries with backoff; to give up, call `close()`. Only the tab
   * that holds the stream calls it. Without it the client sends only what
   * `credentials` allows (cookies), and a 401 closes it.
   */
  getToken?: (reason?: Reason) => string | null | undefined | Promise<string | null | undefined>;
  /** Send the token as this query parameter (such as `access_token`) rather than in a header. */
  tokenParam?: string;
  /** fetch's credentials mode: `include` sends cookies to another origin. Defaults to `same-origin`. */
  credentials?: RequestCredentials;
  /** Resume from this event id, such as the `lastEventId` of a client this one replaces. */
  lastEventId?: string;
  /** Share one stream among the tabs of this browser. Defaults to true. */
  share?: boolean;
  /** The longest wait between two attempts, in ms. Defaults to 30000. The server's `retry:` is the shortest. */
  maxRetry?: number;
  /** Handlers by event type, as `client.on` adds them. */
  on?: Handlers<E>;
  /** Called on a `resync` event: events were lost, refetch the state named. */
  onResync?: (event: StreamEvent<HubEvents["resync"], "resync">) => void;
  /** Called whenever the state, its reason or this tab's role changes. */
  onState?: (info: { state: State; reason?: Reason; role: Role }) => void;
}

export interface Client<E extends EventMap = EventMap> {
  readonly state: State;
  readonly reason: Reason | undefined;
  readonly role: Role;
  /** The id of the last event this tab got: where a new client resumes. */
  readonly lastEventId: string;
  /** Adds a handler for one event type (`"*"` for all); returns a function that removes it. */
  on<K extends keyof AllEvents<E> & string>(type: K, handler: (event: StreamEvent<AllEvents<E>[K], K>) => void): () => void;
  on(type: "*", handler: (event: StreamEvent) => void): () => void;
  /** Ends the stream (another tab takes it over) and sets the state to closed, with reason (default `{ code: "closed" }`). */
  close(reason?: Reason): void;
}

/**
 * Starts a stream and returns its client. It returns at once; the stream
 * opens in a microtask, after the handlers added with `client.on` right
 * away.
 */
export function connect<E extends EventMap = EventMap>(options: Options<E>): Client<E>;

/**
 * How long the client waits before attempt `tries` (1, 2, …) after a
 * failure, in ms: uniform over [floor, min(max, floor·2^tries)]
 * (exponential backoff with full jitter, never below the server's `retry:`,
 * which is floor, nor below 250 ms).
 */
export function backoff(floor: number, max: number, tries: number, random?: number): number;
