package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/ssekit"
)

// publishScript appends one event to a channel's stream with the position
// of the entry before it ("prev"), trims the history by count and by age
// (on Redis's clock), lets an idle stream expire with its last event,
// remembers the channel's newest position for longer, remembers the
// publish's id so that a retried call returns the first call's position
// instead of storing the event twice, and announces the event on the
// channel's shard Pub/Sub channel, all in one atomic step. A stream that
// expired starts again after its remembered position, so positions only
// grow and the chain goes on.
//
// KEYS[1] stream, KEYS[2] last, KEYS[3] dedupe; ARGV[1] MaxLen (0: none),
// ARGV[2] MaxAge in ms (0: none), ARGV[3] DedupeWindow in ms, ARGV[4]
// PositionTTL in ms (0: none), ARGV[5] live channel, ARGV[6] publish id,
// ARGV[7] type, ARGV[8] data, ARGV[9] the copy's Also (encodeNames; ""
// for none, and then the entry has no "also" field). The announcement is
// five length-prefixed fields: position, prev, publish id, type, data;
// and Also as a sixth when there is one.
var publishScript = redis.NewScript(`
local done = redis.call('GET', KEYS[3])
if done then return done end
local prev = redis.call('GET', KEYS[2])
local exists = redis.call('EXISTS', KEYS[1]) == 1
if exists then
	local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
	if last[1] then prev = last[1][1] end
end
if not prev then prev = '0-0' end
local id = '*'
if not exists and prev ~= '0-0' then
	local t = redis.call('TIME')
	local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
	local pms, pseq = string.match(prev, '^(%d+)-(%d+)$')
	if ms > tonumber(pms) then
		id = string.format('%d-0', ms)
	else
		id = pms .. '-' .. string.format('%d', tonumber(pseq) + 1)
	end
end
local also = ARGV[9] or ''
if also == '' then
	id = redis.call('XADD', KEYS[1], id, 'prev', prev, 'pub', ARGV[6], 'type', ARGV[7], 'data', ARGV[8])
else
	id = redis.call('XADD', KEYS[1], id, 'prev', prev, 'pub', ARGV[6], 'type', ARGV[7], 'data', ARGV[8], 'also', also)
end
local maxlen = tonumber(ARGV[1])
if maxlen > 0 then redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen) end
local maxage = tonumber(ARGV[2])
if maxage > 0 then
	local now = redis.call('TIME')
	local minid = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - maxage
	if minid > 0 then redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', minid)) end
	redis.call('PEXPIRE', KEYS[1], maxage)
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
	redis.call('SET', KEYS[2], id, 'PX', ttl)
else
	redis.call('SET', KEYS[2], id)
end
redis.call('SET', KEYS[3], id, 'PX', ARGV[3])
local function field(s) return #s .. ':' .. s end
local note = field(id) .. field(prev) .. field(ARGV[6]) .. field(ARGV[7]) .. field(ARGV[8])
if also ~= '' then note = note .. field(also) end
redis.call('SPUBLISH', ARGV[5], note)
return id
`)

