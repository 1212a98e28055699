package systest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/systemtest"
)

// startClusterOnTmpfs is startCluster with every node's data dir on a
// tmpfs of sizeMB, so that a test can fill a node's disk (fillDisk) and free
// it again. Needs root (mount).
func startClusterOnTmpfs(t *testing.T, size, sizeMB int) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		systemtest.Skip(t, "needs root to mount a tmpfs as a node's data dir")
	}
	if _, err := exec.LookPath("mount"); err != nil {
		systemtest.Skip(t, "needs mount(8): %v", err)
	}
	c := &cluster{t: t, base: t.TempDir(), hc: newClient(16)}
	c.ctok = "systest-" + randomHex(12)
	var mounted []string
	t.Cleanup(func() { // after c.cleanup (registered below) has killed the nodes
		for _, dir := range mounted {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", dir, err, out)
			}
		}
	})
	t.Cleanup(c.cleanup)
	mk := func(name string, extra ...string) *node {
		n := newNode(t, c.base, name, append(extra, "-cluster-token", c.ctok)...)
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", sizeMB), "tmpfs", n.dir).CombinedOutput()
		if err != nil {
			systemtest.Skip(t, "cannot mount a tmpfs at %s: %v: %s", n.dir, err, out)
		}
		mounted = append(mounted, n.dir)
		c.nodes = append(c.nodes, n)
		n.start()
		return n
	}
	n1 := mk("node1", "-bootstrap")
	c.token = waitRootToken(t, n1, 30*time.Second)
	for i := 2; i <= size; i++ {
		mk(fmt.Sprintf("node%d", i), "-join", n1.httpAddr)
	}
	c.waitVoters(n1, size, 60*time.Second)
	for _, n := range c.nodes {
		c.waitLocalReady(n, 30*time.Second)
	}
	return c
}

// fillDisk writes a ballast file into n's data dir until its tmpfs is
// full; freeDisk removes it.
func fillDisk(t *testing.T, n *node) {
	t.Helper()
	f, err := os.Create(filepath.Join(n.dir, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("filling %s: %v", n.dir, err)
		}
	}
}

func freeDisk(t *testing.T, n *node) {
	t.Helper()
	if err := os.Remove(filepath.Join(n.dir, "ballast")); err != nil {
		t.Fatal(err)
	}
}

// checkServerFault checks that r is a 503 with an error_code and a
// Retry-After, the answer for a write the cluster cannot commit.
func checkServerFault(t *testing.T, r *resp, what string) {
	t.Helper()
	if r.Err != nil || r.Status != http.StatusServiceUnavailable {
		t.Errorf("%s: want 503, got %s", what, r)
		return
	}
	if code := r.errorCode(); !strings.HasPrefix(code, "regent_cluster_") {
		t.Errorf("%s: error_code %q, want regent_cluster_*: %s", what, code, r)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("%s: 503 without a valid Retry-After: %q", what, r.Header.Get("Retry-After"))
	}
	if strings.Contains(string(r.Body), "raft.db") {
		t.Errorf("%s: the answer names the server's files: %s", what, r.Body)
	}
}

