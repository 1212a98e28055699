package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/regentcloud/regent/agent/reconcile"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// ownedVMs is a VM handler that owns a fixed set of objects and records
// what it is asked to remove.
type ownedVMs struct {
	owned   []string
	mu      sync.Mutex
	removed []string
}

func (o *ownedVMs) Apply(context.Context, api.VMSpec) error { return nil }
func (o *ownedVMs) Owned(context.Context) ([]string, error) { return o.owned, nil }
func (o *ownedVMs) Remove(_ context.Context, key string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removed = append(o.removed, key)
	return nil
}

func (o *ownedVMs) removals() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.removed...)
}

// runWorkLoop runs only the daemon's work loop (registered as server 5,
// a VM loop over h) against a controller for the given time, and returns
// how many work fetches it made.
func runWorkLoop(t *testing.T, work http.HandlerFunc, h reconcile.Handler[api.VMSpec], run time.Duration, minBackoff ...time.Duration) (*Daemon, int64) {
	t.Helper()
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/agent/work" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		work(w, r)
	}))
	defer srv.Close()
	d := newTestDaemon(t, io.Discard, func(c *Config) {
		c.Token = "t"
		c.LibvirtSocket = filepath.Join(t.TempDir(), "none.sock")
	}, srv.URL)
	d.reg = api.AgentRegistered{ServerID: 5}
	ctx, cancel := context.WithCancel(context.Background())
	d.vms = reconcile.New(ctx, reconcile.Config[api.VMSpec]{Key: func(s api.VMSpec) string { return fmt.Sprint(s.ID) },
		Version: func(s api.VMSpec) string { return specVersion(d.versionKey, s) }, Handler: h, MinBackoff: append(minBackoff, 0)[0]})
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.workLoop(ctx)
	}()
	time.Sleep(run)
	cancel()
	<-done
	d.vms.Stop()
	return d, fetches.Load()
}

// TestUnusableWorkAnswerIsNotEmptyWork: a 200 answer to the work fetch
// that is not a work listing (no content, no index: a proxy or another
// server at the controller's address) is an error, retried with backoff:
// before, it was taken for a complete listing of nothing, so the agent
// scrubbed every VM it had built, and, its index staying 0, fetched again
// at once, in a busy loop.
func TestUnusableWorkAnswerIsNotEmptyWork(t *testing.T) {
	for i, body := range []string{`{}`, `null`, `{"content":null}`, `{"content":{"index":7}}`, `{"results":[]}`} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			h := &ownedVMs{owned: []string{"1", "2"}}
			d, n := runWorkLoop(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, body)
			}, h, 1500*time.Millisecond)
			if got := h.removals(); len(got) > 0 {
				t.Errorf("the agent removed %d objects after an answer %s (first %q)", len(got), body, got[0])
			}
			// 1 s backoff (minRetry): the fetch at once, one after 1 s.
			if n > 3 {
				t.Errorf("%d work fetches in 1.5 s: no backoff", n)
			}
			if v := testutil.ToFloat64(d.metrics.fetchErrors); v < 1 {
				t.Errorf("regent_agent_work_fetch_errors_total = %v", v)
			}
			if h, detail := d.health(); h != "degraded" {
				t.Errorf("health %s %q", h, detail)
			}
		})
	}
}

// TestNonBlockingWorkAnswersAreNotABusyLoop: a controller (or a proxy in
// front of it) that answers the blocking work query at once with the same
// index, again and again, is not polled in a busy loop: before, the agent
// fetched again the moment each answer arrived (thousands a second).
func TestNonBlockingWorkAnswersAreNotABusyLoop(t *testing.T) {
	h := &ownedVMs{}
	_, n := runWorkLoop(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Regent-Index", "3")
		fmt.Fprint(w, `{"content":{"index":3,"routers":[],"vms":[]}}`)
	}, h, 1500*time.Millisecond)
	// The first fetch (index 0) and the second (index 3, answered at
	// once) go out at once; then 1 s, 2 s ... apart.
	if n > 4 {
		t.Errorf("%d work fetches in 1.5 s to a controller that does not block: a busy loop", n)
	}
}

