package rediscluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// numSlots is the number of hash slots of every Redis Cluster.
const numSlots = 16384

// slotRange is a range of slots, first to last included, and the address
// of the master serving it.
type slotRange struct {
	first, last int
	addr        string
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr string
	flags    []string // myself, master, slave, fail?, fail, handshake, …
	master   string   // the master's id for a replica, else "-"
	slots    []slotRange
}

func (n clusterNode) is(flag string) bool { return slices.Contains(n.flags, flag) }

// parseClusterNodes parses the reply of CLUSTER NODES:
//
//	<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <epoch> <link> <slot>...
//
// where a slot is "n" or "first-last", or "[n->-id]" or "[n-<-id]" for a
// slot being migrated, which is skipped. Addresses are returned as
// net.JoinHostPort writes them.
func parseClusterNodes(text string) ([]clusterNode, error) {
	var nodes []clusterNode
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q: too few fields", line)
		}
		hostport, _, _ := strings.Cut(f[1], "@")
		i := strings.LastIndexByte(hostport, ':')
		if i < 0 {
			return nil, fmt.Errorf("CLUSTER NODES line %q: bad address", line)
		}
		n := clusterNode{
			id:     f[0],
			addr:   net.JoinHostPort(hostport[:i], hostport[i+1:]),
			flags:  strings.Split(f[2], ","),
			master: f[3],
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue
			}
			a, b, isRange := strings.Cut(s, "-")
			first, err1 := strconv.Atoi(a)
			last, err2 := first, error(nil)
			if isRange {
				last, err2 = strconv.Atoi(b)
			}
			if err1 != nil || err2 != nil || first < 0 || last < first || last >= numSlots {
				return nil, fmt.Errorf("CLUSTER NODES line %q: bad slot %q", line, s)
			}
			n.slots = append(n.slots, slotRange{first: first, last: last, addr: n.addr})
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// infoField returns the value of field in an INFO or CLUSTER INFO reply.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// permanentError is an error that waiting longer will not cure, such as a
// node that died.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// poll calls check at once and then every pollEvery until it returns nil,
// returns a permanentError, or ctx is done. On ctx done the error says
// what check last found wrong.
func poll(ctx context.Context, check func(context.Context) error) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if p, ok := errors.AsType[permanentError](err); ok {
			return p.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%v: %w", err, ctx.Err())
		case <-t.C:
		}
	}
}

// WaitHealthy waits until every live node (running and not paused)
// reports cluster_state:ok; all of them know each other, see none of
// them as failing, and agree on each one's role and on which master
// serves each of the 16384 slots; every such master is live; and every
// live replica's link to its master is up. It polls every 100ms. It
// returns early, with the end of the node's log, if a node dies on its
// own; on ctx done, the error says what was still wrong.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	if err := c.waitHealthy(ctx); err != nil {
		return fmt.Errorf("rediscluster: %w", err)
	}
	return nil
}

func (c *Cluster) waitHealthy(ctx context.Context) error {
	if err := poll(ctx, func(ctx context.Context) error { _, err := c.survey(ctx); return err }); err != nil {
		return fmt.Errorf("wait healthy: %w", err)
	}
	return nil
}

// survey asks every live node how it sees the cluster and returns the slot
// map they all agree on, or the first thing that is not healthy.
func (c *Cluster) survey(ctx context.Context) ([]slotRange, error) {
	live := c.live()
	if len(live) == 0 {
		return nil, errors.New("no node is running")
	}
	isLive := make(map[string]bool, len(live))
	for _, p := range live {
		isLive[p.n.addr] = true
	}
	var agreed view
	for i, p := range live {
		v, err := c.view(ctx, p, isLive)
		if err != nil {
			return nil, err
		}
		for _, r := range v.slots {
			if !isLive[r.addr] {
				return nil, fmt.Errorf("%s: slots %d-%d are served by %s, which is killed or paused", p.n.addr, r.first, r.last, r.addr)
			}
		}
		if len(v.roles) != len(live) {
			return nil, fmt.Errorf("%s knows %d of the %d live nodes: %v", p.n.addr, len(v.roles), len(live), v.roles)
		}
		if i == 0 {
			agreed = v
			continue
		}
		if !slices.Equal(v.slots, agreed.slots) {
			return nil, fmt.Errorf("%s and %s disagree on the slots: %v, %v", live[0].n.addr, p.n.addr, agreed.slots, v.slots)
		}
		if !slices.Equal(v.roles, agreed.roles) {
			return nil, fmt.Errorf("%s and %s disagree on the roles: %v, %v", live[0].n.addr, p.n.addr, agreed.roles, v.roles)
		}
	}
	return agreed.slots, nil
}

