package redisbroker

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Purge deletes every key of the cluster named prefix: its events, its
// publish nonces and its presence. It is for tearing down a test or
// benchmark cluster on a shared Redis; on a live cluster it is the loss of
// the whole history, which every node then announces with a resync.
func Purge(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	iter := rdb.Scan(ctx, 0, "{"+prefix+"}:*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("redisbroker: purge %s: scan: %w", prefix, err)
	}
	if len(keys) == 0 {
		return nil
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("redisbroker: purge %s: %w", prefix, err)
	}
	return nil
}