// Publish appends m to each of its channels (one script each, pipelined:
// channels may live on different masters) and announces m.Clients on the
// clients' channel. It returns the publish's id. An error means the event
// was not stored in at least one channel (or, for a reply lost in
// transit, that it is unknown whether it was: the caller's retry is then a
// new event, unless m has a Key); it may be in the others. ctx bounds the
// call.
//
// A Message with a Key is stored once within KeyWindow, however often and
// on whichever nodes it is published: the first call records the key,
// and a repeat returns the first's id and ssekit.ErrReplayed, or "" and
// ssekit.ErrKeyConflict when its ssekit.Digest differs. A repeat also makes the
// first's appends again, under the first's id: they store nothing where
// the first's are, so that a retry after a failure (an error, a node that
// died before it answered) completes a first publish that reached only
// some of its channels, or none, instead of storing it twice. m.Clients
// are announced once, by the call that recorded the key, before its
// appends: an event to clients is live only, and a retry does not
// announce it again, even when the first call failed before it could.
// See idempotency.go for the steps, and KeyWindow for what they cost.
//
// Each channel's copy of a publish to several channels carries its
// ssekit.Message.Also, in the stream entry and in the announcement, so that
// a connection that follows several of them gets the event once. It
// costs what it names: a publish to U users and T topics stores about
// 2×U×T channel names (each topic's copy names the U users, each user's
// copy the T topics), a publish to users only, or to one channel, none.
func (b *Broker) Publish(ctx context.Context, m ssekit.Message) (string, error) {
	if err := ssekit.CheckMessage(&m); err != nil {
		return "", err
	}
	if b.isClosed() {
		return "", ssekit.ErrBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	id := publishID()
	if m.Key == "" {
		if err := b.publishChannels(ctx, m, id); err != nil {
			return "", err
		}
		if err := b.publishClients(ctx, m, id); err != nil {
			return "", err
		}
		return id, nil
	}
	first, err := b.claimKey(ctx, &m, id)
	if err != nil {
		return "", err
	}
	// A new publish announces to its clients first: a node that dies
	// between that and the appends leaves its retry only the appends to
	// complete, where the other order would leave the clients without
	// the event. A failed announcement fails the publish before any
	// append, and its retry does not announce again (see Publish).
	if first == id {
		if err := b.publishClients(ctx, m, id); err != nil {
			// The retry must announce it: it would otherwise find the
			// key recorded and answer a replay that nobody received.
			b.releaseKey(&m, id)
			return "", err
		}
	}
	if err := b.publishChannels(ctx, m, first); err != nil {
		return "", err
	}
	if first != id {
		return first, ssekit.ErrReplayed
	}
	return id, nil
}

// publishClients announces m to its clients, if it has any, under the
// publish id id.
func (b *Broker) publishClients(ctx context.Context, m ssekit.Message, id string) error {
	if len(m.Clients) == 0 {
		return nil
	}
	b.ops.add(opPublish, 1)
	if err := b.rdb.SPublish(ctx, b.key("clients"), encodeClients(id, m)).Err(); err != nil {
		return fmt.Errorf("redisbroker: publish to clients: %w", err)
	}
	return nil
}

// publishChannels runs the publish script for each of m's channels, under
// the publish id id: a second call with the same id within DedupeWindow
// stores nothing, and for a keyed publish within KeyWindow too (its
// repeats come for as long as its key is remembered).
func (b *Broker) publishChannels(ctx context.Context, m ssekit.Message, id string) error {
	if len(m.Channels) == 0 {
		return nil
	}
	dedupe := b.opts.DedupeWindow
	if m.Key != "" {
		dedupe = max(dedupe, b.opts.KeyWindow)
	}
	maxLen := max(b.opts.MaxLen, 0)
	maxAge := max(b.opts.MaxAge.Milliseconds(), 0)
	ttl := int64(0)
	if maxAge > 0 {
		ttl = b.opts.PositionTTL.Milliseconds()
	}
	also := alsoArgs(m.Channels)
	call := func(i int) (keys []string, args []any) {
		k := b.channelKey(m.Channels[i])
		return []string{k, k + ":last", k + ":pub:" + id},
			[]any{maxLen, maxAge, dedupe.Milliseconds(), ttl, k + ":live", id, m.Type, m.Data, also[i]}
	}
	b.ops.add(opPublish, len(m.Channels))
	// positions[i] is the publish's position in m.Channels[i], for the
	// record of a publish whose copies carry Also.
	positions := make([]string, len(m.Channels))
	if b.opts.WaitReplicas > 0 {
		if err := b.publishReplicated(ctx, m, call, positions); err != nil {
			return err
		}
		b.savePositions(ctx, m, id, also, positions)
		return nil
	}
	if len(m.Channels) == 1 {
		keys, args := call(0)
		if err := publishScript.Run(ctx, b.rdb, keys, args...).Err(); err != nil {
			return fmt.Errorf("redisbroker: publish to %s: %w", m.Channels[0], err)
		}
		return nil
	}
	// Many channels: one pipeline (go-redis splits it by master and sends
	// the parts at once). A master that does not have the script yet gets
	// it with EVAL, for the failed calls only.
	cmds := make([]*redis.Cmd, len(m.Channels))
	_, _ = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range m.Channels {
			keys, args := call(i)
			cmds[i] = publishScript.EvalSha(ctx, p, keys, args...)
		}
		return nil
	})
	var failed []string
	var firstErr error
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			keys, args := call(i)
			cmd = publishScript.Run(ctx, b.rdb, keys, args...)
		}
		if err := cmd.Err(); err != nil {
			failed = append(failed, m.Channels[i])
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		positions[i], _ = cmd.Val().(string)
	}
	if err := channelsFailed(failed, len(m.Channels), firstErr); err != nil {
		return err
	}
	b.savePositions(ctx, m, id, also, positions)
	return nil
}

