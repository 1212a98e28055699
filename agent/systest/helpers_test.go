// Package systest runs regent-controller and regent-agent as real
// processes on this host, with real namespaces, links and nftables (root).
package systest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/systemtest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// bins are the binaries TestMain builds.
var bins struct{ controller, agent string }

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || !systemOK() {
		// The tests themselves skip (or fail under REGENT_SYSTEM_TESTS=1).
		os.Exit(m.Run())
	}
	// Every test's agent puts its segments' VXLAN devices in the root
	// namespace on port 4789, and every test's first project subnet gets
	// the same network identifier: the kernel refuses a second device
	// with it ("file exists"). One run's tests take turns (go test runs a
	// package's tests one at a time); two runs on one host (two checkouts)
	// take turns here, the whole package at a time, before any test takes
	// another lock (libvirtd's), so the two locks never wait on each other.
	release, err := systemtest.HoldPackage("agent-systest")
	if err != nil {
		fmt.Fprintln(os.Stderr, "systest:", err)
		os.Exit(1)
	}
	for _, name := range append(systemtest.SweepStale(staleName), sweepStaleVMs()...) {
		fmt.Fprintf(os.Stderr, "systest: removed %s left by an earlier run\n", name)
	}
	// A killed run never removed its binaries' directory either.
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "regent-agent-systest-*"))
	for _, d := range old {
		if os.RemoveAll(d) == nil {
			fmt.Fprintf(os.Stderr, "systest: removed directory %s left by an earlier run\n", d)
		}
	}
	dir, err := os.MkdirTemp("", "regent-agent-systest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.controller = filepath.Join(dir, "regent-controller")
	bins.agent = filepath.Join(dir, "regent-agent")
	for pkg, out := range map[string]string{"controller": bins.controller, "agent": bins.agent} {
		cmd := exec.Command("go", "build", "-o", out, "github.com/regentcloud/regent/"+pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "systest: building", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	release() // after the tests: also keeps the lock's file from the garbage collector
	os.Exit(code)
}

var requiredTools = []string{"ip", "nft", "dnsmasq", "dhclient", "ping", "go"}

func systemOK() bool {
	if os.Geteuid() != 0 {
		return false
	}
	for _, t := range requiredTools {
		if _, err := exec.LookPath(t); err != nil {
			return false
		}
	}
	return true
}

// requireSystem skips (or, with REGENT_SYSTEM_TESTS=1, fails) when the
// test cannot run here.
func requireSystem(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range requiredTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if testing.Short() {
		missing = append(missing, "no -short")
	}
	if len(missing) == 0 {
		return
	}
	systemtest.Skip(t, "agent system test needs %s (scripts/setup-deps.sh installs the tools; run as root)", strings.Join(missing, ", "))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return freeAddrOn(t, "127.0.0.1")
}

// freeAddrOn returns host:port with a port free on host.
func freeAddrOn(t *testing.T, host string) string {
	t.Helper()
	return systemtest.FreeAddr(t, host)
}

// proc is a daemon process with its output in a log file.
type proc struct {
	t       *testing.T
	name    string
	args    []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	fmt.Fprintf(f, "==== start %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.args, " "))
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// No Pdeathsig: it fires when the forking OS thread exits, and the
	// namespace helpers end locked threads. Cleanup kills the processes.
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("%s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
}

// signal sends sig and waits up to wait for the exit.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	return string(b)
}

// api is a JSON client of the controller.
type apiClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

type reply struct {
	status int
	body   []byte
}

func (r reply) content() map[string]any {
	var v struct {
		Content map[string]any `json:"content"`
	}
	_ = json.Unmarshal(r.body, &v)
	return v.Content
}

func (a *apiClient) do(token, method, path string, body any) reply {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	req.Header.Set("X-Auth-Token", token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return reply{status: 0, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: b}
}

func (a *apiClient) must(token, method, path string, body any, want int) map[string]any {
	a.t.Helper()
	r := a.do(token, method, path, body)
	if r.status != want {
		a.t.Fatalf("%s %s: want %d, got %d %s", method, path, want, r.status, r.body)
	}
	return r.content()
}

func num(v any) uint64 {
	f, _ := v.(float64)
	return uint64(f)
}

func (a *apiClient) create(token, path string, body any) uint64 {
	a.t.Helper()
	return num(a.must(token, http.MethodPost, path, body, http.StatusCreated)["id"])
}

// ---- host helpers ----

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func try(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// inNetns runs fn with the calling thread in namespace name.
func inNetns(name string, fn func() error) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer h.Close()
	return runInNetns(h, fn)
}

func runInNetns(h netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is locked and never unlocked: it dies with the goroutine.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- fn()
		_ = netns.Set(orig)
	}()
	return <-errc
}

// listen opens a TCP listener in namespace host; accepted peers' addresses
// go to the channel.
func listen(t *testing.T, host, addr string) <-chan string {
	t.Helper()
	var ln net.Listener
	if err := inNetns(host, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	peers := make(chan string, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return peers
}

func dialFrom(host, addr string, timeout time.Duration) error {
	var c net.Conn
	err := inNetns(host, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial("tcp4", addr)
		return err
	})
	if err == nil {
		c.Close()
	}
	return err
}

var pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func ping(t *testing.T, host, dst string, count int) (int, int) {
	t.Helper()
	out, _ := try("ip", "netns", "exec", host, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.1", "-W", "1", dst)
	m := pingStats.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s from %s: %s", dst, host, out)
	}
	s, _ := strconv.Atoi(m[1])
	r, _ := strconv.Atoi(m[2])
	return s, r
}

func eventually(t *testing.T, what string, timeout time.Duration, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// staleName matches what this package's tests name after their prefix:
// the public bridge (<prefix>pub), an agent's links (alias
// regent:<prefix>:...) and the namespaces (<prefix>P<router>, the
// two-host test's <prefix>h<x>).
var staleName = regexp.MustCompile(`^(z[0-9a-z]{3})(pub$|P[0-9]+$|h[a-z]$)|^regent:(z[0-9a-z]{3}):`)

// staleDomain and stalePool match the libvirt objects this package's tests
// name after their prefix: domains <prefix>-<vm>, pools
// regent-<prefix>-<type><prefix> (older tests': regent-<type><prefix>).
var (
	staleDomain = regexp.MustCompile(`^z[0-9a-z]{3}-`)
	stalePool   = regexp.MustCompile(`^regent-(z[0-9a-z]{3}-)?[A-Za-z0-9]+z[0-9a-z]{3}$`)
)

// randomPrefix names one test's links and namespaces. agent/netrouter's
// system tests, which run at the same time, use prefixes starting with "y":
// each package's cleanup deletes links by prefix, so neither may be the
// start of the other's.
func randomPrefix() string {
	return "z" + strconv.FormatUint(uint64(rand.IntN(36*36*36)+36*36*36), 36)[1:]
}

// linkList lists the root namespace's links, repeating a dump the kernel
// interrupted (links of concurrent tests come and go).
func linkList() []netlink.Link {
	for i := 0; ; i++ {
		links, err := netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 9 {
			return links
		}
	}
}

// grepLines is the lines of text that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
