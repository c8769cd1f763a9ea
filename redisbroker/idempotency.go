package redisbroker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/ssekit"
)

// A keyed publish (ssekit.Message.Key) is stored once however often it is
// retried, on whichever nodes. A Redis Cluster cannot decide the key and
// append to the publish's channels in one atomic step (they live in other
// slots, on other masters), so a keyed publish takes two, each of them
// safe to repeat:
//
//  1. The claim: one SET NX GET on the key's own slot records "<publish
//     id> <digest>" for KeyWindow, unless a record is there; then it
//     answers that record, and the publish goes on under the recorded id
//     (or fails with ssekit.ErrKeyConflict when the digest differs).
//  2. The appends, under that id, to every channel, whether the claim was
//     new or not: the publish script remembers each publish id it stored
//     in a channel (its dedupe key, kept for KeyWindow for a keyed
//     publish), so an append that is already there stores and announces
//     nothing, and one that is missing is made. A retry after a node died
//     between the two steps, or midway through the appends, completes
//     the first publish instead of storing a second.
//
// Two nodes that publish one key at once both claim; one records, the
// other reads its record, and both append under one id: one event in each
// channel, announced once (by whichever append came first), and one id in
// both answers. Only the call that recorded the key announces the event
// to its clients, which are live only.

// keyRecordKey returns the key of an idempotency key's record: the key is
// hashed, so that any bytes of any length make a key of one size in a slot
// of its own, and the suffix keeps it apart from every channel's keys
// (those end in "}" or ":last", ":live", ":pub:<id>").
func (b *Broker) keyRecordKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "{" + b.opts.Prefix + ":key:" + hex.EncodeToString(sum[:]) + "}:idem"
}

// claimKey records m.Key for the publish id, unless the key has a record
// within its window. It returns the id of the publish the key belongs to:
// id itself when this call recorded it (or a retry of its own SET by the
// Redis client did), the recorded one otherwise; ssekit.ErrKeyConflict when
// the record is of a publish with another digest. With WaitReplicas, the
// record is on that many replicas before the appends start: a failover
// that lost it could otherwise let a retry store the event again.
func (b *Broker) claimKey(ctx context.Context, m *ssekit.Message, id string) (string, error) {
	k := b.keyRecordKey(m.Key)
	digest := ssekit.Digest(m)
	set := redis.SetArgs{Mode: "NX", Get: true, TTL: b.opts.KeyWindow}
	b.ops.add(opKey, 1)
	var rec string
	var err error
	if b.opts.WaitReplicas == 0 {
		rec, err = b.rdb.SetArgs(ctx, k, id+" "+digest, set).Result()
	} else {
		rec, err = b.claimReplicated(ctx, k, id+" "+digest, set)
	}
	if errors.Is(err, redis.Nil) {
		b.ops.add(opKeyRecorded, 1)
		return id, nil // recorded now
	}
	if err != nil {
		if b.opts.WaitReplicas > 0 {
			// The record may be there, unacknowledged: the retry must
			// not take it for a stored publish.
			b.releaseKey(m, id)
		}
		return "", fmt.Errorf("redisbroker: publish with key: %w", err)
	}
	first, firstDigest, ok := strings.Cut(rec, " ")
	switch {
	case !ok || first == "":
		return "", fmt.Errorf("redisbroker: publish with key: malformed record %.80q", rec)
	case firstDigest != digest:
		return "", ssekit.ErrKeyConflict
	}
	return first, nil
}

// releaseScript deletes a key's record if it is still the one given:
// KEYS[1] the record, ARGV[1] its value.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// releaseKey forgets the record this call made of m.Key for the publish
// id, when the publish failed after the claim in a way its retry must
// repeat (the announcement to m.Clients, or the replicas' acknowledgement
// of the record): the retry then records the key anew and does it all. If
// the failed step took effect after all, the retry repeats it: a client
// may get a live event twice, never none. A record another call made
// stays.
func (b *Broker) releaseKey(m *ssekit.Message, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(context.Background()), releaseTimeout)
	defer cancel()
	b.ops.add(opKey, 1)
	if err := releaseScript.Run(ctx, b.rdb, []string{b.keyRecordKey(m.Key)}, id+" "+ssekit.Digest(m)).Err(); err != nil {
		b.log.Warn("redisbroker: a failed keyed publish's record was not released; its retry will answer a replay", "publish", id, "err", err)
	}
}

// releaseTimeout bounds releaseKey, which runs after its caller's ctx may
// have ended.
const releaseTimeout = 5 * time.Second

// claimReplicated runs the claim and a WAIT for WaitReplicas on the key's
// master, in one pipeline (WAIT names no key: a cluster client could not
// route it).
func (b *Broker) claimReplicated(ctx context.Context, k, value string, set redis.SetArgs) (string, error) {
	node := b.rdb
	if cc, ok := b.rdb.(*redis.ClusterClient); ok {
		c, err := cc.MasterForKey(ctx, k)
		if err != nil {
			return "", fmt.Errorf("route: %w", err)
		}
		node = c
	}
	var claim *redis.StatusCmd
	var wait *redis.Cmd
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		claim = p.SetArgs(ctx, k, value, set)
		wait = p.Do(ctx, "WAIT", b.opts.WaitReplicas, b.opts.WaitTimeout.Milliseconds())
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		if cc, ok := b.rdb.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx) // a master that fails may have been replaced
		}
		return "", err
	}
	if n, _ := wait.Int64(); n < int64(b.opts.WaitReplicas) {
		return "", fmt.Errorf("%d of %d replicas acknowledged the key within %v", n, b.opts.WaitReplicas, b.opts.WaitTimeout)
	}
	return claim.Result()
}
