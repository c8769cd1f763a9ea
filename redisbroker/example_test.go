package redisbroker_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// One node of a cluster: every process that runs this against the same
// Redis (and Prefix) serves the same events, and a client may resume on
// any of them. Shut down in the opposite order: hub, broker, client.
func ExampleNew() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	broker, err := redisbroker.New(rdb, redisbroker.Options{MaxLen: 10000, MaxAge: 10 * time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	hub, err := ssekit.New(ssekit.Config{Broker: broker})
	if err != nil {
		log.Fatal(err) // Redis did not answer: the hub could not subscribe
	}
	defer hub.Close()
	// Report this node's connections for ClusterStatus until the broker closes.
	if err := broker.StartPresence(ctx, hub); err != nil {
		log.Fatal(err)
	}

	http.Handle("/sse/stream", hub.Handler(ssekit.HandlerOptions{}))
	// Published here, delivered by every node to its connections.
	if _, err := hub.Publish(ctx, ssekit.Target{All: true}, ssekit.Event{Type: "announcement", Data: "hello"}); err != nil {
		log.Print(err) // Redis refused: nothing was sent anywhere
	}
	st, err := broker.ClusterStatus(ctx)
	if err == nil {
		log.Printf("%d nodes, %d users, %d connections", len(st.Nodes), st.Users, st.Clients)
	}
}