// TestWorkFetchPassesContentHash: the agent hands back the content hash of
// the work it acted on with the index of the next blocking fetch, so that
// the controller answers it when this agent's work changes, not at every
// write in the region to a table a work is built from.
func TestWorkFetchPassesContentHash(t *testing.T) {
	const hash = "0123456789abcdef0123456789abcdef"
	var mu sync.Mutex
	var queries []url.Values
	runWorkLoop(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Query())
		mu.Unlock()
		w.Header().Set("X-Regent-Index", "3")
		w.Header().Set("X-Regent-Content-Hash", hash)
		fmt.Fprint(w, `{"content":{"index":3,"routers":[],"vms":[]}}`)
	}, &ownedVMs{}, 300*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(queries) < 2 {
		t.Fatalf("%d work fetches", len(queries))
	}
	if q := queries[0]; q.Get("index") != "" || q.Get("hash") != "" {
		t.Errorf("the first fetch asked %v: it holds no work yet", q)
	}
	if q := queries[1]; q.Get("index") != "3" || q.Get("hash") != hash || q.Get("wait") == "" {
		t.Errorf("the second fetch asked %v, want index 3, wait and hash %s", q, hash)
	}
}

// TestHungControllerIsFailedOver: a controller that accepts connections
// and never answers (its process stopped with SIGSTOP, or stuck) costs
// each call callTimeout, after which the next controller is tried: the
// agent registers, heartbeats and fetches its work through the second.
// Before, calls had no deadline: the registration waited on the first
// controller for ever (its kernel keeps the TCP connection alive), and
// so did a heartbeat or work fetch already under way.
func TestHungControllerIsFailedOver(t *testing.T) {
	hole, _ := blackhole(t)
	good := newAgentAPI(t, 1)
	good.workOK.Store(true)
	d := newTestDaemon(t, io.Discard, func(c *Config) {
		c.Token = "t"
		c.LibvirtSocket = filepath.Join(t.TempDir(), "none.sock")
	}, hole, good.URL)
	d.ctl.timeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for deadline := time.Now().Add(20 * time.Second); good.beats.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat through the second controller in 20 s (registered: %v)", good.registered())
		}
	}
}

// blackhole is a controller that accepts connections and never answers
// (partitioned, stopped with SIGSTOP); accepted counts its connections.
func blackhole(t *testing.T) (url string, accepted *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int32{}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
			accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String(), accepted
}

