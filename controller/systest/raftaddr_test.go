package systest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRaftAddrChange restarts a follower with the same data dir and node id
// but another -raft-addr (a host renumbered, a port moved), with its -join
// flag as before. The cluster knows the node by its old address, so no
// leader reaches it at the new one: before, the node ignored -join because
// it had raft state and stayed "no leader" for ever. It must ask the
// cluster to take the new address, serve again, and say meanwhile on
// /healthz why it is not ready.
func TestRaftAddrChange(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.leader(30 * time.Second)
	var f *node
	for _, n := range c.followers(leader) {
		if n.name != "node1" { // node1 bootstraps; the others carry -join
			f = n
			break
		}
	}
	c.create(leader, "member", map[string]any{"name": "addr-before"})
	f.stop()
	old := f.raftAddr
	f.raftAddr = freeAddr(t)
	c.create(leader, "member", map[string]any{"name": "addr-during"})
	f.start()
	start := time.Now()

	err := waitFor(90*time.Second, func() error {
		ms, err := c.members(leader)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == f.name && (m.RaftAddr != f.raftAddr || !m.Healthy) {
				return fmt.Errorf("members: %s at %s, healthy %v", m.ID, m.RaftAddr, m.Healthy)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s moved from %s to %s: %v", f.name, old, f.raftAddr, err)
	}
	c.waitLocalReady(f, 60*time.Second)
	t.Logf("%s serves at its new raft address %s %s after its restart", f.name, f.raftAddr, time.Since(start).Round(time.Millisecond))
	id := c.create(f, "member", map[string]any{"name": "addr-after"})
	for _, n := range c.nodes {
		if err := c.waitMember(n, id, 30*time.Second); err != nil {
			t.Error(err)
		}
	}
	if log := f.tail(64 << 10); !strings.Contains(log, "raft address changed") {
		t.Errorf("%s did not log the address change", f.name)
	}
}
