package cluster

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSingleNodeBootstrapApply(t *testing.T) {
	n := startNode(t, "solo", true, nil)
	waitLeader(t, n)

	r1, idx1 := set(t, n, "a", "1")
	if r1.Index != idx1 || idx1 == 0 {
		t.Fatalf("response index %d, Apply index %d", r1.Index, idx1)
	}
	r2, idx2 := set(t, n, "a", "2")
	if idx2 <= idx1 || r2.Index != idx2 || r2.Prev != "1" {
		t.Fatalf("second apply: %+v at %d (first at %d)", r2, idx2, idx1)
	}
	if v, _ := n.fsm.get("a"); v != "2" {
		t.Fatalf("fsm a=%q", v)
	}
	// raft advances AppliedIndex just after handing entries to the FSM, so
	// it may trail Apply's return for a moment.
	waitFor(t, 30*time.Second, "applied index", func() bool { return n.fsm.applied() >= idx2 })
	if n.LastIndex() < idx2 {
		t.Fatalf("last index %d, want >= %d", n.LastIndex(), idx2)
	}
	if n.State() != "Leader" || n.LastContact() != 0 {
		t.Fatalf("state %s last contact %s", n.State(), n.LastContact())
	}
	if err := n.VerifyLeader(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("VerifyLeader: %v", err)
	}
	id, addr := n.Leader()
	if id != "solo" || addr != n.Addr() {
		t.Fatalf("Leader() = %s %s, want solo %s", id, addr, n.Addr())
	}
	ss, err := n.Servers()
	if err != nil || len(ss) != 1 || ss[0] != (Server{ID: "solo", Address: n.Addr(), Suffrage: "voter", Leader: true}) {
		t.Fatalf("Servers() = %+v, %v", ss, err)
	}
	if st := n.Stats(); st["state"] != "Leader" || st["dead_servers_removed"] != "0" {
		t.Fatalf("Stats() = %v", st)
	}
	if err := n.Leave(); err == nil || !strings.Contains(err.Error(), "only voter") {
		t.Fatalf("Leave on the only voter: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "nohostport"} {
		_, err := New(Config{NodeID: "x", DataDir: dir, RaftAddr: addr, Logger: testLogger(t, "x")}, newKV())
		if err == nil {
			t.Fatalf("RaftAddr %q accepted", addr)
		}
		t.Logf("%s: %v", addr, err)
	}
	if _, err := New(Config{DataDir: dir, RaftAddr: "127.0.0.1:0"}, newKV()); err == nil {
		t.Fatal("empty NodeID accepted")
	}
}

func TestThreeNodesFollowerFailover(t *testing.T) {
	// A long ApplyTimeout: a follower that waited for it instead of
	// refusing at once could not be mistaken for a slow refusal.
	nodes := startCluster(t, 3, func(c *Config) { c.ApplyTimeout = 2 * time.Minute })
	leader := nodes[0]

	// Idempotent AddVoter.
	if err := leader.AddVoter("n2", nodes[1].Addr()); err != nil {
		t.Fatalf("repeat AddVoter: %v", err)
	}
	if ids := serverIDs(t, leader); !slices.Equal(ids, []string{"n1", "n2", "n3"}) {
		t.Fatalf("servers %v", ids)
	}

	_, idx := set(t, leader, "k", "v1")
	for _, n := range nodes[1:] {
		waitFor(t, 30*time.Second, n.NodeID()+" to apply", func() bool { return n.fsm.applied() >= idx })
		if v, _ := n.fsm.get("k"); v != "v1" {
			t.Fatalf("%s: k=%q", n.NodeID(), v)
		}
		if lc := n.LastContact(); lc < 0 || lc > 5*time.Second {
			t.Fatalf("%s: last contact %s", n.NodeID(), lc)
		}
	}

	// A follower refuses at once and names the leader.
	start := time.Now()
	_, _, err := nodes[1].Apply(ctxT(t, 5*time.Minute), cmd("k", "x"))
	var nl *ErrNotLeader
	if !errors.As(err, &nl) || nl.LeaderID != "n1" || nl.LeaderAddr != leader.Addr() {
		t.Fatalf("Apply on follower: %v", err)
	}
	t.Logf("follower refused in %s", time.Since(start))
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("follower took %s to refuse: it waited (ApplyTimeout is 2 min)", d)
	}
	if err := nodes[1].VerifyLeader(ctxT(t, 30*time.Second)); !errors.As(err, &nl) {
		t.Fatalf("VerifyLeader on follower: %v", err)
	}
	if err := nodes[2].Leave(); !errors.As(err, &nl) {
		t.Fatalf("Leave on follower: %v", err)
	}

	// Kill the leader: one of the others takes over and Apply works there.
	changed := nodes[1].LeaderChangeCh()
	if err := leader.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("LeaderChangeCh did not fire")
	}
	var next *node
	waitFor(t, 30*time.Second, "a new leader", func() bool {
		for _, n := range nodes[1:] {
			if n.IsLeader() {
				next = n
				return true
			}
		}
		return false
	})
	t.Logf("new leader %s", next.NodeID())
	r, idx2 := set(t, next, "k", "v2")
	if r.Prev != "v1" || idx2 <= idx {
		t.Fatalf("apply on new leader: %+v at %d", r, idx2)
	}
	// The other survivor forwards to the new leader.
	other := nodes[1]
	if other == next {
		other = nodes[2]
	}
	_, _, err = other.Apply(ctxT(t, 30*time.Second), cmd("k", "x"))
	if !errors.As(err, &nl) || nl.LeaderID != next.NodeID() {
		t.Fatalf("Apply on survivor follower: %v", err)
	}
}