// view is the cluster as one node sees it.
type view struct {
	slots []slotRange // sorted, covering every slot
	roles []string    // "addr master" or "addr replica of addr" for each live node, sorted
}

// view returns the cluster as the node sees it once it reports
// cluster_state:ok, sees no live node as failing, sees every slot served
// and, if a replica, has its master link up.
func (c *Cluster) view(ctx context.Context, p proc, isLive map[string]bool) (view, error) {
	var v view
	info, err := p.admin.ClusterInfo(ctx).Result()
	if err != nil {
		return v, c.noAnswer(p, "CLUSTER INFO", err)
	}
	if st := infoField(info, "cluster_state"); st != "ok" {
		return v, fmt.Errorf("%s: cluster_state:%s", p.n.addr, st)
	}
	text, err := p.admin.ClusterNodes(ctx).Result()
	if err != nil {
		return v, c.noAnswer(p, "CLUSTER NODES", err)
	}
	nodes, err := parseClusterNodes(text)
	if err != nil {
		return v, fmt.Errorf("%s: %w", p.n.addr, err)
	}
	addrOf := make(map[string]string, len(nodes))
	for _, n := range nodes {
		addrOf[n.id] = n.addr
	}
	replica := false
	for _, n := range nodes {
		if n.is("myself") {
			replica = n.is("slave")
		}
		if n.is("master") && !n.is("fail") {
			v.slots = append(v.slots, n.slots...)
		}
		if !isLive[n.addr] || n.is("handshake") || n.is("noaddr") {
			continue
		}
		if n.is("fail") || n.is("fail?") {
			return v, fmt.Errorf("%s sees %s as failing (%s)", p.n.addr, n.addr, strings.Join(n.flags, ","))
		}
		role := n.addr + " master"
		if n.is("slave") {
			role = n.addr + " replica of " + addrOf[n.master]
		}
		v.roles = append(v.roles, role)
	}
	slices.Sort(v.roles)
	slices.SortFunc(v.slots, func(a, b slotRange) int { return cmp.Compare(a.first, b.first) })
	next := 0
	for _, r := range v.slots {
		if r.first != next {
			return v, fmt.Errorf("%s: slots %d-%d are not served", p.n.addr, next, r.first-1)
		}
		next = r.last + 1
	}
	if next != numSlots {
		return v, fmt.Errorf("%s: slots %d-%d are not served", p.n.addr, next, numSlots-1)
	}
	if replica {
		repl, err := p.admin.Info(ctx, "replication").Result()
		if err != nil {
			return v, c.noAnswer(p, "INFO replication", err)
		}
		if st := infoField(repl, "master_link_status"); st != "up" {
			return v, fmt.Errorf("%s: replica of %s:%s, master_link_status:%s", p.n.addr,
				infoField(repl, "master_host"), infoField(repl, "master_port"), st)
		}
	}
	return v, nil
}

// noAnswer describes a node that failed to answer what: a permanent error
// if it died on its own, else one to wait out.
func (c *Cluster) noAnswer(p proc, what string, err error) error {
	if p.hasExited() {
		if c.killedOnPurpose(p) {
			return fmt.Errorf("%s was killed meanwhile", p.n.addr)
		}
		return permanentError{p.diedErr()}
	}
	return fmt.Errorf("%s: %s: %v%s", p.n.addr, what, err, p.n.tail())
}