// TestFailoverEndsCallsToTheOldController: a blocking work query under way
// to a controller that never answers ends when a heartbeat fails over to
// another controller, and is asked again of that one at once. Before, it
// waited out the call timeout and its wait (5.5 minutes by default) while
// the heartbeats had moved on.
func TestFailoverEndsCallsToTheOldController(t *testing.T) {
	hole, accepted := blackhole(t)
	good := newAgentAPI(t, 1)
	good.workOK.Store(true)
	ctl := newControllers([]string{hole, good.URL}, "t", hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const wait = 20 * time.Second
	type result struct {
		w   *api.Work
		err error
		in  time.Duration
	}
	fetched := make(chan result, 1)
	go func() {
		start := time.Now()
		var w *api.Work
		err := ctl.doWithin(ctx, wait, func(ctx context.Context, c *client.Client) (err error) {
			w, _, err = c.Agent().Work(ctx, 5, 0, 1, wait, "")
			return err
		})
		fetched <- result{w, err, time.Since(start)}
	}()
	for deadline := time.Now().Add(5 * time.Second); accepted.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the work query never reached the first controller")
		}
	}
	// The heartbeat has 2 s per controller: the first does not answer
	// (and the second may be slow to on a loaded machine).
	if err := ctl.doIn(ctx, 2*time.Second, func(ctx context.Context, c *client.Client) error {
		return c.Agent().Heartbeat(ctx, api.Heartbeat{ServerID: 5})
	}); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	select {
	case r := <-fetched:
		if r.err != nil || r.w == nil || r.w.Index != 1 {
			t.Errorf("work after the failover: %+v, %v", r.w, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the work query to the first controller was still waiting 5 s after the heartbeat failed over (its wait: %s)", wait)
	}
	if good.beats.Load() != 1 {
		t.Errorf("%d heartbeats through the second controller, want 1", good.beats.Load())
	}
}

// TestFailoverBeforeACallStartsEndsIt: a heartbeat fails over (cur
// moves) after a blocking work query chose the old controller and before
// the query is registered as under way, where the move cannot end it (the
// hook runs there). The query goes to the new current controller at once.
// Before, it went to the old one, which never answers, and waited out its
// wait and the call timeout (5.5 minutes by default).
func TestFailoverBeforeACallStartsEndsIt(t *testing.T) {
	hole, accepted := blackhole(t)
	good := newAgentAPI(t, 1)
	good.workOK.Store(true)
	ctl := newControllers([]string{hole, good.URL}, "t", hclog.NewNullLogger())
	var once sync.Once
	ctl.beforeCall = func() { once.Do(func() { ctl.use(1) }) } // the heartbeat's failover, in the gap
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const wait = 20 * time.Second
	fetched := make(chan error, 1)
	var w *api.Work
	go func() {
		fetched <- ctl.doWithin(ctx, wait, func(ctx context.Context, c *client.Client) (err error) {
			w, _, err = c.Agent().Work(ctx, 5, 0, 1, wait, "")
			return err
		})
	}()
	select {
	case err := <-fetched:
		if err != nil || w == nil || w.Index != 1 {
			t.Errorf("work: %+v, %v", w, err)
		}
	case <-time.After(5 * time.Second):
		cancel()
		<-fetched
		t.Fatalf("the work query went to the controller failed over from (%d connections to it) and waited there", accepted.Load())
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections to the controller failed over from", n)
	}
}

// failsFirst is a VM handler whose first apply fails (a state report the
// controller did not take) and counts its applies.
type failsFirst struct{ applies atomic.Int64 }

func (f *failsFirst) Apply(context.Context, api.VMSpec) error {
	if f.applies.Add(1) == 1 {
		return fmt.Errorf("report: controller unreachable")
	}
	return nil
}
func (f *failsFirst) Owned(context.Context) ([]string, error) { return nil, nil }
func (f *failsFirst) Remove(context.Context, string) error    { return nil }

// TestControllerBackRetriesAtOnce: when a work fetch works again after
// failing, the objects waiting out a backoff (their apply or its state
// report failed while the controller was away) are tried again at once.
// Before, each waited out its own backoff, which grows to a minute: after
// a long outage a VM's state could reach the controller a minute late.
func TestControllerBackRetriesAtOnce(t *testing.T) {
	h := &failsFirst{}
	var calls atomic.Int64
	_, _ = runWorkLoop(t, func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("X-Regent-Index", "3")
			fmt.Fprint(w, `{"content":{"index":3,"routers":[],"vms":[{"id":1,"state":5}]}}`)
		case 2:
			http.Error(w, `{"detail":"no leader","error_code":"regent_cluster_001"}`, http.StatusServiceUnavailable)
		case 3:
			w.Header().Set("X-Regent-Index", "4")
			fmt.Fprint(w, `{"content":{"index":4,"routers":[],"vms":[{"id":1,"state":5}]}}`)
		default:
			<-r.Context().Done() // a blocking query with nothing new
		}
	}, h, 4*time.Second, time.Hour)
	if calls.Load() < 3 {
		t.Fatalf("%d work fetches, want the controller back by the third", calls.Load())
	}
	if n := h.applies.Load(); n != 2 {
		t.Errorf("VM 1 applied %d times, want twice: failed, then again as soon as the controller answered", n)
	}
}

