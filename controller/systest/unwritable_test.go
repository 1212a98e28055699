package systest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/systemtest"
)

// TestUnwritableRaftStore makes a follower's raft.db immutable (chattr +i:
// every write fails with EPERM, as on a read-only or broken disk) and then
// moves leadership, so the follower must save a new raft term. raft panics
// when it cannot: the node died with a stack trace and Go's exit status 2,
// which the systemd unit did not restart (RestartPreventExitStatus was 2,
// for configuration errors, now 78), so it stayed down after the disk was fixed. It must
// stop with a message and status 1, keep its data, and serve again once it
// is started with a writable store.
func TestUnwritableRaftStore(t *testing.T) {
	if os.Geteuid() != 0 {
		systemtest.Skip(t, "needs root for chattr +i")
	}
	if _, err := exec.LookPath("chattr"); err != nil {
		systemtest.Skip(t, "needs chattr (e2fsprogs): %v", err)
	}
	c := startCluster(t, 3)
	leader := c.leader(30 * time.Second)
	f := c.followers(leader)[0]
	db := filepath.Join(f.dir, "raft", "raft.db")
	if out, err := exec.Command("chattr", "+i", db).CombinedOutput(); err != nil {
		systemtest.Skip(t, "chattr +i %s: %v: %s (the file system of %s must support it)", db, err, out, os.TempDir())
	}
	immutable := true
	t.Cleanup(func() {
		if immutable {
			exec.Command("chattr", "-i", db).Run()
		}
	})
	c.create(leader, "member", map[string]any{"name": "unwritable-1"})
	err := waitFor(30*time.Second, func() error {
		h := c.do(f, http.MethodGet, "/healthz", nil)
		if h.Status != http.StatusServiceUnavailable || !strings.Contains(string(h.Body), "cannot write the raft store") {
			return fmt.Errorf("%s /healthz: %s", f.name, h)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	leader.stop() // hands leadership over: a new term
	if err := waitFor(60*time.Second, func() error {
		if f.running() {
			return errors.New("still running")
		}
		return nil
	}); err != nil {
		t.Fatalf("%s kept running with a raft term it cannot save: %v", f.name, err)
	}
	f.mu.Lock()
	exitErr := f.exitErr
	f.mu.Unlock()
	var ee *exec.ExitError
	if !errors.As(exitErr, &ee) || ee.ExitCode() != 1 {
		t.Errorf("%s exited with %v, want exit status 1", f.name, exitErr)
	}
	log := f.tail(64 << 10)
	if strings.Contains(log, "panic:") || strings.Contains(log, "goroutine ") {
		t.Errorf("%s died with a stack trace:\n%s", f.name, log)
	}
	if !strings.Contains(log, "cannot save the raft term") {
		t.Errorf("%s did not say why it stopped", f.name)
	}

	// The disk is fixed: the node and the old leader come back and catch up.
	if out, err := exec.Command("chattr", "-i", db).CombinedOutput(); err != nil {
		t.Fatalf("chattr -i: %v: %s", err, out)
	}
	immutable = false
	f.start()
	leader.start()
	newLeader := c.leader(30 * time.Second)
	id := c.create(newLeader, "member", map[string]any{"name": "unwritable-2"})
	for _, n := range c.nodes {
		c.waitLocalReady(n, 60*time.Second)
		if err := c.waitMember(n, id, 30*time.Second); err != nil {
			t.Error(err)
		}
	}
}
