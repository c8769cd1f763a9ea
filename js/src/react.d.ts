/**
 * @ssekit/client/react: the client as a React hook.
 *
 * @example
 * import { useStream } from "@ssekit/client/react";
 *
 * function Bell({ user }: { user: User }) {
 *   const [unread, setUnread] = useState(0);
 *   const { state } = useStream<{ badge_update: { count: number } }>({
 *     url: "/sse/stream",
 *     scope: user.id,
 *     getToken: () => api.sseToken(),
 *     on: { badge_update: (e) => setUnread(e.data.count) },
 *     onResync: () => refetchUnread(),
 *   });
 *   return <span title={state}>{unread}</span>;
 * }
 */
import type { Client, EventMap, Options, Reason, Role, State } from "./index.js";

export type { Client, EventMap, Handlers, HubEvents, Options, Reason, Role, State, StreamEvent } from "./index.js";

export interface StreamOptions<E extends EventMap = EventMap> extends Omit<Options<E>, "onState"> {
  /** Whether to hold a stream at all (false: none, state closed with reason `disabled`). Defaults to true. */
  enabled?: boolean;
}

export interface StreamInfo<E extends EventMap = EventMap> {
  state: State;
  reason?: Reason;
  role: Role;
  /** The client while the stream is open; null before the first effect and when disabled. */
  client: Client<E> | null;
}

/**
 * Holds a stream while the component is mounted, and closes it on unmount.
 *
 * The stream is opened once, in an effect, and opened again only when
 * `url`, `topics` (compared by value), `scope`, `tokenParam`,
 * `credentials`, `share`, `maxRetry`, `enabled` or whether there is a
 * `getToken` change; a new stream for the same URL and scope resumes from
 * where the last one was. Handlers (`on`, `onResync`) and `getToken` may
 * be new functions on every render: the latest ones are called.
 */
export function useStream<E extends EventMap = EventMap>(options: StreamOptions<E>): StreamInfo<E>;
