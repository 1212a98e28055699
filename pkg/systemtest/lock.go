package systemtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// held records, per top-level test and lock, what this process holds, so
// that a helper asking for a lock the test already holds does not wait on
// itself (flock locks of two open files conflict even in one process).
var held sync.Map // "<test>\x00<name>" → exclusive (bool)

// Hold takes the host-wide lock name for the rest of t's top-level test:
// shared (any number of holders) or exclusive. go test runs packages in
// parallel, so tests of two packages that use one daemon hold its lock
// shared, and a test that restarts or stops the daemon holds it exclusive
// (before anything takes it shared): it then never pulls the daemon from
// under another package's test. A test that already holds the lock keeps
// what it holds. Waiting longer than 20 minutes fails t.
func Hold(t testing.TB, name string, exclusive bool) {
	t.Helper()
	key := strings.SplitN(t.Name(), "/", 2)[0] + "\x00" + name
	if _, ok := held.Load(key); ok {
		return
	}
	f, err := lock(name, exclusive)
	if err != nil {
		t.Fatalf("systemtest: %v", err)
	}
	held.Store(key, exclusive)
	t.Cleanup(func() {
		held.Delete(key)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// HoldPackage takes the host-wide lock name exclusive for a whole test
// binary (from TestMain, before any test runs) and returns its release.
// Two runs of one package on a host (two checkouts tested at once) then
// take turns: it is for tests that use a host-wide resource no per-test
// naming can keep apart, such as a VXLAN network identifier on the root
// namespace's UDP port. Waiting longer than 20 minutes is an error.
func HoldPackage(name string) (release func(), err error) {
	f, err := lock(name, true)
	if err != nil {
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// lock opens the lock file of name and flocks it, polling so that a wait
// longer than 20 minutes ends in an error rather than a hang.
func lock(name string, exclusive bool) (*os.File, error) {
	path := lockPath(name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(20 * time.Minute)
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lockPath(name string) string {
	return filepath.Join(os.TempDir(), "regent-systemtest-"+name+".lock")
}
