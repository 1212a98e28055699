package cluster

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// looseModes returns the paths under dir (dir included) that group or
// others may read, write or enter, with their modes; it fails the test when
// dir holds no snapshot (so the walk checked what matters).
func looseModes(t *testing.T, dir string) []string {
	t.Helper()
	var loose []string
	snapshots := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // its own bits mean nothing
		}
		if d.Name() == "state.bin" {
			snapshots++
		}
		if info.Mode().Perm()&0o077 != 0 {
			rel, _ := filepath.Rel(dir, path)
			loose = append(loose, rel+" "+info.Mode().Perm().String())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	if snapshots == 0 {
		t.Fatalf("no snapshot under %s", dir)
	}
	return loose
}

// TestDataDirIsOwnerOnly: everything the node writes under its data dir
// (raft.db, the snapshot directory, each snapshot's directory, state.bin
// and meta.json) is owner-only, after a snapshot raft takes while running
// and after a restore. raft's FileSnapshotStore made them 0755/0644, and
// a snapshot holds the whole state (token hashes, tenants' data).
func TestDataDirIsOwnerOnly(t *testing.T) {
	n := startNode(t, "p1", true, nil)
	waitLeader(t, n)
	set(t, n, "a", "1")
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if loose := looseModes(t, n.cfg.DataDir); len(loose) > 0 {
		t.Errorf("after a snapshot, readable by group or others: %s", strings.Join(loose, ", "))
	}

	set(t, n, "b", "2")
	var buf bytes.Buffer
	if err := n.SnapshotSave(ctxT(t, 10*time.Second), &buf); err != nil {
		t.Fatalf("SnapshotSave: %v", err)
	}
	if err := n.SnapshotRestore(ctxT(t, 10*time.Second), &buf, nil); err != nil {
		t.Fatalf("SnapshotRestore: %v", err)
	}
	if loose := looseModes(t, n.cfg.DataDir); len(loose) > 0 {
		t.Errorf("after a restore, readable by group or others: %s", strings.Join(loose, ", "))
	}
}

// TestLooseRaftStateIsTightenedAtStart: raft state written with looser
// modes (by an older version, or copied) is made owner-only when the node
// starts, and the node says so once in its log. Only the raft directory
// is touched: neither another file in the data dir (which may be shared
// by mistake) nor the target of a link.
func TestLooseRaftStateIsTightenedAtStart(t *testing.T) {
	n := startNode(t, "p2", true, nil)
	waitLeader(t, n)
	set(t, n, "a", "1")
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	cfg, addr := n.cfg, n.Addr()
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	outside := filepath.Join(t.TempDir(), "elsewhere")
	notOurs := filepath.Join(cfg.DataDir, "not-ours")
	for _, f := range []string{outside, notOurs} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(raftDir, "link")); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return os.Chmod(path, 0o755)
		case d.Type().IsRegular():
			return os.Chmod(path, 0o644)
		}
		return nil
	})
	if err == nil {
		err = os.Chmod(outside, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}

	_, logs := restartLogged(t, cfg, addr)
	if loose := looseModes(t, raftDir); len(loose) > 0 {
		t.Errorf("after a restart, readable by group or others: %s", strings.Join(loose, ", "))
	}
	for _, f := range []string{outside, notOurs, cfg.DataDir} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm()&0o077 == 0 {
			t.Errorf("%s, not the raft state's, was changed: %v %v", f, fi.Mode(), err)
		}
	}
	out := logs.String()
	if c := strings.Count(out, "raft state in the data dir was readable by group or others"); c != 1 ||
		!strings.Contains(out, "raft/raft.db") || !strings.Contains(out, "raft/snapshots") {
		t.Errorf("want one log line naming what was tightened, got %d:\n%s", c, out)
	}
}

// TestInstalledSnapshotIsOwnerOnly: a snapshot a follower receives from
// the leader (its log was compacted past what the follower has) is
// owner-only in the follower's data dir too.
func TestInstalledSnapshotIsOwnerOnly(t *testing.T) {
	compact := func(c *Config) { c.TrailingLogs = 1 }
	leader := startNode(t, "p3", true, compact)
	waitLeader(t, leader)
	for _, k := range []string{"a", "b", "c", "d"} {
		set(t, leader, k, "1")
	}
	if err := leader.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	follower := startNode(t, "p4", false, compact)
	waitFor(t, 30*time.Second, "AddVoter(p4)", func() bool { return leader.AddVoter("p4", follower.Addr()) == nil })
	waitFor(t, 30*time.Second, "the follower to install the snapshot", func() bool {
		v, _ := follower.fsm.get("d")
		return v == "1"
	})
	if loose := looseModes(t, follower.cfg.DataDir); len(loose) > 0 {
		t.Errorf("follower's data dir readable by group or others: %s", strings.Join(loose, ", "))
	}
}

// TestSecondNodeOnSameDataDirIsRefused: a second node started on a data
// dir a running node holds (the same controller started twice, or two
// configs naming one dir) stops within seconds with an error naming the
// raft store and saying what is wrong, rather than waiting for the lock or
// running a second raft over the same raft.db; it changes nothing in the
// dir (it used to tighten modes before it found the lock held), and the
// running node goes on.
func TestSecondNodeOnSameDataDirIsRefused(t *testing.T) {
	n := startNode(t, "p5", true, nil)
	waitLeader(t, n)
	set(t, n, "a", "1")
	loose := filepath.Join(n.cfg.DataDir, "raft", "loose")
	if err := os.WriteFile(loose, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := n.cfg
	cfg.RaftAddr = "127.0.0.1:0"
	start := time.Now()
	c, err := New(cfg, newKV())
	if err == nil {
		_ = c.Shutdown()
		t.Fatal("a second node started on the same data dir")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("refused after %s", took)
	}
	db := filepath.Join(cfg.DataDir, "raft", "raft.db")
	if msg := err.Error(); !strings.Contains(msg, db) || !strings.Contains(msg, "locked (is another controller using this data dir?)") {
		t.Errorf("error %q does not name %s and the lock", msg, db)
	}
	if fi, err := os.Stat(loose); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the refused node changed the running node's data dir: %v %v", fi.Mode(), err)
	}
	set(t, n, "b", "2")
}
