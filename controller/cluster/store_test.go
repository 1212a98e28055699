package cluster

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// diskFull makes a node's raft store writes fail with ENOSPC while it is
// set.
type diskFull struct{ on atomic.Bool }

func (d *diskFull) fault() error {
	if d.on.Load() {
		return syscall.ENOSPC
	}
	return nil
}

// TestApplyFollowersCannotStore: when a majority of the followers answer
// but cannot store entries (full disks), raft never commits and never steps
// down; Apply must not wait for ever: the command in the log gets
// ErrCommitTimeout (outcome unknown), one queued behind it ErrNotSubmitted,
// both within CommitWait; the leader's CommitStalled counts up. Once the
// disks have room again, writes commit, the followers' StorageError and the
// leader's CommitStalled clear.
func TestApplyFollowersCannotStore(t *testing.T) {
	nodes, full := fullDiskCluster(t)
	leader := nodes[0]
	set(t, leader, "before", "1")

	full["n2"].on.Store(true)
	full["n3"].on.Store(true)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				time.Sleep(100 * time.Millisecond) // queued behind the first
			}
			_, _, errs[i] = leader.Apply(ctxT(t, time.Minute), cmd("during", string(rune('a'+i))))
		}()
	}
	wg.Wait()
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Apply took %s with CommitWait 1s", took)
	}
	if !errors.Is(errs[0], ErrCommitTimeout) {
		t.Errorf("first Apply: %v, want ErrCommitTimeout", errs[0])
	}
	if !errors.Is(errs[1], ErrNotSubmitted) && !errors.Is(errs[1], ErrCommitTimeout) {
		t.Errorf("second Apply: %v, want ErrNotSubmitted (or ErrCommitTimeout if it shared the entry)", errs[1])
	}
	for _, n := range nodes[1:] {
		waitFor(t, 30*time.Second, n.NodeID()+" to report its store failing", func() bool {
			since, err := n.StorageError()
			return errors.Is(err, syscall.ENOSPC) && !since.IsZero()
		})
	}
	if _, err := leader.StorageError(); err != nil {
		t.Errorf("leader's StorageError: %v", err)
	}
	// The leader can tell that it is not committing: its commit index
	// stands still behind its log.
	waitFor(t, 30*time.Second, "the leader to report its commits stalled", func() bool {
		d, _ := leader.CommitStalled()
		return d >= 2*time.Second
	})
	if _, idx := leader.CommitStalled(); idx == 0 || idx >= leader.LastIndex() {
		t.Errorf("CommitStalled's index %d, want the commit index below the last index %d", idx, leader.LastIndex())
	}
	for _, n := range nodes[1:] {
		if d, _ := n.CommitStalled(); d != 0 {
			t.Errorf("follower %s reports commits stalled for %s", n.NodeID(), d)
		}
	}

	full["n2"].on.Store(false)
	full["n3"].on.Store(false)
	waitFor(t, 60*time.Second, "a write to commit again", func() bool {
		_, _, err := leader.Apply(ctxT(t, time.Minute), cmd("after", "1"))
		return err == nil
	})
	for _, n := range nodes[1:] {
		waitFor(t, 60*time.Second, n.NodeID()+"'s store to recover", func() bool {
			_, err := n.StorageError()
			_, ok := n.fsm.get("after")
			return err == nil && ok
		})
	}
	waitFor(t, 10*time.Second, "the leader's commit stall to clear", func() bool {
		d, _ := leader.CommitStalled()
		return d == 0
	})
	// The command whose outcome was unknown committed in the end.
	if v, ok := leader.fsm.get("during"); !ok || v != "a" {
		t.Errorf("during = %q, %v; want the first command's value a once the disks have room", v, ok)
	}
}

// TestShutdownWhileCommitsStall: a leader whose followers cannot store its
// entries neither commits nor steps down. A Barrier still ends with its
// context, and Shutdown returns: it used to wait for the entries' futures,
// which only raft's own shutdown (run last) settles, so a restart of the
// stuck leader hung until the service manager killed it.
func TestShutdownWhileCommitsStall(t *testing.T) {
	nodes, full := fullDiskCluster(t)
	leader := nodes[0]
	set(t, leader, "before", "1")
	full["n2"].on.Store(true)
	full["n3"].on.Store(true)
	if _, _, err := leader.Apply(ctxT(t, time.Minute), cmd("during", "a")); !errors.Is(err, ErrCommitTimeout) {
		t.Fatalf("Apply: %v, want ErrCommitTimeout", err)
	}
	if err := leader.Barrier(ctxT(t, 500*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Barrier while commits stall: %v, want the context's deadline", err)
	}
	done := make(chan error, 1)
	go func() { done <- leader.Shutdown() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown still waits 30 s later")
	}
	full["n2"].on.Store(false)
	full["n3"].on.Store(false)
}

// fullDiskCluster is a 3-node cluster (n1 leading) whose nodes' raft stores
// fail with ENOSPC while their diskFull is on, with a commit wait of 1 s.
func fullDiskCluster(t *testing.T) ([]*node, map[string]*diskFull) {
	t.Helper()
	full := map[string]*diskFull{"n1": {}, "n2": {}, "n3": {}}
	nodes := startCluster(t, 3, func(c *Config) {
		c.Coalesce = kvCoalescer{}
		c.CommitWait = time.Second
		c.storeFault = full[c.NodeID].fault
	})
	return nodes, full
}

// TestStoreFailingUntilLogWrites: once a log write has failed (a full
// disk), the store counts as failing, since the first failure, until a
// log write succeeds: a term or vote saved meanwhile (a few bytes bolt
// finds room for) does not end it. Before, a single node whose disk was
// full stepped down and was elected again twice a second, each time
// logging "writable again" and resetting regent_raft_store_failing_seconds
// and /healthz. A failed stable-store write alone is ended by one that
// succeeds.
func TestStoreFailingUntilLogWrites(t *testing.T) {
	bs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(t.TempDir(), "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	var full diskFull
	d := &diskStore{BoltStore: bs, fault: full.fault, log: hclog.NewNullLogger()}
	entry := []*raft.Log{{Index: 1, Term: 1, Data: []byte("x")}}

	full.on.Store(true)
	if err := d.StoreLogs(entry); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("StoreLogs on a full disk: %v", err)
	}
	since, err := d.failing()
	if err == nil {
		t.Fatal("not failing after a failed log write")
	}
	full.on.Store(false)
	if err := d.SetUint64([]byte(keyCurrentTerm), 2); err != nil {
		t.Fatal(err)
	}
	if err := d.Set([]byte("LastVoteCand"), []byte("n1")); err != nil {
		t.Fatal(err)
	}
	if s, err := d.failing(); err == nil || !s.Equal(since) {
		t.Fatalf("after a term and a vote saved: failing since %v (%v), want since %v", s, err, since)
	}
	if err := d.StoreLogs(entry); err != nil {
		t.Fatal(err)
	}
	if _, err := d.failing(); err != nil {
		t.Fatalf("still failing after a log write: %v", err)
	}

	full.on.Store(true)
	if err := d.Set([]byte("LastVoteCand"), []byte("n2")); err == nil {
		t.Fatal("Set on a full disk")
	}
	full.on.Store(false)
	if err := d.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.failing(); err != nil {
		t.Fatalf("a failed vote save not ended by one that succeeded: %v", err)
	}
}
