package main

import (
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// hubs are the ssehub nodes, and which of them take new connections.
type hubs struct {
	c      config
	st     store
	procs  []*proc
	ports  []int
	secret string // signs the subscribers' JWTs
	key    string // the publish key

	mu   sync.Mutex
	live []bool // set once a node is healthy, cleared before it is killed
}

// newHubs prepares (does not start) c.Nodes ssehub nodes on st.
func newHubs(c config, st store, dir string, log *os.File) (*hubs, error) {
	h := &hubs{c: c, st: st, secret: randHex(32), key: randHex(16), live: make([]bool, c.Nodes)}
	for i := range c.Nodes {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		h.ports = append(h.ports, port)
		args := []string{
			"--addr", fmt.Sprintf("127.0.0.1:%d", port),
			"--jwt-secret", h.secret, "--publish-key", h.key,
			"--max-clients", "0", "--max-clients-per-user", "0", "--max-recipients", "0",
			// The test's clients come from one machine.
			"--stream-rate-ip", "0", "--stream-rate-user", "0", "--publish-rate-ip", "0",
			// Each channel's history holds a whole run: a resync would be a
			// fault, not the history's bound.
			"--history-size", "100000", "--history-age", "1h",
			"--retry", "500ms", "--shutdown-timeout", "3s", "--log-format", "json", "--log-level", "warn",
		}
		h.procs = append(h.procs, &proc{name: "node" + strconv.Itoa(i), dir: dir, log: log, args: append(args, st.nodeArgs(i)...)})
	}
	return h, nil
}

// addr is node i's address.
func (h *hubs) addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", h.ports[i]) }

// liveNodes returns the nodes that take new connections.
func (h *hubs) liveNodes() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int
	for i, l := range h.live {
		if l {
			out = append(out, i)
		}
	}
	return out
}

// isLive reports whether node i takes new connections.
func (h *hubs) isLive(i int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live[i]
}

// setLive marks node i as taking new connections or not.
func (h *hubs) setLive(i int, l bool) {
	h.mu.Lock()
	h.live[i] = l
	h.mu.Unlock()
}

// pick returns node home if it is live, else a random live node: a client
// behind a load balancer stays on its node until the node dies.
// home < 0 picks at random every time.
func (h *hubs) pick(home int) (int, bool) {
	if home >= 0 && h.isLive(home) {
		return home, true
	}
	live := h.liveNodes()
	if len(live) == 0 {
		return 0, false
	}
	return live[mrand.IntN(len(live))], true
}

// pickOther returns a random live node other than not, or not itself when
// it is the only live one: a publisher retries on another node, as it
// would behind a load balancer that took the failed node out.
func (h *hubs) pickOther(not int) (int, bool) {
	live := h.liveNodes()
	others := slices.DeleteFunc(slices.Clone(live), func(i int) bool { return i == not })
	switch {
	case len(others) > 0:
		return others[mrand.IntN(len(others))], true
	case len(live) > 0:
		return live[0], true
	}
	return 0, false
}

// waitHealthy waits until node i answers /healthz with 200, at most within.
func (h *hubs) waitHealthy(i int, within time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://" + h.addr(i) + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("node %d not healthy within %v", i, within)
}

// start starts node i, retrying while the store is down (a node refuses to
// start without it), ten times at most.
func (h *hubs) start(i int) error {
	for range 10 {
		if err := h.procs[i].start(h.c.SSEHub); err != nil {
			return err
		}
		if err := h.waitHealthy(i, 8*time.Second); err == nil {
			h.setLive(i, true)
			return nil
		}
		h.procs[i].stop(syscall.SIGKILL)
		time.Sleep(time.Second)
	}
	return fmt.Errorf("node %d did not start after 10 attempts (see the processes' log)", i)
}

// kill takes node i out of the dials, then kills it with SIGKILL: its
// clients lose their streams with no goodbye, as in a crash.
func (h *hubs) kill(i int) {
	h.setLive(i, false)
	h.procs[i].stop(syscall.SIGKILL)
}

// startDead starts every node that is not live, for the drain.
func (h *hubs) startDead() error {
	for i := range h.procs {
		if !h.isLive(i) {
			if err := h.start(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// stop ends every node with SIGTERM (bounded by proc.stop).
func (h *hubs) stop() {
	for i, p := range h.procs {
		h.setLive(i, false)
		p.stop(syscall.SIGTERM)
	}
}