// savePositions records where a publish whose copies carry Also was
// stored in each of its channels, so that Read gives a copy the
// publish's positions in all of them: a stream that follows several
// tells from them, on a resume, a copy of an event it already has
// through another channel (ssekit.Message.Also). Without the record (its
// write failed, the node died first), a stream still gets each event once
// per connection, and may get it twice across a reconnect that fell
// between two copies; so a failure is logged, and does not fail a publish
// that is stored.
func (b *Broker) savePositions(ctx context.Context, m ssekit.Message, id string, also, positions []string) {
	if !slices.ContainsFunc(also, func(a string) bool { return a != "" }) {
		return // no stream follows two of these channels
	}
	pairs := make([]string, 0, 2*len(m.Channels))
	for i, ch := range m.Channels {
		pairs = append(pairs, ch, positions[i])
	}
	b.ops.add(opPublish, 1)
	if err := b.rdb.Set(ctx, b.positionsKey(id), encodeNames(pairs), b.positionsTTL()).Err(); err != nil {
		b.log.Warn("redisbroker: a publish's positions were not recorded; a resume may repeat it", "publish", id, "err", err)
	}
}

// positionsKey is the key of a publish's positions: in a slot of its own,
// and with a suffix no channel's keys have.
func (b *Broker) positionsKey(id string) string {
	return "{" + b.opts.Prefix + ":pub:" + id + "}:pos"
}

// positionsTTL keeps a publish's positions as long as its copies may be
// read: MaxAge and a minute more, or, for histories bounded by count only,
// PositionTTL (a day at least).
func (b *Broker) positionsTTL() time.Duration {
	if b.opts.MaxAge > 0 {
		return b.opts.MaxAge + time.Minute
	}
	return max(b.opts.PositionTTL, 24*time.Hour)
}

// withPositions gives each copy in out of a publish with Also its
// publish's positions in all its channels, from their records (see
// savePositions); a copy without one stays as it is.
func (b *Broker) withPositions(ctx context.Context, channel string, out []ssekit.Message) {
	var idx []int
	for i := range out {
		if len(out[i].Also) > 0 && out[i].ID != "" {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	cmds := make([]*redis.StringCmd, len(idx))
	b.ops.add(opRead, 1)
	_, _ = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, i := range idx {
			cmds[j] = p.Get(ctx, b.positionsKey(out[i].ID))
		}
		return nil
	})
	for j, i := range idx {
		pairs, err := decodeNames(cmds[j].Val())
		if err != nil || len(pairs) < 4 || len(pairs)%2 != 0 {
			continue // none, or not one this broker wrote
		}
		m := &out[i]
		chans, pos := make([]string, 0, len(pairs)/2), make([]string, 0, len(pairs)/2)
		for k := 0; k < len(pairs); k += 2 {
			chans, pos = append(chans, pairs[k]), append(pos, pairs[k+1])
		}
		if p, ok := slices.BinarySearch(chans, channel); !ok || pos[p] != m.Positions[0] || !slices.IsSorted(chans) {
			continue // a record that does not agree with the copy
		}
		m.Channels, m.Positions = chans, pos
	}
}

// channelsFailed is the error of a publish that failed in some channels.
func channelsFailed(failed []string, of int, err error) error {
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("redisbroker: publish to %d of %d channels (%s…): %w", len(failed), of, failed[0], err)
}