// MasterAddrs returns the addresses of the masters serving slots, as the
// first live node to answer sees them, ordered by the first slot each
// serves. Masters marked failed are left out. Views differ while the
// cluster changes: after WaitHealthy, every node would give this answer.
func (c *Cluster) MasterAddrs(ctx context.Context) ([]string, error) {
	var errs []error
	for _, p := range c.live() {
		text, err := p.admin.ClusterNodes(ctx).Result()
		if err != nil {
			errs = append(errs, c.noAnswer(p, "CLUSTER NODES", err))
			continue
		}
		nodes, err := parseClusterNodes(text)
		if err != nil {
			return nil, fmt.Errorf("rediscluster: masters: %s: %w", p.n.addr, err)
		}
		var masters []clusterNode
		for _, n := range nodes {
			if n.is("master") && !n.is("fail") && len(n.slots) > 0 {
				masters = append(masters, n)
			}
		}
		slices.SortFunc(masters, func(a, b clusterNode) int { return cmp.Compare(a.slots[0].first, b.slots[0].first) })
		addrs := make([]string, len(masters))
		for i, m := range masters {
			addrs[i] = m.addr
		}
		return addrs, nil
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no node is running"))
	}
	return nil, fmt.Errorf("rediscluster: masters: %w", errors.Join(errs...))
}

// Failover kills the master at masterAddr, as a crash would, and waits
// until one of its replicas has taken over: it serves the master's slots
// and the cluster is healthy again, as WaitHealthy has it. It returns the
// new master's address. It fails at once if the master has no replica.
// With the 2s node timeout, a failover takes a few seconds.
func (c *Cluster) Failover(ctx context.Context, masterAddr string) (string, error) {
	newMaster, err := c.failover(ctx, masterAddr)
	if err != nil {
		return "", fmt.Errorf("rediscluster: failover %s: %w", masterAddr, err)
	}
	return newMaster, nil
}

func (c *Cluster) failover(ctx context.Context, masterAddr string) (string, error) {
	live := c.live()
	i := slices.IndexFunc(live, func(p proc) bool { return p.n.addr == masterAddr })
	if i < 0 {
		return "", errors.New("no such node running")
	}
	me, err := c.myself(ctx, live[i])
	if err != nil {
		return "", err
	}
	if !me.is("master") || len(me.slots) == 0 {
		return "", fmt.Errorf("not a master serving slots (flags %s)", strings.Join(me.flags, ","))
	}
	// What counts is what each replica believes: a replica that the master
	// has not heard of yet still takes over.
	var replicas []string
	for _, p := range live {
		if n, err := c.myself(ctx, p); err == nil && n.is("slave") && n.master == me.id {
			replicas = append(replicas, n.addr)
		}
	}
	if len(replicas) == 0 {
		return "", errors.New("it has no replica to take over")
	}

	begin := time.Now()
	if err := c.kill(masterAddr); err != nil {
		return "", err
	}
	var newMaster string
	err = poll(ctx, func(ctx context.Context) error {
		slots, err := c.survey(ctx)
		if err != nil {
			return err
		}
		slot := me.slots[0].first
		owner := ownerOf(slots, slot)
		if !slices.Contains(replicas, owner) {
			return fmt.Errorf("slot %d is served by %s, not by a former replica %v", slot, owner, replicas)
		}
		newMaster = owner
		return nil
	})
	if err != nil {
		return "", err
	}
	c.opts.Logf("rediscluster: %s took over from %s in %v", newMaster, masterAddr, time.Since(begin).Round(time.Millisecond))
	return newMaster, nil
}

// myself returns the node's own line of CLUSTER NODES.
func (c *Cluster) myself(ctx context.Context, p proc) (clusterNode, error) {
	text, err := p.admin.ClusterNodes(ctx).Result()
	if err != nil {
		return clusterNode{}, c.noAnswer(p, "CLUSTER NODES", err)
	}
	nodes, err := parseClusterNodes(text)
	if err != nil {
		return clusterNode{}, fmt.Errorf("%s: %w", p.n.addr, err)
	}
	for _, n := range nodes {
		if n.is("myself") {
			return n, nil
		}
	}
	return clusterNode{}, fmt.Errorf("%s: no myself in CLUSTER NODES", p.n.addr)
}

// ownerOf returns the address of the master serving slot, or "".
func ownerOf(slots []slotRange, slot int) string {
	for _, r := range slots {
		if r.first <= slot && slot <= r.last {
			return r.addr
		}
	}
	return ""
}
