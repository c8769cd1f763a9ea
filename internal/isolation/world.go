package isolation

import (
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/ssekit/sse/ssekit"
)

// The world of every run: three tenants of three users each, a kiosk (a
// stream of a tenant without a user) and anonymous streams, and topics
// that several tenants share, that one tenant or one user owns, that
// everyone may follow, and one that no one may.

var tenants = []string{"acme", "globex", "initech"}

// identity is whom a stream is for: key is what the client sends in
// X-User ("acme-u0", "kiosk@initech", "" for anonymous).
type identity struct {
	key    string
	user   string
	tenant string
}

// identities returns every identity of the world.
func identities() []identity {
	var out []identity
	for _, t := range tenants {
		for u := range 3 {
			id := t + "-u" + string(rune('0'+u))
			out = append(out, identity{key: id, user: id, tenant: t})
		}
	}
	return append(out, identity{key: "kiosk@initech", tenant: "initech"}, identity{})
}

// identify is the run's HandlerOptions.Identify: X-User names the
// identity; the tenant is the user's own; users "-u1" follow their
// tenant's document without asking, as a credential's topics.
func identify(key string) ssekit.Identity {
	who := ssekit.Identity{}
	switch {
	case key == "":
	case strings.HasPrefix(key, "kiosk@"):
		who.Tenant = strings.TrimPrefix(key, "kiosk@")
	default:
		who.User = key
		who.Tenant, _, _ = strings.Cut(key, "-u")
	}
	who.Topics = granted(who)
	return who
}

// granted returns the topics who follows without asking.
func granted(who ssekit.Identity) []string {
	if strings.HasSuffix(who.User, "-u1") {
		return []string{"doc:" + who.Tenant + "/1"}
	}
	return nil
}

// topic is one topic of the world and who may follow it.
type topic struct {
	name string
	may  func(who ssekit.Identity) bool
}

func tenantIn(ts ...string) func(ssekit.Identity) bool {
	return func(who ssekit.Identity) bool { return slices.Contains(ts, who.Tenant) }
}

func userIs(u string) func(ssekit.Identity) bool {
	return func(who ssekit.Identity) bool { return who.User == u }
}

// topics is the authorization table of the run.
var topics = []topic{
	{"public:news", func(ssekit.Identity) bool { return true }},
	{"board:shared", func(who ssekit.Identity) bool { return who.Tenant != "" }},
	{"board:acme-globex", tenantIn("acme", "globex")},
	{"doc:acme/1", tenantIn("acme")},
	{"doc:globex/1", tenantIn("globex")},
	{"doc:initech/1", tenantIn("initech")},
	{"dm:acme-u0", userIs("acme-u0")},
	{"dm:globex-u1", userIs("globex-u1")},
	{"dm:initech-u2", userIs("initech-u2")},
	// Admins of every tenant: one topic across tenants, by user.
	{"ops:alerts", func(who ssekit.Identity) bool { return strings.HasSuffix(who.User, "-u2") }},
	{"vault", func(ssekit.Identity) bool { return false }},
}

// allowed reports whether who may follow name.
func allowed(who ssekit.Identity, name string) bool {
	for _, t := range topics {
		if t.name == name {
			return t.may(who)
		}
	}
	return false
}

// allowedTopics returns the topics who may follow, and forbidden the
// others.
func allowedTopics(who ssekit.Identity) (ok, forbidden []string) {
	for _, t := range topics {
		if t.may(who) {
			ok = append(ok, t.name)
		} else {
			forbidden = append(forbidden, t.name)
		}
	}
	return ok, forbidden
}

// channelsOf returns the channels a stream of who that asked for asked
// follows, sorted.
func channelsOf(who ssekit.Identity, asked []string) []string {
	chs := []string{ssekit.BroadcastChannel}
	if who.User != "" {
		chs = append(chs, ssekit.UserChannel(who.User))
	}
	if who.Tenant != "" {
		chs = append(chs, ssekit.TenantChannel(who.Tenant))
	}
	for _, t := range append(slices.Clone(asked), who.Topics...) {
		chs = append(chs, ssekit.TopicChannel(t))
	}
	slices.Sort(chs)
	return slices.Compact(chs)
}

