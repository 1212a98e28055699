package cluster

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func TestSnapshotSaveRestoreIntoFreshNode(t *testing.T) {
	src := startNode(t, "src", true, nil)
	waitLeader(t, src)
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}} {
		set(t, src, kv[0], kv[1])
	}
	_, srcIdx := set(t, src, "a", "4")
	want := src.fsm.all()

	var buf bytes.Buffer
	if err := src.SnapshotSave(ctxT(t, 10*time.Second), &buf); err != nil {
		t.Fatalf("SnapshotSave: %v", err)
	}
	saved := bytes.Clone(buf.Bytes())
	// The bytes are the FSM's own format.
	if s, err := decodeKV(bytes.NewReader(saved)); err != nil || !maps.Equal(s.KV, want) {
		t.Fatalf("saved snapshot %q: %v", saved, err)
	}
	// Saving again with nothing new still works.
	buf.Reset()
	if err := src.SnapshotSave(ctxT(t, 10*time.Second), &buf); err != nil {
		t.Fatalf("second SnapshotSave: %v", err)
	}

	// Restore into a freshly bootstrapped node that has state of its own.
	dst := startNode(t, "dst", true, nil)
	waitLeader(t, dst)
	set(t, dst, "dst-only", "x")
	validate := func(r io.Reader) (uint64, error) { return dst.fsm.ValidateSnapshot(r) }
	if err := dst.SnapshotRestore(ctxT(t, 10*time.Second), bytes.NewReader(saved), validate); err != nil {
		t.Fatalf("SnapshotRestore: %v", err)
	}
	if got := dst.fsm.all(); !maps.Equal(got, want) {
		t.Fatalf("after restore %v, want %v", got, want)
	}
	// Indexes keep moving forward past the source's.
	r, idx := set(t, dst, "d", "5")
	if idx <= srcIdx || r.Index != idx {
		t.Fatalf("apply after restore at %d, source was at %d", idx, srcIdx)
	}

	// The restored state survives a restart (it is the newest raft snapshot).
	cfg, addr := dst.cfg, dst.Addr()
	if err := dst.Shutdown(); err != nil {
		t.Fatal(err)
	}
	cfg.RaftAddr = addr
	dst2 := startNodeCfg(t, cfg)
	waitLeader(t, dst2)
	waitFor(t, 30*time.Second, "replay", func() bool { return dst2.fsm.applied() >= idx })
	want["d"] = "5"
	if got := dst2.fsm.all(); !maps.Equal(got, want) {
		t.Fatalf("after restart %v, want %v", got, want)
	}
}

