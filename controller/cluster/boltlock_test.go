//go:build unix

package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNewOnHeldStoreIsLockedNotDamaged: a node started on a raft.db that
// another process holds (a node running on the same data dir) is refused
// as locked, whatever the file reads like: a running node rewrites its
// pages as it commits, so reading it may show what looks like damage. The
// check of the file's structure read it before taking any lock, and a
// second node started by mistake next to a busy one said, 2 times in 40
// here, that the running node's state was damaged and to move its data dir
// away (with exit status 2, now 78). The held file is simulated by a truncated
// copy under an exclusive flock, as bbolt takes it.
func TestNewOnHeldStoreIsLockedNotDamaged(t *testing.T) {
	n := startNode(t, "h1", true, nil)
	waitLeader(t, n)
	for i := range 20 {
		set(t, n, "k", string(rune('a'+i)))
	}
	cfg := n.cfg
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(cfg.DataDir, "raft", "raft.db")
	orig, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, orig[:len(orig)/3], 0o600); err != nil {
		t.Fatal(err)
	}

	holder, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := New(cfg, newKV())
	if err == nil {
		c.Shutdown()
		t.Fatal("New started on a raft.db another process holds")
	}
	if errors.Is(err, ErrStateDamaged) || !strings.Contains(err.Error(), "cluster: open "+db+": locked (is another controller using this data dir?)") {
		t.Fatalf("New on a held raft.db: %v, want the lock error", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("refused after %s", took)
	}

	// Once nobody holds it, the damage is found.
	holder.Close()
	if c, err := New(cfg, newKV()); !errors.Is(err, ErrStateDamaged) {
		if err == nil {
			c.Shutdown()
		}
		t.Fatalf("New on the released, truncated raft.db: %v, want ErrStateDamaged", err)
	}
}
