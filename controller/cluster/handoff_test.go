package cluster

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTransferLeadership(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	n1, n3 := nodes[0], nodes[2]
	set(t, n1, "k", "v1")

	// Refusals change nothing.
	if _, err := n1.TransferLeadership(ctxT(t, 5*time.Second), "n9"); !errors.Is(err, ErrUnknownServer) {
		t.Fatalf("to an unknown node: %v, want ErrUnknownServer", err)
	}
	var nl *ErrNotLeader
	if _, err := n3.TransferLeadership(ctxT(t, 5*time.Second), ""); !errors.As(err, &nl) || nl.LeaderID != "n1" {
		t.Fatalf("on a follower: %v, want *ErrNotLeader naming n1", err)
	}
	if id, err := n1.TransferLeadership(ctxT(t, 5*time.Second), "n1"); err != nil || id != "n1" || !n1.IsLeader() {
		t.Fatalf("to itself: %q, %v; want n1 still leading", id, err)
	}

	// To a named voter.
	id, err := n1.TransferLeadership(ctxT(t, time.Minute), "n3")
	if err != nil || id != "n3" {
		t.Fatalf("to n3: %q, %v", id, err)
	}
	waitFor(t, 30*time.Second, "n3 to lead", n3.IsLeader)
	set(t, n3, "k", "v2")

	// To whoever is most up to date.
	id, err = n3.TransferLeadership(ctxT(t, time.Minute), "")
	if err != nil || id == "n3" || id == "" {
		t.Fatalf("to any: %q, %v", id, err)
	}
	if n3.IsLeader() {
		t.Fatal("n3 still leads after handing over")
	}
}

func TestTransferLeadershipSingleNode(t *testing.T) {
	n := startNode(t, "solo", true, nil)
	waitLeader(t, n)
	if _, err := n.TransferLeadership(ctxT(t, 5*time.Second), ""); !errors.Is(err, ErrNoOtherVoter) {
		t.Fatalf("single node: %v, want ErrNoOtherVoter", err)
	}
	if !n.IsLeader() {
		t.Fatal("single node lost leadership")
	}
	// The gate is open again.
	done, err := n.BeginWrite(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	done()
}

// TestTransferLeadershipGate checks the hand-off's gate: a write admitted
// before the transfer holds it until the write is done, and a write arriving
// during the transfer waits until it is over instead of failing.
func TestTransferLeadershipGate(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	n1 := nodes[0]

	// A write in progress.
	done, err := n1.BeginWrite(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		id  string
		err error
	}
	transferred := make(chan result, 1)
	go func() {
		id, err := n1.TransferLeadership(ctxT(t, time.Minute), "n2")
		transferred <- result{id, err}
	}()
	// The transfer waits for it: n1 still leads and can commit it.
	time.Sleep(300 * time.Millisecond)
	if !n1.IsLeader() {
		t.Fatal("leadership moved while a write was in progress")
	}
	if _, _, err := n1.Apply(ctxT(t, 5*time.Second), cmd("k", "in progress")); err != nil {
		t.Fatalf("the write in progress failed: %v", err)
	}

	// A new write waits at the gate until the transfer is over.
	var admitted atomic.Bool
	admittedCh := make(chan error, 1)
	go func() {
		d, err := n1.BeginWrite(ctxT(t, time.Minute))
		if err == nil {
			admitted.Store(true)
			d()
		}
		admittedCh <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if admitted.Load() {
		t.Fatal("a new write passed the gate during a hand-off")
	}
	done()
	r := <-transferred
	if r.err != nil || r.id != "n2" {
		t.Fatalf("transfer: %q, %v", r.id, r.err)
	}
	if err := <-admittedCh; err != nil {
		t.Fatalf("the waiting write: %v", err)
	}
	// By then n1 no longer leads: the caller forwards the write.
	if n1.IsLeader() {
		t.Fatal("n1 leads after the hand-off")
	}
	waitFor(t, 30*time.Second, "n2 to have the write", func() bool { v, _ := nodes[1].fsm.get("k"); return v == "in progress" })
}

// TestTransferLeadershipToDeadNode: a target that cannot take over (it is
// down, so raft's transfer times out) is tried again a bounded number of
// times, each retry waiting until raft has let go of the failed one, and
// then the transfer fails with this node still leading and writing.
func TestTransferLeadershipToDeadNode(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	n1, n3 := nodes[0], nodes[2]
	set(t, n1, "k", "v1")
	if err := n3.Shutdown(); err != nil {
		t.Fatal(err)
	}
	set(t, n1, "k", "v1b") // n3 falls behind: raft waits for it to catch up, and times out
	start := time.Now()
	_, err := n1.TransferLeadership(ctxT(t, 30*time.Second), "n3")
	took := time.Since(start)
	// raft fails an attempt to a dead target by a timeout or, under load,
	// with "replication failed"; never "in progress".
	if err == nil || errors.Is(err, ErrLeadershipTransferInProgress) ||
		!strings.Contains(err.Error(), "timeout") && !strings.Contains(err.Error(), "replication failed") {
		t.Fatalf("transfer to a dead node: %v, want it to time out or fail replication (not to fail as in progress)", err)
	}
	t.Logf("transfer to a dead node failed after %s: %v", took.Round(time.Millisecond), err)
	if min := transferAttempts * DefaultElectionTimeout; took < min {
		t.Errorf("it failed after %s: fewer than %d attempts of an election timeout each", took, transferAttempts)
	}
	if !n1.IsLeader() {
		t.Fatal("n1 lost leadership")
	}
	set(t, n1, "k", "v2") // the gate is open again
	// And a transfer to a live node works right after.
	if id, err := n1.TransferLeadership(ctxT(t, 10*time.Second), "n2"); err != nil || id != "n2" {
		t.Fatalf("to n2 afterwards: %q, %v", id, err)
	}
}

// TestReadyForReads: a node that wins leadership is ready for reads only
// once a Barrier of its term has returned (its FSM then holds every write
// committed before the term), and again after each new election; a
// follower never is. AwaitReadyForReads waits for the Barrier.
func TestReadyForReads(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	n1, n2 := nodes[0], nodes[1]
	if n2.ReadyForReads() {
		t.Fatal("a follower is ready for reads")
	}
	if err := n1.Barrier(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !n1.ReadyForReads() {
		t.Fatal("the leader is not ready after a Barrier")
	}
	set(t, n1, "k", "v1")
	if _, err := n1.TransferLeadership(ctxT(t, time.Minute), "n2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "n2 to lead", n2.IsLeader)
	if n1.ReadyForReads() || n2.ReadyForReads() {
		t.Fatalf("ready before the new term's Barrier: n1 %v n2 %v", n1.ReadyForReads(), n2.ReadyForReads())
	}
	if err := n2.AwaitReadyForReads(ctxT(t, 200*time.Millisecond)); err == nil {
		t.Fatal("AwaitReadyForReads returned before any Barrier of the term")
	}
	go n2.Barrier(ctxT(t, 30*time.Second))
	if err := n2.AwaitReadyForReads(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if v, _ := n2.fsm.get("k"); v != "v1" {
		t.Fatalf("the new leader, ready, has k=%q", v)
	}
	var nl *ErrNotLeader
	if err := n1.AwaitReadyForReads(ctxT(t, 5*time.Second)); !errors.As(err, &nl) || nl.LeaderID != "n2" {
		t.Fatalf("the old leader: %v, want *ErrNotLeader naming n2", err)
	}
}