func TestSnapshotRestoreRefusesGarbage(t *testing.T) {
	n := startNode(t, "g", true, nil)
	waitLeader(t, n)
	set(t, n, "a", "1")
	_, idx := set(t, n, "b", "2")
	before := n.fsm.all()
	last := n.LastIndex()

	for name, data := range map[string]string{
		"garbage":   "this is not a snapshot\x00\xff",
		"truncated": `{"index":3,"kv":{"a":"1"`,
		"empty":     "",
	} {
		// nil validator: the FSM's ValidateSnapshot is used.
		err := n.SnapshotRestore(ctxT(t, 10*time.Second), strings.NewReader(data), nil)
		if !errors.Is(err, ErrInvalidSnapshot) {
			t.Fatalf("%s: restore returned %v, want ErrInvalidSnapshot", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if got := n.fsm.all(); !maps.Equal(got, before) {
		t.Fatalf("state changed: %v, want %v", got, before)
	}
	if n.LastIndex() != last {
		t.Fatalf("raft moved: last %d -> %d", last, n.LastIndex())
	}
	waitFor(t, 30*time.Second, "applied index", func() bool { return n.fsm.applied() >= idx })
	if !n.IsLeader() {
		t.Fatal("node lost leadership")
	}
	set(t, n, "c", "3") // still working

	// Without any validator the restore is refused.
	p, err := New(Config{NodeID: "p", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", Bootstrap: true,
		Logger: testLogger(t, "p")}, plainFSM{newKV()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	if err := p.SnapshotRestore(ctxT(t, 5*time.Second), strings.NewReader("{}"), nil); err == nil ||
		!strings.Contains(err.Error(), "no snapshot validator") {
		t.Fatalf("restore without validator: %v", err)
	}
}

// plainFSM hides kvFSM's ValidateSnapshot.
type plainFSM struct{ raft.FSM }

func TestSnapshotRestoreOnThreeNodeLeader(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	leader := nodes[0]
	set(t, leader, "old", "x")
	snap := []byte(`{"index":100000,"kv":{"r1":"a","r2":"b"}}` + "\n")
	if err := leader.SnapshotRestore(ctxT(t, 10*time.Second), bytes.NewReader(snap), nil); err != nil {
		t.Fatalf("SnapshotRestore: %v", err)
	}
	want := map[string]string{"r1": "a", "r2": "b"}
	if got := leader.fsm.all(); !maps.Equal(got, want) {
		t.Fatalf("leader after restore %v", got)
	}
	_, idx := set(t, leader, "r3", "c")
	if idx <= 100000 {
		t.Fatalf("index after restore %d, want > snapshot index", idx)
	}
	want["r3"] = "c"
	for _, n := range nodes[1:] {
		waitFor(t, 30*time.Second, n.NodeID()+" to install the restored snapshot", func() bool {
			return n.fsm.applied() >= idx
		})
		if got := n.fsm.all(); !maps.Equal(got, want) {
			t.Fatalf("%s after restore %v", n.NodeID(), got)
		}
	}
	// A follower refuses and names the leader; so does SnapshotSave's barrier path.
	var nl *ErrNotLeader
	if err := nodes[1].SnapshotRestore(ctxT(t, 5*time.Second), bytes.NewReader(snap), nil); !errors.As(err, &nl) {
		t.Fatalf("restore on follower: %v", err)
	}
	// A follower can still save what it has.
	var buf bytes.Buffer
	if err := nodes[1].SnapshotSave(ctxT(t, 10*time.Second), &buf); err != nil {
		t.Fatalf("SnapshotSave on follower: %v", err)
	}
	if s, err := decodeKV(&buf); err != nil || !maps.Equal(s.KV, want) {
		t.Fatalf("follower snapshot %v %v", s, err)
	}
}

// TestInterruptedLeftoversRemovedAtStart: what a snapshot or restore cut
// short by a crash leaves (an unfinished snapshots/<id>.tmp directory,
// SnapshotRestore's restore-*.tmp spool) is removed when the node starts
// again, with one log line; the finished snapshot and the state stay. raft
// skips unfinished snapshot directories, warning each time it lists its
// snapshots, and never deletes them: each could hold the whole state, and
// they piled up for ever.
func TestInterruptedLeftoversRemovedAtStart(t *testing.T) {
	n := startNode(t, "i1", true, nil)
	waitLeader(t, n)
	set(t, n, "a", "1")
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	_, idx := set(t, n, "b", "2")
	cfg, addr := n.cfg, n.Addr()
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	finished, _ := filepath.Glob(filepath.Join(raftDir, "snapshots", "*"))
	if len(finished) != 1 {
		t.Fatalf("snapshots: %v", finished)
	}
	unfinished := filepath.Join(raftDir, "snapshots", "2-9-1795000000000.tmp")
	if err := os.Mkdir(unfinished, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(unfinished, "meta.json"), filepath.Join(unfinished, "state.bin"), filepath.Join(raftDir, "restore-123.tmp")} {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	n2, logs := restartLogged(t, cfg, addr)
	waitFor(t, 30*time.Second, "replay", func() bool { return n2.fsm.applied() >= idx })
	if got := n2.fsm.all(); got["a"] != "1" || got["b"] != "2" {
		t.Fatalf("state after restart: %v", got)
	}
	for _, p := range []string{unfinished, filepath.Join(raftDir, "restore-123.tmp")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
	if _, err := os.Stat(finished[0]); err != nil {
		t.Errorf("the finished snapshot: %v", err)
	}
	out := logs.String()
	if c := strings.Count(out, "removed what an interrupted snapshot or restore left in the data dir"); c != 1 ||
		!strings.Contains(out, "2-9-1795000000000.tmp, restore-123.tmp") {
		t.Errorf("want one log line naming both, got %d:\n%s", c, out)
	}
}

// TestInterruptedLeftoversOnlyOwnDir: the clean-up at start removes only
// its own data dir's leftovers, also when the data dir's path holds
// characters a glob treats specially: node[12] must not match the data
// dirs node1 and node2 of other nodes on the host (a restore spool or a
// snapshot being written there), and must find its own.
func TestInterruptedLeftoversOnlyOwnDir(t *testing.T) {
	base := t.TempDir()
	var theirs []string
	for _, d := range []string{"node1", "node[12]"} {
		snaps := filepath.Join(base, d, "raft", "snapshots")
		if err := os.MkdirAll(filepath.Join(snaps, "2-9-1795000000000.tmp"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, d, "raft", "restore-123.tmp"), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if d == "node1" {
			theirs = []string{filepath.Join(snaps, "2-9-1795000000000.tmp"), filepath.Join(base, d, "raft", "restore-123.tmp")}
		}
	}
	raftDir := filepath.Join(base, "node[12]", "raft")
	removeInterrupted(raftDir, filepath.Join(raftDir, "snapshots"), hclog.NewNullLogger())
	for _, p := range theirs {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("another data dir's %s was removed (%v)", p, err)
		}
	}
	for _, p := range []string{filepath.Join(raftDir, "snapshots", "2-9-1795000000000.tmp"), filepath.Join(raftDir, "restore-123.tmp")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("own leftover %s is still there (%v)", p, err)
		}
	}
}