func TestApplyWithoutQuorumReturnsErrNoLeader(t *testing.T) {
	nodes := startCluster(t, 3, func(c *Config) { c.ApplyTimeout = 1500 * time.Millisecond })
	set(t, nodes[0], "k", "v")
	for _, n := range nodes[1:] {
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	// The leader loses its lease and steps down; nobody can be elected.
	waitFor(t, 30*time.Second, "leader to step down", func() bool {
		id, _ := nodes[0].Leader()
		return !nodes[0].IsLeader() && id == ""
	})
	start := time.Now()
	_, _, err := nodes[0].Apply(ctxT(t, 5*time.Minute), cmd("k", "w"))
	took := time.Since(start)
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Apply without quorum: %v", err)
	}
	// ErrNoLeader (not the context's error) already says it gave up by
	// its ApplyTimeout; the upper bound only says it did not hang.
	t.Logf("Apply gave up after %s (ApplyTimeout 1.5s)", took)
	if took < 1400*time.Millisecond || took > time.Minute {
		t.Fatalf("Apply gave up after %s, want about 1.5s", took)
	}
	// A caller's shorter context wins.
	ctx := ctxT(t, 200*time.Millisecond)
	if _, _, err := nodes[0].Apply(ctx, cmd("k", "w")); !errors.Is(err, ctx.Err()) || ctx.Err() == nil {
		t.Fatalf("Apply with short ctx: %v", err)
	}
	if v, _ := nodes[0].fsm.get("k"); v != "v" {
		t.Fatalf("k=%q", v)
	}
}

func TestApplyWaitsForElection(t *testing.T) {
	// A bootstrapped node is not leader at once: Apply right after New must
	// wait for the election instead of failing.
	n := startNode(t, "early", true, nil)
	r, idx := set(t, n, "a", "1")
	if r.Index != idx {
		t.Fatalf("%+v %d", r, idx)
	}
}

func TestRestartKeepsData(t *testing.T) {
	n := startNode(t, "r1", true, nil)
	waitLeader(t, n)
	set(t, n, "a", "1")
	// Put part of the state in a raft snapshot and part in the log only.
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	_, idx := set(t, n, "b", "2")
	cfg := n.cfg
	addr := n.Addr()
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}

	cfg.RaftAddr = addr // same port: the configuration records it
	n2 := startNodeCfg(t, cfg)
	waitLeader(t, n2)
	waitFor(t, 30*time.Second, "replay", func() bool { return n2.fsm.applied() >= idx })
	if got := n2.fsm.all(); got["a"] != "1" || got["b"] != "2" || len(got) != 2 {
		t.Fatalf("after restart: %v", got)
	}
	if ids := serverIDs(t, n2); !slices.Equal(ids, []string{"r1"}) {
		t.Fatalf("servers after restart (bootstrap must be ignored): %v", ids)
	}
	_, idx2 := set(t, n2, "c", "3")
	if idx2 <= idx {
		t.Fatalf("index went from %d to %d", idx, idx2)
	}
}