// TestRotatedTokenIsReadAgain: a work fetch refused with 401 (the robot
// token was revoked: a rotation) reads token_file again and goes on with
// the token an operator put there, without a restart; before, it retried
// the revoked token until restarted.
func TestRotatedTokenIsReadAgain(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Auth-Token")
		mu.Lock()
		seen = append(seen, tok)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if tok != "new" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"detail":"The token is invalid, revoked or expired.","error_code":"regent_auth_002"}`)
			return
		}
		w.Header().Set("X-Regent-Index", "9")
		fmt.Fprint(w, `{"content":{"index":9,"vms":[]}}`)
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "robot.token")
	if err := os.WriteFile(tokenFile, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs systemtest.Buffer
	d := newTestDaemon(t, &logs, func(c *Config) {
		c.TokenFile = tokenFile
		c.LibvirtSocket = filepath.Join(t.TempDir(), "none.sock")
	}, srv.URL)
	d.reg = api.AgentRegistered{ServerID: 5}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.vms = reconcile.New(ctx, reconcile.Config[api.VMSpec]{Key: func(s api.VMSpec) string { return fmt.Sprint(s.ID) },
		Version: func(s api.VMSpec) string { return specVersion(d.versionKey, s) }, Handler: &ownedVMs{}})
	defer d.vms.Stop()
	// The new token is in place before the old one is refused, as a
	// rotation does it (create, write, revoke).
	if err := os.WriteFile(tokenFile, []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.workLoop(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(d.metrics.lastFetch) == 0 {
		if time.Now().After(deadline) {
			cancel()
			<-done
			mu.Lock()
			t.Fatalf("no work fetched with the new token; tokens sent %v; log:\n%s", seen, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != "old" || !strings.Contains(logs.String(), "token_file changed; using the new token") {
		t.Errorf("tokens sent %v; log:\n%s", seen, logs.String())
	}
	// The first retry with the new token is at once, not after a backoff.
	if strings.Contains(logs.String(), "work fetch refused") {
		t.Errorf("the 401 was logged as a refusal to retry after backoff:\n%s", logs.String())
	}
	// Nor is it an outage that ended.
	if strings.Contains(logs.String(), "work fetched again") {
		t.Errorf("the token replaced was logged as fetches failing:\n%s", logs.String())
	}
}

// recordingVMs is an ownedVMs that also records the VMs applied.
type recordingVMs struct {
	ownedVMs
	applied atomic.Int32
}

func (r *recordingVMs) Apply(context.Context, api.VMSpec) error { r.applied.Add(1); return nil }

// TestRefusedHeartbeatStopsActingOnWork: once a heartbeat is refused for
// another agent instance holding the server (409 agent_conflict_001), a
// work answer (a blocking query that passed the controller's check before
// the other agent took the server) is not acted on: nothing is applied or
// removed, and the agent registers again. Before, it was synced.
func TestRefusedHeartbeatStopsActingOnWork(t *testing.T) {
	var regs atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			regs.Add(1)
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, conflictBody)
		case "/v1/agent/work":
			w.Header().Set("X-Regent-Index", "4")
			fmt.Fprint(w, `{"content":{"index":4,"routers":[],"vms":[{"id":1,"state":4}]}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d := newTestDaemon(t, io.Discard, func(c *Config) {
		c.Token = "t"
		c.LibvirtSocket = filepath.Join(t.TempDir(), "none.sock")
	}, srv.URL)
	d.minRetry, d.maxRetry = 20*time.Millisecond, 50*time.Millisecond
	d.reg = api.AgentRegistered{ServerID: 5}
	// the heartbeat loop's record of a refused heartbeat
	d.heartbeatConflict(&api.Error{Status: http.StatusConflict, ErrorCode: api.ErrAgentConflict, Detail: "held by another agent"})
	h := &recordingVMs{ownedVMs: ownedVMs{owned: []string{"2"}}}
	ctx, cancel := context.WithCancel(context.Background())
	d.vms = reconcile.New(ctx, reconcile.Config[api.VMSpec]{Key: func(s api.VMSpec) string { return fmt.Sprint(s.ID) },
		Version: func(s api.VMSpec) string { return specVersion(d.versionKey, s) }, Handler: h})
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.workLoop(ctx)
	}()
	acted := func() bool { return h.applied.Load() > 0 || len(h.removals()) > 0 }
	for deadline := time.Now().Add(10 * time.Second); regs.Load() < 1 && !acted(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent neither acted nor registered again")
		}
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	d.vms.Stop()
	if n, got := h.applied.Load(), h.removals(); n > 0 || len(got) > 0 {
		t.Errorf("work acted on while another agent holds the server: %d applied, removed %q", n, got)
	}
	if _, detail := d.health(); !strings.Contains(detail, "work fetch: agent_conflict_001") {
		t.Errorf("health detail %q", detail)
	}
}
