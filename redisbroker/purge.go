package redisbroker

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Purge deletes every key of the cluster named prefix: its events (each
// channel's keys, in the channel's slot), its publish records, its
// idempotency keys and its presence (per user, per node and cluster-wide).
// It is for tearing down a test or benchmark cluster on a shared Redis; on
// a live cluster it is the loss of the whole history, which every node
// then announces with a resync. On a Redis Cluster it scans every master.
func Purge(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return purgeNode(ctx, c, prefix)
		})
		if err != nil {
			return fmt.Errorf("redisbroker: purge %s: %w", prefix, err)
		}
		return nil
	}
	if err := purgeNode(ctx, rdb, prefix); err != nil {
		return fmt.Errorf("redisbroker: purge %s: %w", prefix, err)
	}
	return nil
}

// purgeNode deletes the prefix's keys that one node holds: those in the
// prefix's own slot ({prefix}:…) and those in a channel's, a user's, a
// node's or a publish's slot ({prefix:…}…).
func purgeNode(ctx context.Context, c redis.UniversalClient, prefix string) error {
	esc := globEscape(prefix)
	for _, pattern := range []string{"{" + esc + "}:*", "{" + esc + ":*"} {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		// One key per command: on a cluster node the keys are in many
		// slots, which one multi-key command may not span.
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Unlink(ctx, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// globEscape escapes what SCAN's MATCH would read as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
