package cluster

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// TestForeignStateRefused: a node started on another cluster's data dir
// (same node id, the address its new cluster knows) got its conflicting
// log tail replaced by the leader's, but kept the other cluster's state,
// restored from its snapshot at start (raft never re-applies entries at or
// below the applied index): it served and authenticated another cluster's
// data and would apply the new entries on top. (Without a snapshot the
// node's state is empty until a leader's commit index arrives, and it
// simply becomes a member of the new cluster.) The truncation of applied entries must be refused and
// StateConflict called with ErrStateConflict, the log left as it was.
func TestForeignStateRefused(t *testing.T) {
	a := startCluster(t, 3, nil)
	for i := range 20 {
		set(t, a[0], fmt.Sprintf("a%d", i), "x")
	}
	// Leadership changes raise A's term above B's, so the logs differ in
	// their terms (two young clusters can agree on terms entry by entry,
	// which raft cannot tell from one log).
	leader := a[0]
	for range 3 {
		to, err := leader.TransferLeadership(ctxT(t, 30*time.Second), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range a {
			if n.NodeID() == to {
				leader = n
			}
		}
		waitFor(t, 30*time.Second, "the new leader", leader.IsLeader)
	}
	for i := range 20 {
		set(t, leader, fmt.Sprintf("a-late%d", i), "x")
	}
	var foreign *node
	for _, n := range a {
		if n != leader {
			foreign = n
			break
		}
	}
	waitFor(t, 30*time.Second, "the follower to apply A's writes", func() bool { _, ok := foreign.fsm.get("a-late19"); return ok })
	// A snapshot: on restart it is applied at once (entries after it wait
	// for a leader's commit index), so the node serves A's state.
	if err := foreign.SnapshotSave(ctxT(t, 30*time.Second), io.Discard); err != nil {
		t.Fatal(err)
	}
	foreignCfg := foreign.cfg
	if err := foreign.Shutdown(); err != nil {
		t.Fatal(err)
	}

	b := startCluster(t, 3, nil)
	set(t, b[0], "b", "1")
	var victim *node
	for _, n := range b[1:] {
		if n.NodeID() == foreignCfg.NodeID {
			victim = n
		}
	}
	if victim == nil {
		victim = b[1]
		foreignCfg.NodeID = victim.NodeID()
	}
	addr := victim.Addr()
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	conflicts := make(chan error, 100)
	foreignCfg.RaftAddr = addr
	foreignCfg.Logger = testLogger(t, "foreign-"+foreignCfg.NodeID)
	foreignCfg.StateConflict = func(err error) { conflicts <- err }
	f := startNodeCfg(t, foreignCfg)
	for i := range 5 {
		// Writes in B's current term, which A's log has not got.
		b[0].Apply(ctxT(t, 10*time.Second), cmd(fmt.Sprintf("b%d", i), "1"))
	}
	select {
	case err := <-conflicts:
		if !errors.Is(err, ErrStateConflict) {
			t.Fatalf("StateConflict got %v", err)
		}
		t.Logf("refused: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the foreign node took B's log over A's applied state without a word")
	}
	if _, ok := f.fsm.get("a-late19"); !ok {
		t.Error("the foreign node does not hold A's state: the test proves nothing")
	}
	if _, ok := f.fsm.get("b"); ok {
		t.Error("the foreign node applied B's entries on top of A's state")
	}
}