// TestDiskFullFollowers fills the data dirs of both followers of a
// three-node cluster (a small tmpfs each): raft never commits then and
// never steps down (the followers answer, but refuse every entry), so a
// write must not hang: it gets a 503 with an error_code and Retry-After
// within the commit wait (10 s). The followers' /healthz says why they are
// not ready, and so does the leader's (it commits nothing). Once the disks have room again, writes succeed and every node
// serves the same state, the write whose outcome was unknown included.
func TestDiskFullFollowers(t *testing.T) {
	c := startClusterOnTmpfs(t, 3, 16)
	leader := c.leader(30 * time.Second)
	fs := c.followers(leader)
	c.create(leader, "member", map[string]any{"name": "disk-before"})

	for _, f := range fs {
		fillDisk(t, f)
	}
	// bolt reuses free pages first: the first few writes may still fit.
	var failed *resp
	for i := 0; i < 200 && failed == nil; i++ {
		start := time.Now()
		r := c.do(leader, http.MethodPost, "/membership/member/", map[string]any{"name": fmt.Sprintf("disk-full-%d", i)})
		took := time.Since(start)
		if r.Err == nil && r.Status == http.StatusCreated {
			continue
		}
		t.Logf("write %d with both followers' disks full: %s after %s (Retry-After %q)", i, r, took.Round(time.Millisecond), r.Header.Get("Retry-After"))
		checkServerFault(t, r, "write with the followers' disks full")
		if took > 25*time.Second {
			t.Errorf("write answered after %s, want within the 10 s commit wait", took)
		}
		failed = r
	}
	if failed == nil {
		t.Fatal("200 writes succeeded with both followers' disks full")
	}
	// A second write queued behind the stuck entry is not left hanging either.
	start := time.Now()
	r := c.do(fs[0], http.MethodPost, "/membership/member/", map[string]any{"name": "disk-full-queued"})
	t.Logf("next write, via follower %s: %s after %s", fs[0].name, r, time.Since(start).Round(time.Millisecond))
	checkServerFault(t, r, "write queued behind the stuck entry")

	for _, f := range fs {
		err := waitFor(30*time.Second, func() error {
			h := c.do(f, http.MethodGet, "/healthz", nil)
			if h.Status != http.StatusServiceUnavailable || !strings.Contains(string(h.Body), "cannot write the raft store") {
				return fmt.Errorf("%s /healthz: %s", f.name, h)
			}
			return nil
		})
		if err != nil {
			t.Errorf("a follower that cannot write its raft store must not be ready: %v", err)
		}
	}
	// The leader answers its heartbeats and keeps leading, but it commits
	// nothing: it is not ready either, and says why. (In some runs raft's
	// leader steps down instead, and no node leads: nothing to ask then.)
	err := waitFor(30*time.Second, func() error {
		var leaders int
		for _, n := range c.nodes {
			h := c.do(n, http.MethodGet, "/healthz", nil)
			if !strings.Contains(string(h.Body), `"is_leader":true`) {
				continue
			}
			leaders++
			if h.Status != http.StatusServiceUnavailable || !strings.Contains(string(h.Body), "has committed nothing for") {
				return fmt.Errorf("leader %s /healthz: %s", n.name, h)
			}
			m := c.do(n, http.MethodGet, "/metrics", nil)
			if !strings.Contains(string(m.Body), "regent_raft_commit_stalled_seconds") ||
				strings.Contains(string(m.Body), "regent_raft_commit_stalled_seconds 0\n") {
				return fmt.Errorf("leader %s /metrics: want regent_raft_commit_stalled_seconds > 0", n.name)
			}
			t.Logf("leader %s /healthz: %s", n.name, h)
		}
		if leaders == 0 {
			t.Logf("no node leads now (the leader stepped down): no leader's /healthz to check")
		}
		return nil
	})
	if err != nil {
		t.Errorf("a leader that cannot commit must not be ready: %v", err)
	}
	if m := c.do(fs[0], http.MethodGet, "/metrics", nil); !strings.Contains(string(m.Body), "regent_raft_store_failing_seconds") ||
		strings.Contains(string(m.Body), "regent_raft_store_failing_seconds 0\n") {
		t.Errorf("%s /metrics: want regent_raft_store_failing_seconds > 0", fs[0].name)
	}

	for _, f := range fs {
		freeDisk(t, f)
	}
	freed := time.Now()
	err = waitFor(90*time.Second, func() error {
		r := c.do(fs[1], http.MethodPost, "/membership/member/", map[string]any{"name": "disk-after-" + randomHex(3)})
		if r.Err != nil || r.Status != http.StatusCreated {
			return fmt.Errorf("write after freeing the disks: %s", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first accepted write %s after the disks were freed", time.Since(freed).Round(time.Millisecond))
	for _, n := range c.nodes {
		c.waitLocalReady(n, 90*time.Second)
	}
	leader = c.leader(30 * time.Second)
	all, err := c.listAll(leader, c.token, "member", "")
	if err != nil {
		t.Fatal(err)
	}
	want := canonical(all)
	for _, n := range c.nodes {
		err := waitFor(90*time.Second, func() error {
			got, err := c.listAll(n, c.token, "member", "stale=true")
			if err != nil {
				return err
			}
			if canonical(got) != want {
				return fmt.Errorf("%s: stale member listing differs from the leader's (%d vs %d members)", n.name, len(got), len(all))
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("all nodes serve the same %d members %s after the disks were freed", len(all), time.Since(freed).Round(time.Millisecond))
}