// pickTopics returns up to n distinct topics of pool.
func pickTopics(rng *rand.Rand, pool []string, n int) []string {
	p := slices.Clone(pool)
	rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p[:min(n, len(p))]
}

// Addressees of random publishes: the world's users, tenants and topics,
// and one of each that no stream has.
var (
	publishUsers   = []string{"acme-u0", "acme-u1", "acme-u2", "globex-u0", "globex-u1", "globex-u2", "initech-u0", "initech-u1", "initech-u2", "ghost"}
	publishTenants = []string{"acme", "globex", "initech", "umbrella"}
)

func publishTopics() []string {
	out := []string{"nobody:listens"}
	for _, t := range topics {
		out = append(out, t.name)
	}
	return out
}

// randomTarget returns a target of a random kind: everyone, users,
// tenants, topics, connections, or a combination. clients are the ids
// of the open streams; stale is a closed one's, or "".
func randomTarget(rng *rand.Rand, clients []string, stale string) ssekit.Target {
	some := func(pool []string, most int) []string {
		out := make([]string, 1+rng.IntN(most))
		for i := range out {
			out[i] = pool[rng.IntN(len(pool))] // repeats allowed: a Target may repeat an id
		}
		return out
	}
	someClients := func() []string {
		pool := slices.Clone(clients)
		if stale != "" {
			pool = append(pool, stale)
		}
		if len(pool) == 0 {
			return nil
		}
		return some(pool, 2)
	}
	tops := publishTopics()
	var to ssekit.Target
	switch k := rng.IntN(100); {
	case k < 4:
		to.All = true
	case k < 16:
		to.Users = some(publishUsers, 3)
	case k < 28:
		to.Tenants = some(publishTenants, 2)
	case k < 45:
		to.Topics = some(tops, 3)
	case k < 52:
		to.Clients = someClients()
	case k < 64:
		to.Tenants, to.Topics = some(publishTenants, 2), some(tops, 3)
	case k < 74:
		to.Users, to.Topics = some(publishUsers, 2), some(tops, 2)
	case k < 82:
		to.Users, to.Tenants = some(publishUsers, 2), some(publishTenants, 2)
	case k < 90:
		to.Topics, to.Clients = some(tops, 2), someClients()
	default:
		to.Users, to.Tenants, to.Topics, to.Clients = some(publishUsers, 2), some(publishTenants, 1), some(tops, 2), someClients()
	}
	if !to.All && to.Users == nil && to.Tenants == nil && to.Topics == nil && to.Clients == nil {
		to.All = true // no stream open yet to address
	}
	return to
}

// targetChannels returns the channels to addresses.
func targetChannels(to ssekit.Target) []string {
	if to.All {
		return []string{ssekit.BroadcastChannel}
	}
	var out []string
	for _, u := range to.Users {
		out = append(out, ssekit.UserChannel(u))
	}
	for _, t := range to.Tenants {
		out = append(out, ssekit.TenantChannel(t))
	}
	for _, t := range to.Topics {
		out = append(out, ssekit.TopicChannel(t))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// markerTarget returns the target of one channel: a barrier's marker.
func markerTarget(ch string) ssekit.Target {
	switch {
	case ch == ssekit.BroadcastChannel:
		return ssekit.Target{All: true}
	case strings.HasPrefix(ch, "user:"):
		return ssekit.Target{Users: []string{strings.TrimPrefix(ch, "user:")}}
	case strings.HasPrefix(ch, "tenant:"):
		return ssekit.Target{Tenants: []string{strings.TrimPrefix(ch, "tenant:")}}
	}
	return ssekit.Target{Topics: []string{strings.TrimPrefix(ch, "topic:")}}
}
