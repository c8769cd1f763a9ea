// Compiled by pack.test.js against the installed package, strict: the
// types a TypeScript app gets. Each @ts-expect-error must be an error.
import { connect, backoff, type Client, type Reason, type State, type StreamEvent } from "@ssekit/client";
import { useStream, type StreamInfo } from "@ssekit/client/react";

type Events = { notification: { title: string }; badge_update: { count: number } };

const client: Client<Events> = connect<Events>({
  url: "/sse/stream",
  topics: ["a"],
  scope: "user-1",
  getToken: async (reason?: Reason) => (reason?.code === "credentials_expired" ? "new" : "first"),
  on: {
    notification: (e) => e.data.title.toUpperCase(),
    connected: (e) => e.data.client_id,
    "*": (e: StreamEvent) => e.text,
  },
  onResync: (e) => e.data.channels.join(),
  onState: ({ state, reason, role }) => [state, reason?.status, role],
});
const off: () => void = client.on("badge_update", (e) => e.data.count.toFixed());
client.on("session_ended", (e) => (e.data.reason === "expired" ? e.data.last_event_id : ""));
client.on("*", (e) => e.type);
off();
const state: State = client.state;
client.close({ code: "signed_out" });
const wait: number = backoff(1000, 30000, 2);

// @ts-expect-error: a badge_update's count is a number
client.on("badge_update", (e) => e.data.count.toUpperCase());
// @ts-expect-error: an event type the app did not declare
client.on("unknown", () => {});
// @ts-expect-error: url is required
connect({});
// @ts-expect-error: not a state
const bad: State = "open";

// Without an event map any type goes, with unknown data.
connect({ url: new URL("https://hub.example.com/sse/stream") }).on("anything", (e) => e.data);

function useBell(): number {
  const info: StreamInfo<Events> = useStream<Events>({
    url: "/sse/stream",
    enabled: true,
    on: { badge_update: (e) => e.data.count },
  });
  // @ts-expect-error: onState is the hook's own
  useStream({ url: "/x", onState: () => {} });
  return info.client ? info.client.lastEventId.length : 0;
}

export { state, wait, bad, useBell };
