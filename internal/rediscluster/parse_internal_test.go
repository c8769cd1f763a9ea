package rediscluster

import (
	"slices"
	"testing"
)

func TestParseClusterNodes(t *testing.T) {
	// As redis-server 7.0 writes it: a replica, a failed master that lost
	// its slots, a master with a range, a single slot and a slot being
	// migrated, and an IPv6 node.
	text := "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30002@40002 slave 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238317239 4 connected\n" +
		"292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@40003 master,fail - 1426238316232 1426238315000 2 disconnected\n" +
		"67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30001@40001,node-1 myself,master - 0 0 1 connected 0-5460 5462 [5463->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]\n" +
		"824fe116063bc5fcf9f4ffd895bc17aee7731ac3 ::1:30004@40004 master - 0 1426238316232 3 connected 5461\n"
	nodes, err := parseClusterNodes(text)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(nodes), 4; got != want {
		t.Fatalf("len(nodes)=%d, want %d", got, want)
	}
	if r := nodes[0]; r.addr != "127.0.0.1:30002" || !r.is("slave") || r.master != nodes[2].id || len(r.slots) != 0 {
		t.Errorf("replica parsed as %+v", r)
	}
	if f := nodes[1]; !f.is("master") || !f.is("fail") || len(f.slots) != 0 {
		t.Errorf("failed master parsed as %+v", f)
	}
	m := nodes[2]
	if m.addr != "127.0.0.1:30001" || !m.is("myself") {
		t.Errorf("myself parsed as %+v", m)
	}
	if got, want := m.slots, []slotRange{{0, 5460, "127.0.0.1:30001"}, {5462, 5462, "127.0.0.1:30001"}}; !slices.Equal(got, want) {
		t.Errorf("slots=%v, want %v", got, want)
	}
	if got, want := nodes[3].addr, "[::1]:30004"; got != want {
		t.Errorf("IPv6 addr=%q, want %q", got, want)
	}
	if got, want := ownerOf(append(m.slots, nodes[3].slots...), 5461), "[::1]:30004"; got != want {
		t.Errorf("ownerOf(5461)=%q, want %q", got, want)
	}

	for _, bad := range []string{
		"abc 127.0.0.1:1@2 master -\n", // too few fields
		"abc 127.0.0.1:1@2 master - 0 0 1 connected 5-3\n",
		"abc 127.0.0.1:1@2 master - 0 0 1 connected 16384\n",
		"abc nowhere master - 0 0 1 connected\n",
	} {
		if _, err := parseClusterNodes(bad); err == nil {
			t.Errorf("parseClusterNodes(%q) succeeded, want an error", bad)
		}
	}
}

func TestInfoField(t *testing.T) {
	info := "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_link_status:up\r\n"
	for field, want := range map[string]string{"role": "slave", "master_link_status": "up", "missing": ""} {
		if got := infoField(info, field); got != want {
			t.Errorf("infoField(%q)=%q, want %q", field, got, want)
		}
	}
}
