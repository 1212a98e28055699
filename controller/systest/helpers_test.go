package systest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the regent-controller binary built by TestMain.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		if systemtest.Required() {
			fmt.Fprintln(os.Stderr, "systest: -short given but REGENT_SYSTEM_TESTS=1: system tests must run")
			os.Exit(1)
		}
		fmt.Println("systest: skipped in -short mode (these tests run real controller processes)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "regent-systest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "systest:", err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "regent-controller")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-o", binPath, "github.com/regentcloud/regent/controller")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "systest: building regent-controller:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Printf("systest: built %s in %s\n", binPath, time.Since(start).Round(time.Millisecond))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---- ports ----

// freeAddr returns a loopback host:port for a node to listen on.
func freeAddr(t testing.TB) string {
	t.Helper()
	return systemtest.FreeAddr(t, "127.0.0.1")
}

// ---- one node ----

// node is one regent-controller process. Its stdout and stderr go to logPath
// (appended across restarts).
type node struct {
	t        testing.TB
	name     string
	dir      string
	httpAddr string
	raftAddr string
	dnsAddr  string
	extra    []string
	logPath  string
	https    bool // the API is served over TLS

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	starts  int
}

func newNode(t testing.TB, base, name string, extra ...string) *node {
	n := &node{t: t, name: name, dir: filepath.Join(base, name), httpAddr: freeAddr(t), raftAddr: freeAddr(t),
		dnsAddr: freeAddr(t), extra: extra, logPath: filepath.Join(base, name+".log")}
	return n
}

func (n *node) URL() string {
	if n.https {
		return "https://" + n.httpAddr
	}
	return "http://" + n.httpAddr
}

func (n *node) args() []string {
	return append([]string{"server", "-node-id", n.name, "-data-dir", n.dir,
		"-http-addr", n.httpAddr, "-raft-addr", n.raftAddr, "-dns-addr", n.dnsAddr}, n.extra...)
}

// start runs the process with the node's flags (the same every time, so a
// restart reuses the data dir and addresses).
func (n *node) start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !n.exitedLocked() {
		n.t.Fatalf("%s: already running", n.name)
	}
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatalf("%s: log file: %v", n.name, err)
	}
	n.starts++
	fmt.Fprintf(f, "==== %s start #%d at %s: %s %s\n", n.name, n.starts, time.Now().Format(time.RFC3339Nano),
		filepath.Base(binPath), strings.Join(n.args(), " "))
	cmd := exec.Command(binPath, n.args()...)
	cmd.Stdout, cmd.Stderr = f, f
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		n.t.Fatalf("%s: start: %v", n.name, err)
	}
	done := make(chan struct{})
	n.cmd, n.done, n.exitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		f.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(done)
	}()
}

