package cluster

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestNewDamagedState: a node whose raft state is damaged must refuse to
// start with ErrStateDamaged and a message naming the file, never crash.
// bbolt dies of SIGBUS on a truncated raft.db and panics in a goroutine of
// its own on a page with a wrong header, which killed the process with a
// stack trace at every start.
func TestNewDamagedState(t *testing.T) {
	n := startNode(t, "n1", true, nil)
	waitLeader(t, n)
	for i := range 50 {
		set(t, n, "k", string(rune('a'+i%26)))
	}
	if err := n.SnapshotSave(ctxT(t, 30*time.Second), io.Discard); err != nil {
		t.Fatal(err)
	}
	set(t, n, "after-snapshot", "1")
	cfg := n.cfg
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(cfg.DataDir, "raft", "raft.db")
	orig, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(cfg.DataDir, "raft", "snapshots", "*", "state.bin"))
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %v", snaps)
	}
	snapOrig, err := os.ReadFile(snaps[0])
	if err != nil {
		t.Fatal(err)
	}

	damage := map[string]func(){
		"truncated raft.db": func() { os.WriteFile(db, orig[:len(orig)/3], 0o600) },
		"pages overwritten": func() {
			b := append([]byte(nil), orig...)
			for i := 2 * 4096; i < len(b); i++ { // keep the meta pages
				b[i] = byte(i*7 + 13)
			}
			os.WriteFile(db, b, 0o600)
		},
		"meta pages overwritten": func() {
			b := append([]byte(nil), orig...)
			for i := 0; i < 2*4096; i++ {
				b[i] = byte(i * 31)
			}
			os.WriteFile(db, b, 0o600)
		},
		"truncated snapshot": func() { os.WriteFile(snaps[0], snapOrig[:len(snapOrig)/2], 0o600) },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			f()
			defer func() {
				os.WriteFile(db, orig, 0o600)
				os.WriteFile(snaps[0], snapOrig, 0o600)
			}()
			c, err := New(cfg, newKV())
			if err == nil {
				c.Shutdown()
				t.Fatal("New started on damaged state")
			}
			if !errors.Is(err, ErrStateDamaged) {
				t.Fatalf("New: %v, want ErrStateDamaged", err)
			}
			t.Logf("New: %v", err)
		})
	}
	// Undamaged, the same state starts and keeps its data.
	n2 := startNodeCfg(t, cfg)
	waitLeader(t, n2)
	waitFor(t, 30*time.Second, "the state to be restored", func() bool {
		v, ok := n2.fsm.get("after-snapshot")
		return ok && v == "1"
	})
}
