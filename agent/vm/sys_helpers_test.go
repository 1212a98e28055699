package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/regentcloud/regent/agent/netrouter"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// skipOrFail skips, or fails under REGENT_SYSTEM_TESTS=1.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	systemtest.Skip(t, format, args...)
}

// needLibvirt returns a connection to a running libvirtd, starting the
// daemons with scripts/libvirtd-up.sh when they are installed but not
// running (a fresh CI machine has no systemd to start them).
func needLibvirt(t *testing.T) *Conn {
	t.Helper()
	// Other packages' tests use the same libvirtd (go test runs packages
	// in parallel): hold it shared, so a test that restarts it waits.
	systemtest.Hold(t, "libvirtd", false)
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root for libvirtd, bridges and pools")
	}
	for _, bin := range []string{"/usr/sbin/libvirtd", "/usr/sbin/virtlogd", "qemu-img", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, "%s not installed (scripts/setup-deps.sh installs libvirt and QEMU)", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewConn("")
	if _, err := c.NodeInfo(ctx); err != nil {
		// Not running, or a socket file left by one that died: start it.
		c.Close()
		out, err := exec.Command("bash", "../../scripts/libvirtd-up.sh").CombinedOutput()
		if err != nil {
			t.Fatalf("start libvirtd: %v\n%s", err, out)
		}
		c = libvirtdAnswers(t, 60*time.Second)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// libvirtdAnswers waits for a just started libvirtd to answer and returns
// a connection to it. libvirtd-up.sh returns once the socket file exists,
// which may be a dead daemon's file the new one has not replaced yet, or
// a socket it does not accept on yet (a loaded machine).
func libvirtdAnswers(t *testing.T, timeout time.Duration) *Conn {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := NewConn("")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.NodeInfo(ctx)
		cancel()
		if err == nil {
			return c
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd does not answer %s after it was started: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testEnv is one system test's directories, bridge and image.
type testEnv struct {
	root      string
	prefix    string
	bridgePfx string
	vni       uint32
	bridge    string
	image     string
	imageSum  string
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newTestEnv makes a world-readable root (QEMU runs as libvirt-qemu and
// must reach the volumes), a tiny qcow2 image and the segment bridge.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	id := os.Getpid() % 10000
	e := &testEnv{
		root:      filepath.Join("/var/lib/regent-test", fmt.Sprintf("vm-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)),
		prefix:    fmt.Sprintf("rgt%d-", id),
		bridgePfx: "rgt",
		vni:       uint32(900000 + id),
	}
	if err := os.MkdirAll(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(e.root), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(e.root) })
	e.image = filepath.Join(e.root, "tiny.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", e.image, "16M")
	data, err := os.ReadFile(e.image)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	e.imageSum = hex.EncodeToString(sum[:])
	return e
}

// addBridge creates a bridge and removes it at cleanup.
func addBridge(t *testing.T, name string) {
	t.Helper()
	_ = exec.Command("ip", "link", "del", name).Run()
	run(t, "ip", "link", "add", name, "type", "bridge")
	run(t, "ip", "link", "set", name, "up")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", name).Run() })
}

func (e *testEnv) config() Config {
	return Config{
		DomainType:      "qemu",
		NamePrefix:      e.prefix,
		PoolPrefix:      e.prefix,
		StorageRoot:     filepath.Join(e.root, "pools"),
		SeedDir:         filepath.Join(e.root, "seeds"),
		ConsoleLogDir:   filepath.Join(e.root, "console"),
		BackupDir:       filepath.Join(e.root, "backups"),
		BridgePrefix:    e.bridgePfx,
		ShutdownTimeout: 2 * time.Second,
	}
}

// systemBuilder is a builder of cfg over l (the real libvirtd c, or a
// wrapper of it) whose domains and pools are removed when the test ends,
// with e's segment bridge made.
func systemBuilder(t *testing.T, c *Conn, l Libvirt, e *testEnv, cfg Config) *Builder {
	t.Helper()
	b, err := New(cfg, l, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cleanupLibvirt(t, c, b, e.prefix)
	e.bridge = netrouter.SegmentBridge(e.bridgePfx, netrouter.ModeVXLAN, e.vni)
	addBridge(t, e.bridge)
	return b
}

// cleanupLibvirt removes every domain and pool with the test's prefix,
// whatever state the test left them in.
func cleanupLibvirt(t *testing.T, c *Conn, b *Builder, prefix string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		names, _ := c.ListDomains(ctx)
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				if err := b.scrub(ctx, n); err != nil {
					t.Logf("cleanup %s: %v", n, err)
				}
			}
		}
		out, _ := exec.Command("virsh", "-c", "qemu:///system", "pool-list", "--all", "--name").Output()
		for _, p := range strings.Fields(string(out)) {
			if strings.HasPrefix(p, prefix) {
				_ = exec.Command("virsh", "-c", "qemu:///system", "pool-destroy", p).Run()
				_ = exec.Command("virsh", "-c", "qemu:///system", "pool-undefine", p).Run()
			}
		}
	})
}

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Info, Output: testWriter{t}})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// StorageSpecForTest is an extra (non-primary) storage.
func StorageSpecForTest(id uint64, gb int) api.StorageSpec {
	return api.StorageSpec{ID: id, Name: fmt.Sprintf("disk%d", id), GB: gb}
}

// restartLibvirtd stops libvirtd by its pid file and starts it again.
func restartLibvirtd(t *testing.T) {
	t.Helper()
	pidb, err := os.ReadFile("/run/libvirtd.pid")
	if err != nil {
		skipOrFail(t, "libvirtd was not started by scripts/libvirtd-up.sh (no /run/libvirtd.pid): %v", err)
	}
	var pid int
	fmt.Sscan(strings.TrimSpace(string(pidb)), &pid)
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Signal(syscall.SIGTERM)
	}
	// Up to 60 s: while the old daemon lives, libvirtd-up.sh starts none.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); err != nil {
			break
		}
	}
	out, err := exec.Command("bash", "../../scripts/libvirtd-up.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("restart libvirtd: %v\n%s", err, out)
	}
	if now, _ := os.ReadFile("/run/libvirtd.pid"); strings.TrimSpace(string(now)) == strings.TrimSpace(string(pidb)) {
		t.Fatalf("libvirtd pid %s did not change", now)
	}
	libvirtdAnswers(t, 60*time.Second).Close()
}