func (n *node) exitedLocked() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// running reports whether the process is alive.
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !n.exitedLocked()
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *node) kill() {
	n.t.Helper()
	n.signal(syscall.SIGKILL, 10*time.Second)
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 20 s, which
// fails the test).
func (n *node) stop() {
	n.t.Helper()
	if !n.signal(syscall.SIGTERM, 20*time.Second) {
		n.t.Errorf("%s: did not stop within 20s of SIGTERM; killed", n.name)
		n.signal(syscall.SIGKILL, 10*time.Second)
		return
	}
	n.mu.Lock()
	err := n.exitErr
	n.mu.Unlock()
	if err != nil {
		n.t.Errorf("%s: exit after SIGTERM: %v", n.name, err)
	}
}

func (n *node) signal(sig syscall.Signal, wait time.Duration) bool {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
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

// tail returns the last max bytes of the node's log.
func (n *node) tail(max int64) string {
	f, err := os.Open(n.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st != nil && st.Size() > max {
		f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// ---- a cluster ----

// cluster is a set of nodes plus an HTTP client authenticated as root.
type cluster struct {
	t     *testing.T
	base  string
	nodes []*node
	token string // root token of node1's bootstrap
	ctok  string // the -cluster-token of every node
	hc    *http.Client
}

// newClient returns a client that keeps connections alive and never follows
// redirects (so a redirect is visible to the tests).
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4 * conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startCluster starts node1 with -bootstrap and nodes 2..size with -join
// node1, all with the same -cluster-token, and waits until node1 reports
// size voters and every node serves reads from its own state. Everything is
// killed at the end of the test; the logs are printed if the test failed.
func startCluster(t *testing.T, size int) *cluster {
	t.Helper()
	return startClusterWith(t, size, nil)
}

// startClusterWith is startCluster with extra flags for node i (1-based),
// which override the defaults (e.g. -dns-addr).
func startClusterWith(t *testing.T, size int, extra func(i int) []string) *cluster {
	t.Helper()
	if extra == nil {
		extra = func(int) []string { return nil }
	}
	c := &cluster{t: t, base: t.TempDir(), hc: newClient(16)}
	t.Cleanup(c.cleanup)
	ct := "systest-" + randomHex(12)
	c.ctok = ct
	n1 := newNode(t, c.base, "node1", append([]string{"-bootstrap", "-cluster-token", ct}, extra(1)...)...)
	c.nodes = append(c.nodes, n1)
	n1.start()
	c.token = waitRootToken(t, n1, 30*time.Second)
	for i := 2; i <= size; i++ {
		n := newNode(t, c.base, fmt.Sprintf("node%d", i), append([]string{"-join", n1.httpAddr, "-cluster-token", ct}, extra(i)...)...)
		c.nodes = append(c.nodes, n)
		n.start()
	}
	c.waitVoters(n1, size, 60*time.Second)
	for _, n := range c.nodes {
		c.waitLocalReady(n, 30*time.Second)
	}
	return c
}

// startSingle starts one more bootstrapping node (its own one-node cluster)
// in the cluster's base dir; it returns the node and its root token.
func (c *cluster) startSingle(name string) (*node, string) {
	c.t.Helper()
	n := newNode(c.t, c.base, name, "-bootstrap")
	c.nodes = append(c.nodes, n)
	n.start()
	tok := waitRootToken(c.t, n, 30*time.Second)
	c.waitLocalReadyAs(n, tok, 30*time.Second)
	return n, tok
}

func (c *cluster) cleanup() {
	for _, n := range c.nodes {
		if n.running() {
			n.kill()
		}
	}
	if c.t.Failed() {
		for _, n := range c.nodes {
			c.t.Logf("==== log of %s (%s), last 48 KiB ====\n%s", n.name, n.logPath, n.tail(48<<10))
		}
	}
}

func waitRootToken(t testing.TB, n *node, timeout time.Duration) string {
	t.Helper()
	path := filepath.Join(n.dir, "root.token")
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return strings.TrimSpace(string(b))
		}
		if !n.running() {
			t.Fatalf("%s exited before writing %s", n.name, path)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not write %s within %s", n.name, path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resp is one HTTP exchange; Err is a transport error (no response).
type resp struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error
}

func (r *resp) String() string {
	if r.Err != nil {
		return "error: " + r.Err.Error()
	}
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
}

// errorCode is the top-level error_code of an error body, or of its first
// field error.
func (r *resp) errorCode() string {
	var e wire.Error // reads the errors of array items, which are nested lists
	if json.Unmarshal(r.Body, &e) != nil {
		return ""
	}
	if e.ErrorCode != "" {
		return e.ErrorCode
	}
	for _, fe := range e.Errors {
		return fe.ErrorCode
	}
	return ""
}

// do sends one request to n as root. body may be nil, []byte (sent as is)
// or a value encoded as JSON.
func (c *cluster) do(n *node, method, path string, body any) *resp {
	return c.doAs(n, c.token, method, path, body)
}

func (c *cluster) doAs(n *node, token, method, path string, body any) *resp {
	return doHTTP(context.Background(), c.hc, n.URL(), token, method, path, body)
}

func doHTTP(ctx context.Context, hc *http.Client, base, token, method, path string, body any) *resp {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return &resp{Err: err}
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return &resp{Err: err}
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hr, err := hc.Do(req)
	if err != nil {
		return &resp{Err: err}
	}
	defer hr.Body.Close()
	b, err := io.ReadAll(hr.Body)
	return &resp{Status: hr.StatusCode, Header: hr.Header, Body: b, Err: err}
}

// must fails the test unless r has status want.
func (c *cluster) must(r *resp, want int, what string) *resp {
	c.t.Helper()
	if r.Err != nil || r.Status != want {
		c.t.Fatalf("%s: want %d, got %s", what, want, r)
	}
	return r
}

// createdID decodes {"content":{"id":N,...}}.
func createdID(body []byte) (uint64, error) {
	var v struct {
		Content struct {
			ID uint64 `json:"id"`
		} `json:"content"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, err
	}
	if v.Content.ID == 0 {
		return 0, errors.New("no content.id in body")
	}
	return v.Content.ID, nil
}

// create POSTs obj to /membership/<service>/ on n and returns the new id.
// waitMember waits until member id is readable from n's own state
// (?stale=true), and says why not when the time is up.
func (c *cluster) waitMember(n *node, id uint64, timeout time.Duration) error {
	path := "/membership/member/" + itoa(id) + "/?stale=true"
	return waitFor(timeout, func() error {
		if r := c.do(n, http.MethodGet, path, nil); r.Err != nil || r.Status != http.StatusOK {
			return fmt.Errorf("%s: GET %s: %s", n.name, path, r)
		}
		return nil
	})
}

func (c *cluster) create(n *node, service string, obj any) uint64 {
	c.t.Helper()
	r := c.must(c.do(n, http.MethodPost, "/membership/"+service+"/", obj), http.StatusCreated, "create "+service)
	id, err := createdID(r.Body)
	if err != nil {
		c.t.Fatalf("create %s: %v in %s", service, err, r.Body)
	}
	return id
}

type clusterMember struct {
	ID       string `json:"id"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
	Healthy  bool   `json:"healthy"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
}

// members is GET /v1/operator/members on n.
func (c *cluster) members(n *node) ([]clusterMember, error) {
	r := c.do(n, http.MethodGet, "/v1/operator/members", nil)
	if r.Err != nil {
		return nil, r.Err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("members: %s", r)
	}
	var v struct {
		Content []clusterMember `json:"content"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return nil, err
	}
	return v.Content, nil
}

// waitVoters waits until n reports want healthy voters.
func (c *cluster) waitVoters(n *node, want int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ms, err := c.members(n)
		if err == nil {
			voters := 0
			for _, m := range ms {
				if m.Suffrage == "voter" && m.Healthy {
					voters++
				}
			}
			if voters == want {
				return
			}
			last = fmt.Sprintf("%+v", ms)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: want %d healthy voters within %s; last: %s", n.name, want, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLocalReady waits until n authenticates the root token and reads the
// global member from its own state (a stale read), i.e. it has caught up
// with the bootstrap and knows a leader.
func (c *cluster) waitLocalReady(n *node, timeout time.Duration) {
	c.t.Helper()
	c.waitLocalReadyAs(n, c.token, timeout)
}

func (c *cluster) waitLocalReadyAs(n *node, token string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := c.doAs(n, token, http.MethodGet, "/membership/member/1/?stale=true", nil)
		h := c.doAs(n, "", http.MethodGet, "/healthz", nil)
		if r.Err == nil && r.Status == http.StatusOK && h.Err == nil && h.Status == http.StatusOK {
			return
		}
		if !n.running() {
			c.t.Fatalf("%s exited", n.name)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not ready within %s: member/1: %s; healthz: %s", n.name, timeout, r, h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// byName returns the node with the given node id.
func (c *cluster) byName(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// leader asks the running nodes for the leader until one names a running
// node, and returns it.
func (c *cluster) leader(timeout time.Duration) *node {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			r := c.do(n, http.MethodGet, "/v1/operator/leader", nil)
			if r.Err != nil || r.Status != http.StatusOK {
				continue
			}
			var v struct {
				Content struct {
					ID string `json:"id"`
				} `json:"content"`
			}
			if json.Unmarshal(r.Body, &v) == nil {
				if l := c.byName(v.Content.ID); l != nil && l.running() {
					return l
				}
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no leader among the running nodes within %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// followers returns the running nodes other than l.
func (c *cluster) followers(l *node) []*node {
	var out []*node
	for _, n := range c.nodes[:3] {
		if n != l && n.running() {
			out = append(out, n)
		}
	}
	return out
}

// listAll pages through GET /membership/<service>/ on n (query appended,
// e.g. "stale=true") and returns the content arrays concatenated, as raw
// JSON objects, ordered by id.
func (c *cluster) listAll(n *node, token, service, query string) ([]json.RawMessage, error) {
	return c.listCollection(n, token, "/membership/"+service+"/", query)
}

// listCollection pages through any CloudCIX-style collection (e.g.
// "/iaas/ip_address/") on n and returns the content arrays concatenated.
func (c *cluster) listCollection(n *node, token, collection, query string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for page := 0; ; page++ {
		path := fmt.Sprintf("%s?order=id&limit=100&page=%d", collection, page)
		if query != "" {
			path += "&" + query
		}
		r := c.doAs(n, token, http.MethodGet, path, nil)
		if r.Err != nil {
			return nil, r.Err
		}
		if r.Status != http.StatusOK {
			return nil, fmt.Errorf("list %s on %s: %s", collection, n.name, r)
		}
		var v struct {
			Content  []json.RawMessage `json:"content"`
			Metadata struct {
				TotalRecords int `json:"total_records"`
			} `json:"_metadata"`
		}
		if err := json.Unmarshal(r.Body, &v); err != nil {
			return nil, err
		}
		out = append(out, v.Content...)
		if len(v.Content) == 0 || len(out) >= v.Metadata.TotalRecords {
			return out, nil
		}
	}
}

// canonical re-encodes JSON values so that two listings compare byte for byte.
func canonical(items []json.RawMessage) string {
	var vs []any
	for _, it := range items {
		var v any
		if err := json.Unmarshal(it, &v); err != nil {
			return "invalid: " + err.Error()
		}
		vs = append(vs, v)
	}
	b, _ := json.Marshal(vs)
	return string(b)
}

// waitFor polls f every 50 ms until it returns nil or timeout passes, and
// returns f's last error.
func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually waits up to timeout for ok and fails the test, naming what,
// when it does not come.
func eventually(t testing.TB, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	if waitFor(timeout, func() error {
		if ok() {
			return nil
		}
		return errNotYet
	}) != nil {
		t.Fatalf("%s: not within %v", what, timeout)
	}
}

var errNotYet = errors.New("not yet")

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// maxIndex is the highest modified_index in a canonical listing.
func maxIndex(listing string) uint64 {
	var objs []struct {
		ModifiedIndex uint64 `json:"modified_index"`
	}
	json.Unmarshal([]byte(listing), &objs)
	var max uint64
	for _, o := range objs {
		if o.ModifiedIndex > max {
			max = o.ModifiedIndex
		}
	}
	return max
}
