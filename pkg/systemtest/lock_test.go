package systemtest

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestHoldSharedAndExclusive(t *testing.T) {
	name := "selftest-" + time.Now().Format("150405.000000")
	t.Cleanup(func() { os.Remove(lockPath(name)); os.Remove(lockPath(name + "-x")) })
	t.Run("shared twice in one test does not wait on itself", func(t *testing.T) {
		Hold(t, name, false)
		Hold(t, name, false)
	})
	t.Run("exclusive then shared in the same test", func(t *testing.T) {
		Hold(t, name, true)
		Hold(t, name, false)
	})
	t.Run("another process waits for an exclusive holder", func(t *testing.T) {
		if _, err := exec.LookPath("flock"); err != nil {
			Skip(t, "no flock(1) (util-linux) to check the lock from another process")
		}
		Hold(t, name+"-x", true)
		// flock -n fails at once while the lock is held exclusive
		err := exec.Command("flock", "-n", "-s", lockPath(name+"-x"), "true").Run()
		if err == nil {
			t.Fatal("another process took the lock shared while it was held exclusive")
		}
	})
	// released at the end of each test: now free
	if err := exec.Command("flock", "-n", "-x", lockPath(name+"-x"), "true").Run(); err != nil {
		t.Fatalf("the lock was not released: %v", err)
	}
}

func TestHoldPackage(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		Skip(t, "no flock(1) (util-linux) to check the lock from another process")
	}
	name := "selftest-pkg-" + time.Now().Format("150405.000000")
	t.Cleanup(func() { os.Remove(lockPath(name)) })
	release, err := HoldPackage(name)
	if err != nil {
		t.Fatal(err)
	}
	if exec.Command("flock", "-n", "-s", lockPath(name), "true").Run() == nil {
		t.Fatal("another process took the package lock while a test binary held it")
	}
	release()
	if err := exec.Command("flock", "-n", "-x", lockPath(name), "true").Run(); err != nil {
		t.Fatalf("the package lock was not released: %v", err)
	}
}