// publishReplicated appends to each channel on its master and waits there
// until WaitReplicas replicas have the event: WAIT names no key, so the
// cluster client could not route it, and the script and its WAIT go to
// the master's own client, in one pipeline per master.
func (b *Broker) publishReplicated(ctx context.Context, m ssekit.Message, call func(int) ([]string, []any), positions []string) error {
	type group struct {
		node     redis.UniversalClient
		channels []int // indexes in m.Channels
	}
	groups := map[string]*group{}
	for i, ch := range m.Channels {
		addr, node := "", b.rdb
		if cc, ok := b.rdb.(*redis.ClusterClient); ok {
			c, err := cc.MasterForKey(ctx, b.channelKey(ch))
			if err != nil {
				return fmt.Errorf("redisbroker: publish to %s: route: %w", ch, err)
			}
			addr, node = c.Options().Addr, c
		}
		if groups[addr] == nil {
			groups[addr] = &group{node: node}
		}
		groups[addr].channels = append(groups[addr].channels, i)
	}
	var failed []string
	var firstErr error
	for _, g := range groups {
		if err := b.publishOnMaster(ctx, g.node, g.channels, call, positions); err != nil {
			if cc, ok := b.rdb.(*redis.ClusterClient); ok {
				cc.ReloadState(ctx) // a master that fails may have been replaced
			}
			for _, i := range g.channels {
				failed = append(failed, m.Channels[i])
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return channelsFailed(failed, len(m.Channels), firstErr)
}

// publishOnMaster runs the publish script for the channels of the
// publish at indexes channels, all on node's slots, then WAIT.
func (b *Broker) publishOnMaster(ctx context.Context, node redis.UniversalClient, channels []int, call func(int) ([]string, []any), positions []string) error {
	run := func(eval func(redis.Pipeliner, []string, []any) *redis.Cmd) (*redis.Cmd, []*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(channels))
		var wait *redis.Cmd
		_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, ch := range channels {
				keys, args := call(ch)
				cmds[i] = eval(p, keys, args)
			}
			wait = p.Do(ctx, "WAIT", b.opts.WaitReplicas, b.opts.WaitTimeout.Milliseconds())
			return nil
		})
		return wait, cmds, err
	}
	wait, cmds, err := run(func(p redis.Pipeliner, keys []string, args []any) *redis.Cmd {
		return publishScript.EvalSha(ctx, p, keys, args...)
	})
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		wait, cmds, err = run(func(p redis.Pipeliner, keys []string, args []any) *redis.Cmd {
			return publishScript.Eval(ctx, p, keys, args...)
		})
	}
	for i, c := range cmds {
		if c.Err() != nil {
			return c.Err()
		}
		positions[channels[i]], _ = c.Val().(string)
	}
	if err != nil {
		return err
	}
	if n, _ := wait.Int64(); n < int64(b.opts.WaitReplicas) {
		return fmt.Errorf("%d of %d replicas acknowledged within %v", n, b.opts.WaitReplicas, b.opts.WaitTimeout)
	}
	return nil
}

// publishID returns a new publish id: Redis-like "<unix ms>-<random>", so
// that ids sort by time and never collide in practice.
func publishID() string {
	return strconv.FormatInt(time.Now().UnixMilli(), 10) + "-" + strconv.FormatUint(randomUint64()>>11, 10)
}

// alsoArgs returns each channel's Also for a publish to channels (sorted),
// encoded for the publish script: encodeNames(ssekit.AlsoFollowed(channels,
// ch)), "" for none. Channels that no connection follows together (two
// users', two tenants') have the same Also, the publish's channels less
// all of them, so it asks ssekit.AlsoFollowed once per such group and
// encodes each answer once: a publish to 1,000 users asks once, where
// asking per channel, each time over the 1,000 names, takes about 11 ms.
// What is left costs what the copies store: a topic's copy names every
// user.
func alsoArgs(channels []string) []string {
	out := make([]string, len(channels))
	if len(channels) < 2 {
		return out
	}
	type group struct {
		also []string // sorted, as channels are
		enc  string
	}
	var groups []group
next:
	for i, ch := range channels {
		for _, g := range groups {
			// A channel left out of another's Also is one it is never
			// followed with: the same group.
			if _, in := slices.BinarySearch(g.also, ch); !in {
				out[i] = g.enc
				continue next
			}
		}
		also := ssekit.AlsoFollowed(channels, ch)
		groups = append(groups, group{also, encodeNames(also)})
		out[i] = groups[len(groups)-1].enc
	}
	return out
}