func TestMembershipChanges(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	leader := nodes[0]
	set(t, leader, "k", "v")

	// Address conflict with another ID is refused.
	if err := leader.AddVoter("n9", nodes[1].Addr()); err == nil {
		t.Fatal("AddVoter with another server's address accepted")
	}
	// An address nobody listens on is refused before the configuration changes.
	if err := leader.AddVoter("n9", "127.0.0.1:1"); err == nil {
		t.Fatal("AddVoter of an unreachable address accepted")
	}

	// A second node started with n3's id while n3 is alive is refused, and
	// n3 stays where it is.
	n3 := nodes[2]
	impostorCfg := n3.cfg
	impostorCfg.DataDir = filepath.Join(t.TempDir(), "n3-impostor")
	impostorCfg.RaftAddr = "127.0.0.1:0"
	impostor := startNodeCfg(t, impostorCfg)
	for name, f := range map[string]func(string, string) error{"CheckAddVoter": leader.CheckAddVoter, "AddVoter": leader.AddVoter} {
		err := f("n3", impostor.Addr())
		if !errors.Is(err, ErrMembershipConflict) || !strings.Contains(err.Error(), `node id "n3" is already in use by a healthy server at `+n3.Addr()) {
			t.Fatalf("%s with a live server's id: %v", name, err)
		}
	}
	if err := leader.CheckAddVoter("n9", impostor.Addr()); err != nil {
		t.Fatalf("CheckAddVoter of a new id: %v", err)
	}
	if ss, _ := leader.Servers(); len(ss) != 3 || ss[2].ID != "n3" || ss[2].Address != n3.Addr() {
		t.Fatalf("servers after the refused join: %+v", ss)
	}
	if err := impostor.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// n3 comes back on another port: once the leader sees the old address
	// fail, AddVoter replaces its address.
	cfg := n3.cfg
	if err := n3.Shutdown(); err != nil {
		t.Fatal(err)
	}
	cfg.RaftAddr = "127.0.0.1:0"
	n3b := startNodeCfg(t, cfg)
	if n3b.Addr() == n3.Addr() {
		t.Fatal("same port")
	}
	waitFor(t, 30*time.Second, "AddVoter(n3) at its new address", func() bool {
		err := leader.AddVoter("n3", n3b.Addr())
		if err != nil && !errors.Is(err, ErrMembershipConflict) {
			t.Fatalf("AddVoter with new address: %v", err)
		}
		return err == nil
	})
	ss, err := leader.Servers()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range ss {
		if s.ID == "n3" {
			found = s.Address == n3b.Addr() && s.Suffrage == "voter"
		}
	}
	if !found || len(ss) != 3 {
		t.Fatalf("servers after address change: %+v", ss)
	}
	_, idx := set(t, leader, "k", "v2")
	waitFor(t, 30*time.Second, "n3 to catch up at its new address", func() bool { return n3b.fsm.applied() >= idx })

	// RemoveServer is idempotent.
	if err := leader.RemoveServer("n3"); err != nil {
		t.Fatal(err)
	}
	if err := leader.RemoveServer("n3"); err != nil {
		t.Fatal(err)
	}
	if ids := serverIDs(t, leader); !slices.Equal(ids, []string{"n1", "n2"}) {
		t.Fatalf("servers %v", ids)
	}

	// The leader leaves: it removes itself and n2 takes over alone.
	if err := leader.Leave(); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitFor(t, 30*time.Second, "n2 to lead", nodes[1].IsLeader)
	if ids := serverIDs(t, nodes[1]); !slices.Equal(ids, []string{"n2"}) {
		t.Fatalf("servers after leave %v", ids)
	}
	set(t, nodes[1], "after", "leave")
}
