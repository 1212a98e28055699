package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// identityAPI is a controller that records the agent ids of the calls it
// gets and, while conflict is set, refuses the agent calls with 409
// agent_conflict_001 (another agent holds the server).
type identityAPI struct {
	*httptest.Server
	conflict atomic.Bool
	regs     atomic.Int32 // registrations answered 200
	// work, when set, is the content of the work answers (else none)
	work atomic.Pointer[string]
	// registered, when set, is the content of the registration answers
	// (else server 5, a heartbeat every second, no down-after deadline)
	registered atomic.Pointer[string]
	mu         sync.Mutex
	ids        map[string][]string // path → the X-Regent-Agent-Id of each call
	reports    []string            // "<path> <expected>→<state>" of each state report taken
	// down are the path prefixes answered 503 (a controller unreachable
	// for them: a partition), refused those refused with 409
	// agent_conflict_001 (checked after down, before conflict)
	down, refused []string
}

// setDown answers the calls to paths starting with one of prefixes 503
// (none: every call is answered again).
func (f *identityAPI) setDown(prefixes ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = prefixes
}

// setRefused refuses the calls to paths starting with one of prefixes
// with 409 agent_conflict_001.
func (f *identityAPI) setRefused(prefixes ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused = prefixes
}

func hasPrefix(path string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(path, p) })
}

const conflictBody = `{"detail":"Server 5 (hv9) is held by another agent (agent id aaaaaaaa…, last heard 1s ago): two hosts with one hostname, or two agents on one host; give each host its own hostname and each agent its own data_dir.","error_code":"agent_conflict_001"}`

func newIdentityAPI(t *testing.T) *identityAPI {
	f := &identityAPI{ids: map[string][]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.ids[r.URL.Path] = append(f.ids[r.URL.Path], r.Header.Get(api.HeaderAgentID))
		down, refused := hasPrefix(r.URL.Path, f.down), hasPrefix(r.URL.Path, f.refused)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"detail":"no leader","error_code":"regent_cluster_001"}`)
			return
		}
		if f.conflict.Load() || refused {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, conflictBody)
			return
		}
		switch r.URL.Path {
		case "/v1/agent/register":
			f.regs.Add(1)
			content := `{"server_id":5,"router_id":0,"heartbeat_interval":1}`
			if c := f.registered.Load(); c != nil {
				content = *c
			}
			fmt.Fprintf(w, `{"content":%s}`, content)
		case "/v1/agent/heartbeat":
			w.WriteHeader(http.StatusNoContent)
		case "/v1/agent/work":
			time.Sleep(50 * time.Millisecond)
			w.Header().Set("X-Regent-Index", "1")
			content := `{"index":1,"routers":[],"vms":[]}`
			if c := f.work.Load(); c != nil {
				content = *c
			}
			fmt.Fprintf(w, `{"content":%s}`, content)
		default:
			if r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/iaas/") {
				var rep client.StateReport
				if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				f.mu.Lock()
				f.reports = append(f.reports, fmt.Sprintf("%s %d→%d", r.URL.Path, rep.Expected, rep.State))
				f.mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
				return
			}
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// calls returns the agent ids the calls to path carried.
func (f *identityAPI) calls(path string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids[path]...)
}

// taken returns the state reports taken.
func (f *identityAPI) taken() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reports...)
}

// runOn runs a hypervisor-role agent with data_dir dir against the
// controller at url; stop cancels it and waits for Run's result.
func runOn(t *testing.T, dir, url string) (d *Daemon, done <-chan error, stop func() error) {
	t.Helper()
	d = newTestDaemon(t, io.Discard, func(c *Config) {
		c.Token, c.DataDir, c.Storage = "t", dir, map[string]string{"SSD": dir}
	}, url)
	d.minRetry, d.maxRetry = 20*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- d.Run(ctx) }()
	return d, ch, func() error {
		cancel()
		select {
		case err := <-ch:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not stop")
			return nil
		}
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestSecondAgentOnOneDataDirFailsAtOnce: while an agent runs, a second on
// the same data_dir (it would act as the same server and build the same
// VMs) fails at once, naming the lock file and the holder's pid, and
// sends nothing to the controller. Once the first has stopped, an agent
// starts on that data_dir again.
func TestSecondAgentOnOneDataDirFailsAtOnce(t *testing.T) {
	srv := newIdentityAPI(t)
	dir := t.TempDir()
	_, _, stop := runOn(t, dir, srv.URL)
	waitUntil(t, "the first agent's registration", func() bool { return srv.regs.Load() > 0 })

	_, done, stop2 := runOn(t, dir, srv.URL)
	select {
	case err := <-done:
		want := []string{filepath.Join(dir, lockFile), "pid " + strconv.Itoa(os.Getpid()), "own data_dir"}
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Fatalf("second agent's Run = %v, want an error with %q", err, w)
			}
		}
		t.Logf("second agent: %v", err)
	case <-time.After(5 * time.Second):
		stop2()
		t.Fatal("a second agent on the same data_dir runs")
	}
	if n := srv.regs.Load(); n != 1 {
		t.Errorf("%d registrations, want the first agent's alone", n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, done, stop2 = runOn(t, dir, srv.URL)
	waitUntil(t, "a registration after the first stopped", func() bool { return srv.regs.Load() == 2 })
	select {
	case err := <-done:
		t.Fatalf("agent after the first stopped: %v", err)
	default:
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

// TestAgentIDPersistsAndIsSent: the agent makes <data_dir>/agent-id (32
// hex digits, mode 0600) at its first start, sends it on registration,
// heartbeats and work fetches, and keeps it across restarts; another
// data_dir is another agent.
func TestAgentIDPersistsAndIsSent(t *testing.T) {
	srv := newIdentityAPI(t)
	dir := t.TempDir()
	_, _, stop := runOn(t, dir, srv.URL)
	waitUntil(t, "a heartbeat and a work fetch", func() bool {
		return len(srv.calls("/v1/agent/heartbeat")) > 0 && len(srv.calls("/v1/agent/work")) > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, agentIDFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(b))
	if !validAgentID(id) {
		t.Fatalf("agent-id holds %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("agent-id mode %v, want 0600", fi.Mode().Perm())
	}
	for _, p := range []string{"/v1/agent/register", "/v1/agent/heartbeat", "/v1/agent/work"} {
		for _, got := range srv.calls(p) {
			if got != id {
				t.Errorf("%s carried agent id %q, want %q", p, got, id)
			}
		}
	}
	// a restart: the same id
	_, _, stop = runOn(t, dir, srv.URL)
	waitUntil(t, "the restarted agent's registration", func() bool { return srv.regs.Load() == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if regs := srv.calls("/v1/agent/register"); len(regs) != 2 || regs[1] != id {
		t.Errorf("registrations carried %q, want %q twice", regs, id)
	}
	// another data_dir: another id
	other := t.TempDir()
	_, _, stop = runOn(t, other, srv.URL)
	waitUntil(t, "the other agent's registration", func() bool { return srv.regs.Load() == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if regs := srv.calls("/v1/agent/register"); len(regs) != 3 || regs[2] == id || !validAgentID(regs[2]) {
		t.Errorf("another data_dir's agent id %q (first %q)", regs[2], id)
	}
	// a damaged agent-id is an error, not silently replaced
	if err := os.WriteFile(path, []byte("not an id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, done, stop := runOn(t, dir, srv.URL)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Run with a damaged agent-id = %v", err)
		}
	case <-time.After(5 * time.Second):
		stop()
		t.Error("Run with a damaged agent-id runs")
	}
}

// TestAgentConflictRefusals: the controller refuses this agent because
// another holds its server. At registration: the registration refused
// path (/healthz 503 with the reason, retried). Later, on heartbeats and
// work fetches: degraded with the reason, the work not acted on (the
// fetch failed, so nothing is synced) and registration tried again; once
// the controller takes it, the conflict goes from its health (a test agent has no libvirtd: its
// health may still be degraded by that).
func TestAgentConflictRefusals(t *testing.T) {
	srv := newIdentityAPI(t)
	srv.conflict.Store(true)
	d, _, stop := runOn(t, t.TempDir(), srv.URL)
	defer stop()
	healthz := func() (int, string) {
		rec := httptest.NewRecorder()
		d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	waitUntil(t, "/healthz 503 with the conflict", func() bool {
		code, body := healthz()
		return code == 503 && strings.Contains(body, "registration refused: agent_conflict_001: Server 5 (hv9) is held by another agent")
	})
	waitUntil(t, "the refused registration retried", func() bool { return len(srv.calls("/v1/agent/register")) >= 3 })
	srv.conflict.Store(false)
	waitUntil(t, "registration, then a work fetch", func() bool {
		code, body := healthz()
		return code == 200 && !strings.Contains(body, "agent_conflict_001") && len(srv.calls("/v1/agent/work")) > 0
	})

	// another agent takes the server: heartbeats and work fetches refused
	regs := srv.regs.Load()
	srv.conflict.Store(true)
	waitUntil(t, "degraded by the refused heartbeat and work fetch", func() bool {
		_, body := healthz()
		return strings.Contains(body, "heartbeat: agent_conflict_001") && strings.Contains(body, "work fetch: agent_conflict_001")
	})
	if h, _ := d.health(); h != "degraded" {
		t.Errorf("health %q", h)
	}
	srv.conflict.Store(false)
	waitUntil(t, "registered again and healthy", func() bool {
		code, body := healthz()
		return srv.regs.Load() > regs && code == 200 && !strings.Contains(body, "agent_conflict_001")
	})
}

// TestRefusedAgentTakesNoStepOnHeldWork: a VM in BUILDING whose build
// failed on this host is being retried when another agent instance takes
// the server (heartbeats refused with 409 agent_conflict_001). While the
// refusal holds, the retries do nothing on the host and report nothing;
// once the controller takes this agent again (it registers again), the
// VM is built and reported RUNNING. Before, the retries went on building
// (starting the domain the other agent's host had built: duplicate MACs
// and addresses) and only their state reports were refused.
func TestRefusedAgentTakesNoStepOnHeldWork(t *testing.T) {
	srv := newIdentityAPI(t)
	work := fmt.Sprintf(`{"index":1,"routers":[],"vms":[{"id":1,"project_id":2,"state":%d,"generation":1}]}`, api.StateBuilding)
	srv.work.Store(&work)
	d := newTestDaemon(t, failureLogs(t), func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = 20*time.Millisecond, 100*time.Millisecond
	b := newFakeVMs()
	setBad := func(err error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.bad[1] = err
	}
	builds := func() int {
		n := 0
		for _, c := range b.log() {
			if c == "build 1" {
				n++
			}
		}
		return n
	}
	setBad(errors.New("domain start: failed"))
	_, stop := runAgent(t, d, b, d.heartbeatLoop, d.workLoop)
	defer stop()
	waitUntil(t, "the failed build retried", func() bool { return builds() >= 2 })

	// another agent takes the server
	srv.conflict.Store(true)
	waitUntil(t, "a refused heartbeat", func() bool { return d.conflict() != "" })
	time.Sleep(50 * time.Millisecond) // a build that passed its check before
	before, reports := builds(), len(srv.taken())
	setBad(nil) // a build now would succeed, and start the domain
	held := func() float64 {
		return testutil.ToFloat64(d.metrics.reconciles.WithLabelValues(api.KindVM, resultWaiting))
	}
	attempts := held()
	waitUntil(t, "the VM retried while held", func() bool {
		return held() > attempts || builds() > before
	})
	if n := builds(); n != before {
		t.Fatalf("the VM was built %d times while another agent held the server", n-before)
	}
	if got := srv.taken(); len(got) != reports {
		t.Errorf("state reports taken while held: %q", got[reports:])
	}

	// the other agent silent past agent_down_after: this one takes over
	srv.conflict.Store(false)
	want := fmt.Sprintf("/iaas/vm/1/ %d→%d", api.StateBuilding, api.StateRunning)
	waitUntil(t, "the VM built and reported RUNNING", func() bool {
		return builds() > before && slices.Contains(srv.taken(), want)
	})
}

// TestNoStepOnWorkFetchedBeforeAConflict: once a refusal for another
// agent holding the server ends (a heartbeat or registration taken), the
// objects the workers hold were fetched before the other agent held it
// (a VM it may have built meanwhile): no step is taken on them until a
// work answer asked for since has been synced, which then retries them.
func TestNoStepOnWorkFetchedBeforeAConflict(t *testing.T) {
	srv := newIdentityAPI(t)
	work := fmt.Sprintf(`{"index":1,"routers":[],"vms":[{"id":1,"project_id":2,"state":%d,"generation":1}]}`, api.StateBuilding)
	srv.work.Store(&work)
	d := newTestDaemon(t, failureLogs(t), func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = 20*time.Millisecond, 100*time.Millisecond
	d.reg = api.AgentRegistered{ServerID: 5}
	b := newFakeVMs()
	h := newVMHandler(b, d.ctl, d.metrics, d.log.Named("vm"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.vms = d.vmLoop(ctx, h)
	defer d.vms.Stop()

	d.heartbeatConflict(&api.Error{Status: http.StatusConflict, ErrorCode: api.ErrAgentConflict, Detail: "held by another agent"})
	d.heartbeatConflict(nil) // taken again
	spec := api.VMSpec{ID: 1, ProjectID: 2, State: api.StateBuilding, Generation: 1}
	if err := h.Apply(ctx, spec); err == nil || !strings.Contains(err.Error(), "waiting for the next work fetch") {
		t.Errorf("apply of a VM fetched before the conflict: %v", err)
	}
	if got := b.log(); len(got) > 0 || len(srv.taken()) > 0 {
		t.Fatalf("acted on a VM fetched before another agent held the server: host %q, reports %q", got, srv.taken())
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.workLoop(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	want := fmt.Sprintf("/iaas/vm/1/ %d→%d", api.StateBuilding, api.StateRunning)
	waitUntil(t, "the VM built and reported after a work fetch", func() bool {
		return slices.Contains(b.log(), "build 1") && slices.Contains(srv.taken(), want)
	})
	if why := d.acting(); why != "" {
		t.Errorf("still held after a work fetch: %s", why)
	}
}

// TestRegistrationEndsTheConflict: a heartbeat is refused for another
// agent holding the server, the agent registers again and the controller
// takes it (it records this agent as the holder), but heartbeats keep
// failing for another reason (here a 400). The registration ends the
// refusal: work answers are acted on again and the agent does not
// register again. Before, only a heartbeat taken ended it, so every work
// answer was discarded and the agent re-registered in a loop, degraded
// for ever.
func TestRegistrationEndsTheConflict(t *testing.T) {
	var regs, beats atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			regs.Add(1)
			fmt.Fprint(w, `{"content":{"server_id":5,"router_id":0,"heartbeat_interval":1}}`)
		case "/v1/agent/heartbeat":
			if beats.Add(1) == 1 {
				w.WriteHeader(http.StatusConflict)
				fmt.Fprint(w, conflictBody)
				return
			}
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"detail":"capacity: not understood","error_code":"regent_validation_001"}`)
		case "/v1/agent/work":
			time.Sleep(20 * time.Millisecond)
			w.Header().Set("X-Regent-Index", "1")
			fmt.Fprint(w, `{"content":{"index":1,"routers":[],"vms":[]}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d := newTestDaemon(t, failureLogs(t), func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = 20*time.Millisecond, 100*time.Millisecond
	_, stop := runAgent(t, d, nil, d.heartbeatLoop, d.workLoop)
	defer stop()
	waitUntil(t, "a refused heartbeat and a registration after it", func() bool { return regs.Load() >= 2 })
	waitUntil(t, "a heartbeat refused for another reason", func() bool { return beats.Load() >= 2 })
	fetched := testutil.ToFloat64(d.metrics.lastFetch)
	time.Sleep(1500 * time.Millisecond) // work fetches ~every 100 ms, heartbeats every 1 s
	if why := d.conflict(); why != "" {
		t.Errorf("the refusal stays after a registration was taken: %s", why)
	}
	if n := regs.Load(); n != 2 {
		t.Errorf("%d registrations, want 2: the agent keeps registering again", n)
	}
	if e, _ := d.fetchErr.Load().(string); e != "" || testutil.ToFloat64(d.metrics.lastFetch) == fetched {
		t.Errorf("work answers not acted on after the registration: fetch error %q", e)
	}
}

// TestClonedDataDirGetsItsOwnAgentID: agent-id.machine records the machine
// id of the host that made agent-id (which holds the id alone, as older
// agents read it). A host cloned from an image that held a data_dir
// (another machine id) makes its own id instead of sending its original's,
// which the controller would take for the original; the same host keeps
// its id, and an older file without a machine id keeps its id and gets
// this host's.
func TestClonedDataDirGetsItsOwnAgentID(t *testing.T) {
	dir := t.TempDir()
	id, replaced, err := loadAgentID(dir, "aaaa0000")
	if err != nil || !validAgentID(id) || replaced != "" {
		t.Fatalf("first start: %q, %q, %v", id, replaced, err)
	}
	if again, replaced, err := loadAgentID(dir, "aaaa0000"); err != nil || again != id || replaced != "" {
		t.Errorf("restart on the same host: %q (want %q), replaced %q, %v", again, id, replaced, err)
	}
	clone, replaced, err := loadAgentID(dir, "bbbb1111")
	if err != nil || clone == id || !validAgentID(clone) || replaced != id {
		t.Errorf("a clone: %q (original %q), replaced %q, %v", clone, id, replaced, err)
	}
	if again, _, _ := loadAgentID(dir, "bbbb1111"); again != clone {
		t.Errorf("the clone's restart: %q, want its own %q", again, clone)
	}
	// agent-id holds the id alone, as older agents read it
	path := filepath.Join(dir, agentIDFile)
	if b, _ := os.ReadFile(path); string(b) != clone+"\n" {
		t.Errorf("agent-id holds %q", b)
	}
	// an older agent's data_dir: agent-id alone
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + machineSuffix); err != nil {
		t.Fatal(err)
	}
	if kept, replaced, err := loadAgentID(dir, "cccc2222"); err != nil || kept != id || replaced != "" {
		t.Errorf("an older file: %q (want %q kept), replaced %q, %v", kept, id, replaced, err)
	}
	if b, _ := os.ReadFile(path + machineSuffix); string(b) != "cccc2222\n" {
		t.Errorf("the machine id recorded: %q", b)
	}
	// a host without a machine id keeps whatever the file holds
	if kept, replaced, err := loadAgentID(dir, ""); err != nil || kept != id || replaced != "" {
		t.Errorf("no machine id: %q, %q, %v", kept, replaced, err)
	}
}

// TestSilentAgentTakesNoStepOnHeldWork: a VM in BUILDING whose build
// failed on this host is being retried when a partition cuts the agent
// off its controller (every call 503: "controller unreachable", no
// refusal). Past the controller's agent_down_after (the registration's
// agent_down_after_ms) the controller judges the server down and a clone
// may register and take it: from then the retries do nothing on the host
// and report nothing, and the agent says why in its health. A heartbeat
// taken again ends that, but the VM, fetched before, still waits for a
// work fetch; once one is taken it is built and reported RUNNING. Before,
// nothing was held on a partition, and a retry firing as it healed
// (before the first heartbeat, which a clone's controller refuses) started
// the domain the other host had built meanwhile.
func TestSilentAgentTakesNoStepOnHeldWork(t *testing.T) {
	srv := newIdentityAPI(t)
	reg := `{"server_id":5,"router_id":0,"heartbeat_interval":1,"heartbeat_interval_ms":100,"agent_down_after_ms":500}`
	srv.registered.Store(&reg)
	work := fmt.Sprintf(`{"index":1,"routers":[],"vms":[{"id":1,"project_id":2,"state":%d,"generation":1}]}`, api.StateBuilding)
	srv.work.Store(&work)
	d := newTestDaemon(t, failureLogs(t), func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = 20*time.Millisecond, 100*time.Millisecond
	b := newFakeVMs()
	setBad := func(err error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.bad[1] = err
	}
	builds := func() int { return countCalls(b, "build 1") }
	setBad(errors.New("domain start: failed"))
	_, stop := runAgent(t, d, b, d.heartbeatLoop, d.workLoop)
	defer stop()
	waitUntil(t, "the failed build retried", func() bool { return builds() >= 2 })

	// a partition: no call reaches the controller, past its deadline
	srv.setDown("/")
	time.Sleep(800 * time.Millisecond)
	before, reports := builds(), len(srv.taken())
	setBad(nil) // a build now would succeed, and start the domain
	held := func() float64 {
		return testutil.ToFloat64(d.metrics.reconciles.WithLabelValues(api.KindVM, resultWaiting))
	}
	attempts := held()
	waitUntil(t, "the VM retried during the partition", func() bool {
		return held() > attempts || builds() > before
	})
	if n := builds(); n != before {
		t.Fatalf("the VM was built %d times while no heartbeat had been taken for the controller's agent_down_after", n-before)
	}
	if h, detail := d.health(); h != "degraded" || !strings.Contains(detail, "no heartbeat delivered for") ||
		!strings.Contains(detail, "past the controller's agent_down_after (500ms)") {
		t.Errorf("health during the partition: %s %q", h, detail)
	}

	// the partition heals for heartbeats, not yet for work fetches: the
	// VM was fetched before the silence, and waits
	srv.setDown("/v1/agent/work", "/iaas/")
	waitUntil(t, "a heartbeat taken again", func() bool {
		_, detail := d.health()
		return !strings.Contains(detail, "no heartbeat delivered")
	})
	time.Sleep(300 * time.Millisecond)
	if n := builds(); n != before {
		t.Fatalf("the VM was built %d times after a heartbeat was taken, before a work fetch", n-before)
	}
	if why := d.acting(); !strings.Contains(why, "waiting for the next work fetch") {
		t.Errorf("acting after a heartbeat taken, before a work fetch: %q", why)
	}

	srv.setDown()
	want := fmt.Sprintf("/iaas/vm/1/ %d→%d", api.StateBuilding, api.StateRunning)
	waitUntil(t, "the VM built and reported RUNNING after a work fetch", func() bool {
		return builds() > before && slices.Contains(srv.taken(), want)
	})
	if got := srv.taken(); slices.Contains(got[:reports], want) {
		t.Errorf("reported RUNNING before the partition: %q", got)
	}
}

// TestRegistrationDeadlineReachesTheAgent: the controller's
// agent_down_after_ms in the registration answer is the agent's: with
// heartbeats failing past it, the agent is degraded naming it, holds its
// work, and is well again once a heartbeat is taken. An older controller
// that sends no deadline: no such hold, however long heartbeats fail.
func TestRegistrationDeadlineReachesTheAgent(t *testing.T) {
	srv := newIdentityAPI(t)
	reg := `{"server_id":5,"router_id":0,"heartbeat_interval":1,"heartbeat_interval_ms":100,"agent_down_after_ms":700}`
	srv.registered.Store(&reg)
	d, _, stop := runOn(t, t.TempDir(), srv.URL)
	defer stop()
	waitUntil(t, "a heartbeat", func() bool { return len(srv.calls("/v1/agent/heartbeat")) > 0 })
	srv.setDown("/v1/agent/heartbeat")
	const want = "past the controller's agent_down_after (700ms): another agent instance may hold this server"
	waitUntil(t, "degraded past the deadline", func() bool {
		h, detail := d.health()
		return h == "degraded" && strings.Contains(detail, "heartbeat: no heartbeat delivered for") && strings.Contains(detail, want)
	})
	if why := d.acting(); !strings.Contains(why, want) {
		t.Errorf("acting past the deadline: %q", why)
	}
	srv.setDown()
	waitUntil(t, "a heartbeat taken again", func() bool {
		_, detail := d.health()
		return !strings.Contains(detail, "agent_down_after")
	})

	// an older controller: no deadline in the answer
	old := newIdentityAPI(t)
	d, _, stop2 := runOn(t, t.TempDir(), old.URL)
	defer stop2()
	waitUntil(t, "a heartbeat", func() bool { return len(old.calls("/v1/agent/heartbeat")) > 0 })
	old.setDown("/v1/agent/heartbeat")
	waitUntil(t, "heartbeats failing", func() bool { return len(old.calls("/v1/agent/heartbeat")) > 1 })
	time.Sleep(1500 * time.Millisecond)
	if _, detail := d.health(); strings.Contains(detail, "agent_down_after") {
		t.Errorf("held without a deadline from the controller: %q", detail)
	}
	if why := d.acting(); why != "" {
		t.Errorf("acting without a deadline from the controller: %q", why)
	}
}

// countCalls counts the calls c the fake builder got ("build 1").
func countCalls(b *fakeVMs, c string) int {
	n := 0
	for _, got := range b.log() {
		if got == c {
			n++
		}
	}
	return n
}

// TestRefusedStateReportHoldsOtherWorkers: a VM in BUILDING whose build
// failed on this host is being retried when another agent instance takes
// the server. The next heartbeat is a minute away; the first sign is the
// claim of another VM, refused with 409 agent_conflict_001. From that
// refusal the retries of the first VM do nothing on the host and report
// nothing (the agent is degraded with the refusal), as after a refused
// heartbeat; once the controller takes this agent again (it registers
// again) and the work is fetched again, both VMs are built and reported.
// Before, a refused state report held nothing, and the other workers went
// on building until the next heartbeat was refused.
func TestRefusedStateReportHoldsOtherWorkers(t *testing.T) {
	srv := newIdentityAPI(t)
	reg := `{"server_id":5,"router_id":0,"heartbeat_interval":60,"heartbeat_interval_ms":60000}`
	srv.registered.Store(&reg)
	work := fmt.Sprintf(`{"index":1,"routers":[],"vms":[{"id":1,"project_id":2,"state":%d,"generation":1}]}`, api.StateBuilding)
	srv.work.Store(&work)
	d := newTestDaemon(t, failureLogs(t), func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = 20*time.Millisecond, 100*time.Millisecond
	b := newFakeVMs()
	setBad := func(err error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.bad[1] = err
	}
	builds := func() int { return countCalls(b, "build 1") }
	setBad(errors.New("domain start: failed"))
	_, stop := runAgent(t, d, b, d.heartbeatLoop, d.workLoop)
	defer stop()
	waitUntil(t, "the failed build retried", func() bool { return builds() >= 2 })

	// another agent takes the server: state reports and registrations
	// refused; a new VM's claim is the first call refused
	srv.setRefused("/iaas/", "/v1/agent/register")
	work = fmt.Sprintf(`{"index":1,"routers":[],"vms":[{"id":1,"project_id":2,"state":%d,"generation":1},{"id":2,"project_id":2,"state":%d,"generation":1}]}`,
		api.StateBuilding, api.StateRequested)
	srv.work.Store(&work)
	waitUntil(t, "the new VM's claim refused", func() bool { return len(srv.calls("/iaas/vm/2/")) > 0 })
	time.Sleep(50 * time.Millisecond) // a build that passed its check before
	before := builds()
	setBad(nil) // a build now would succeed, and start the domain
	held := func() float64 {
		return testutil.ToFloat64(d.metrics.reconciles.WithLabelValues(api.KindVM, resultWaiting))
	}
	attempts := held()
	waitUntil(t, "the first VM retried after the refusal", func() bool {
		return held() > attempts || builds() > before
	})
	if n := builds(); n != before {
		t.Fatalf("the VM was built %d times after a state report was refused for another agent holding the server", n-before)
	}
	if n := len(srv.calls("/v1/agent/heartbeat")); n > 0 {
		t.Fatalf("%d heartbeats: the hold must come from the refused report", n)
	}
	if h, detail := d.health(); h != "degraded" || !strings.Contains(detail, "state report: VM 2 claim") || !strings.Contains(detail, "agent_conflict_001") {
		t.Errorf("health after the refused report: %s %q", h, detail)
	}
	if got := countCalls(b, "build 2"); got > 0 {
		t.Errorf("the refused claim's VM was built")
	}

	// the other agent silent past agent_down_after: this one takes over
	srv.setRefused()
	for _, want := range []string{
		fmt.Sprintf("/iaas/vm/1/ %d→%d", api.StateBuilding, api.StateRunning),
		fmt.Sprintf("/iaas/vm/2/ %d→%d", api.StateBuilding, api.StateRunning),
	} {
		waitUntil(t, want, func() bool { return slices.Contains(srv.taken(), want) })
	}
	if builds() <= before {
		t.Error("the first VM was reported RUNNING but not built")
	}
}

// TestHoldOverDuringAQueryFetchesAtOnce: a refusal that began and ended
// while a blocking work query waited (a heartbeat refused, then taken)
// leaves the workers waiting for work asked after it; the agent asks at
// once, without blocking, rather than block until the work changes (5 min
// by default). Before, the next query blocked on the index it had.
func TestHoldOverDuringAQueryFetchesAtOnce(t *testing.T) {
	var d atomic.Pointer[Daemon]
	var mu sync.Mutex
	var indexes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			fmt.Fprint(w, `{"content":{"server_id":5,"router_id":0,"heartbeat_interval":60}}`)
		case "/v1/agent/work":
			mu.Lock()
			indexes = append(indexes, r.URL.Query().Get("index"))
			n := len(indexes)
			mu.Unlock()
			if n == 2 {
				// the blocking query: a heartbeat was refused and then
				// taken while it waited
				d.Load().conflicts.Add(1)
			}
			w.Header().Set("X-Regent-Index", "7")
			fmt.Fprint(w, `{"content":{"index":7,"routers":[],"vms":[]}}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	dm, _, stop := runOn(t, t.TempDir(), srv.URL)
	d.Store(dm)
	defer stop()
	waitUntil(t, "three work queries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(indexes) >= 3
	})
	mu.Lock()
	second, third := indexes[1], indexes[2]
	mu.Unlock()
	if second != "7" {
		t.Fatalf("the second query asked index %q, want 7 (blocking)", second)
	}
	if third != "" && third != "0" {
		t.Errorf("the query after a hold that ended during the last one asked index %q, want none (at once)", third)
	}
	waitUntil(t, "the workers free to act", func() bool { return dm.acting() == "" })
}

// TestRefusalEndsABlockingWorkQuery: a heartbeat refused with
// agent_conflict_001 while a blocking work query waits ends that query,
// and the agent registers again at once. Before, the registration waited
// for the query's answer (up to work_wait, 5 min): with heartbeats no
// longer taking over, a server whose holder was already silent was taken
// over that much later.
func TestRefusalEndsABlockingWorkQuery(t *testing.T) {
	var conflict atomic.Bool
	var regs, queries atomic.Int32
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			regs.Add(1)
			conflict.Store(false)
			fmt.Fprint(w, `{"content":{"server_id":5,"router_id":0,"heartbeat_interval":1,"heartbeat_interval_ms":200}}`)
		case "/v1/agent/heartbeat":
			if conflict.Load() {
				w.WriteHeader(http.StatusConflict)
				fmt.Fprint(w, conflictBody)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case "/v1/agent/work":
			if queries.Add(1) > 1 && r.URL.Query().Get("index") != "" {
				// a blocking query: held until the agent ends it
				select {
				case <-r.Context().Done():
				case <-stop:
				}
				return
			}
			w.Header().Set("X-Regent-Index", "7")
			fmt.Fprint(w, `{"content":{"index":7,"routers":[],"vms":[]}}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	defer close(stop)
	_, _, stopAgent := runOn(t, t.TempDir(), srv.URL)
	defer stopAgent()
	waitUntil(t, "a blocking work query", func() bool { return queries.Load() >= 2 })
	time.Sleep(300 * time.Millisecond) // a heartbeat taken meanwhile
	conflict.Store(true)
	start := time.Now()
	for regs.Load() < 2 {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no registration %s after the refusal began (the blocking query held it)", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("registered again %s after heartbeats were refused", time.Since(start).Round(time.Millisecond))
}

// TestSilenceOverEndsABlockingWorkQuery: a silence past agent_down_after
// begins and ends while a blocking work query waits (heartbeats 503, as
// during a short partition the query's connection survives, or one
// election with agent_down_after at twice the heartbeat interval). Once a
// heartbeat is taken again, the agent ends that query and asks at once
// (no index), and the VM it held (fetched before the silence) is built
// and reported within a round trip, not when the query answers. Before,
// nothing ended the query: the workers said "waiting for the next work
// fetch" for its whole wait (work_wait, 5 min by default) while the
// agent's health said "ok".
func TestSilenceOverEndsABlockingWorkQuery(t *testing.T) {
	const blockFor = 8 * time.Second
	var hbDown atomic.Bool
	var blocking, ended atomic.Int32
	var mu sync.Mutex
	var queries []time.Time // when each work query without an index came
	var reports []string
	work := fmt.Sprintf(`{"index":1,"routers":[],"vms":[{"id":1,"project_id":2,"state":%d,"generation":1}]}`, api.StateBuilding)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v1/agent/register":
			fmt.Fprint(w, `{"content":{"server_id":5,"router_id":0,"heartbeat_interval":1,"heartbeat_interval_ms":100,"agent_down_after_ms":300}}`)
		case r.URL.Path == "/v1/agent/heartbeat":
			if hbDown.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"detail":"no leader","error_code":"regent_cluster_001"}`)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/v1/agent/work":
			if idx := r.URL.Query().Get("index"); idx != "" && idx != "0" {
				// a blocking query: the work does not change
				blocking.Add(1)
				select {
				case <-r.Context().Done():
					ended.Add(1)
					return
				case <-time.After(blockFor):
				}
			} else {
				mu.Lock()
				queries = append(queries, time.Now())
				mu.Unlock()
			}
			w.Header().Set("X-Regent-Index", "1")
			fmt.Fprintf(w, `{"content":%s}`, work)
		case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/iaas/"):
			var rep client.StateReport
			_ = json.NewDecoder(r.Body).Decode(&rep)
			mu.Lock()
			reports = append(reports, fmt.Sprintf("%s %d→%d", r.URL.Path, rep.Expected, rep.State))
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d := newTestDaemon(t, failureLogs(t), func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = 20*time.Millisecond, 100*time.Millisecond
	b := newFakeVMs()
	setBad := func(err error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.bad[1] = err
	}
	setBad(errors.New("domain start: failed"))
	_, stop := runAgent(t, d, b, d.heartbeatLoop, d.workLoop)
	defer stop()
	waitUntil(t, "a blocking work query and the failed build retried", func() bool {
		return blocking.Load() == 1 && countCalls(b, "build 1") >= 2
	})

	// heartbeats fail past agent_down_after; the query stays open
	hbDown.Store(true)
	waitUntil(t, "the silence", func() bool { return strings.Contains(d.acting(), "no heartbeat delivered") })
	setBad(nil)
	time.Sleep(200 * time.Millisecond)
	hbDown.Store(false)
	healed := time.Now()
	want := fmt.Sprintf("/iaas/vm/1/ %d→%d", api.StateBuilding, api.StateRunning)
	for !slices.Contains(func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(reports) }(), want) {
		if time.Since(healed) > 2*time.Second {
			t.Fatalf("the VM not reported RUNNING %s after the heartbeats were taken again (acting: %q; the blocking query, open for %s, ended: %d)",
				time.Since(healed).Round(time.Millisecond), d.acting(), blockFor, ended.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the VM reported RUNNING %s after the heal", time.Since(healed).Round(time.Millisecond))
	if ended.Load() != 1 {
		t.Errorf("the blocking query was not ended by the agent (%d)", ended.Load())
	}
	mu.Lock()
	last := queries[len(queries)-1]
	mu.Unlock()
	if last.Before(healed) {
		t.Errorf("no work query without an index after the heal")
	}
	if why := d.acting(); why != "" {
		t.Errorf("acting after the heal: %q", why)
	}
	if h, detail := d.health(); strings.Contains(detail, "work fetch") {
		t.Errorf("health after the heal: %s %q (an ended query is no failed fetch)", h, detail)
	}
}

// TestQueryEndedByARefusalOverIsNoFailure: a refusal for another agent
// instance ends the blocking work query under way, and is over (a
// heartbeat taken) before the work loop sees the query end. That is no
// failed fetch: the agent is not degraded by it, logs no error, and asks
// again at once without an index. Before, the ended query's "context
// canceled" was a work fetch refused: logged at error, the agent degraded
// ("work fetch: context canceled"), and the next query came a backoff
// later.
func TestQueryEndedByARefusalOverIsNoFailure(t *testing.T) {
	var mu sync.Mutex
	var indexes []string
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			fmt.Fprint(w, `{"content":{"server_id":5,"router_id":0,"heartbeat_interval":60}}`)
		case "/v1/agent/work":
			idx := r.URL.Query().Get("index")
			mu.Lock()
			indexes, times = append(indexes, idx), append(times, time.Now())
			mu.Unlock()
			if idx != "" && idx != "0" {
				select { // blocking: held until the agent ends it
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Second):
				}
			}
			w.Header().Set("X-Regent-Index", "7")
			fmt.Fprint(w, `{"content":{"index":7,"routers":[],"vms":[]}}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	var logs strings.Builder
	var logMu sync.Mutex
	d := newTestDaemon(t, writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = time.Second, 2*time.Second
	// the work loop sees the query end only once the refusal is over
	gate := &endGate{release: make(chan struct{})}
	d.ctl.opts = append(d.ctl.opts, client.WithHTTPClient(&http.Client{Transport: gate}))
	d.ctl.setToken("t")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() {
		gate.open()
		cancel()
		<-done
	}()
	if !d.register(ctx) {
		t.Fatal("not registered")
	}
	go func() {
		defer close(done)
		d.workLoop(ctx)
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(indexes)
	}
	waitUntil(t, "a blocking work query", func() bool { return count() == 2 })
	time.Sleep(50 * time.Millisecond)
	failures := testutil.ToFloat64(d.metrics.fetchErrors)
	d.refusedElsewhere("heartbeat", &api.Error{Status: http.StatusConflict, ErrorCode: api.ErrAgentConflict, Detail: "held by another agent"})
	d.heartbeatConflict(nil) // taken again
	ended := time.Now()
	gate.open()
	for time.Since(ended) < 300*time.Millisecond {
		if h, detail := d.health(); strings.Contains(detail, "work fetch") {
			t.Errorf("degraded by the ended query: %s %q", h, detail)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitUntil(t, "the next work query", func() bool { return count() >= 3 })
	mu.Lock()
	third, at := indexes[2], times[2]
	mu.Unlock()
	if third != "" && third != "0" {
		t.Errorf("the query after the ended one asked index %q, want none (at once)", third)
	}
	if took := at.Sub(ended); took > 600*time.Millisecond {
		t.Errorf("the next work query came %s after the refusal was over, want at once", took.Round(time.Millisecond))
	}
	if n := testutil.ToFloat64(d.metrics.fetchErrors); n != failures {
		t.Errorf("the ended query counted as %v failed fetches", n-failures)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logs.String(), "work fetch refused") {
		t.Errorf("the ended query logged as a refused fetch:\n%s", logs.String())
	}
	if why := d.acting(); why != "" {
		t.Errorf("acting after the next work answer: %q", why)
	}
}

// endGate is a transport that holds the error of a work query the agent
// ended (its context) until open is called.
type endGate struct {
	release chan struct{}
	once    sync.Once
}

func (g *endGate) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil && r.Context().Err() != nil && r.URL.Path == "/v1/agent/work" {
		<-g.release
	}
	return resp, err
}

func (g *endGate) open() { g.once.Do(func() { close(g.release) }) }

// TestConflictAfterBackoffRegistersAtOnce: work fetches fail long enough
// for the backoff to grow (a partition), then the first one answered is
// refused with agent_conflict_001 (another agent took the server
// meanwhile and has gone silent since). The agent registers at once, not
// a backoff later, and once the registration is taken asks for the work
// at once. Before, it slept the grown backoff (up to 30 s) before
// registering and again after.
func TestConflictAfterBackoffRegistersAtOnce(t *testing.T) {
	var down, conflict atomic.Bool
	var mu sync.Mutex
	var regs, fetches []time.Time // registrations taken, work answers
	var refused []time.Time       // work fetches refused with 409
	var failed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			mu.Lock()
			regs = append(regs, time.Now())
			mu.Unlock()
			conflict.Store(false) // the other agent was silent past its deadline
			fmt.Fprint(w, `{"content":{"server_id":5,"router_id":0,"heartbeat_interval":60}}`)
		case "/v1/agent/work":
			switch {
			case down.Load():
				failed.Add(1)
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"detail":"no leader","error_code":"regent_cluster_001"}`)
				return
			case conflict.Load():
				mu.Lock()
				refused = append(refused, time.Now())
				mu.Unlock()
				w.WriteHeader(http.StatusConflict)
				fmt.Fprint(w, conflictBody)
				return
			}
			mu.Lock()
			fetches = append(fetches, time.Now())
			mu.Unlock()
			w.Header().Set("X-Regent-Index", "7")
			fmt.Fprint(w, `{"content":{"index":7,"routers":[],"vms":[]}}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	d := newTestDaemon(t, failureLogs(t), func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = 100*time.Millisecond, 3*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() {
		cancel()
		<-done
	}()
	if !d.register(ctx) {
		t.Fatal("not registered")
	}
	down.Store(true)
	go func() {
		defer close(done)
		d.workLoop(ctx)
	}()
	// backoff 100, 200, 400 ms, then 800 ms: the next is 1.6 s
	waitUntil(t, "the backoff grown", func() bool { return failed.Load() >= 4 })
	conflict.Store(true)
	down.Store(false)
	waitUntil(t, "a work fetch refused, then a registration", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(refused) > 0 && len(regs) > 1
	})
	mu.Lock()
	wait := regs[1].Sub(refused[0])
	mu.Unlock()
	if wait > 800*time.Millisecond {
		t.Errorf("registered %s after the work fetch was refused, want at once", wait.Round(time.Millisecond))
	}
	waitUntil(t, "a work answer after the registration", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fetches) > 0
	})
	mu.Lock()
	after := fetches[0].Sub(regs[1])
	mu.Unlock()
	if after > 800*time.Millisecond {
		t.Errorf("the work asked for %s after the registration was taken, want at once", after.Round(time.Millisecond))
	}
	t.Logf("registered %s after the refusal, work answered %s after that", wait.Round(time.Millisecond), after.Round(time.Millisecond))
}

// TestRefusedAfterRegisteringIsPaced: a controller that takes the
// registration and refuses every work fetch for another agent instance
// (inconsistent, but a loop must not follow) is not asked in a busy
// loop: registrations after the first refusal come a growing backoff
// apart.
func TestRefusedAfterRegisteringIsPaced(t *testing.T) {
	var regs, fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			regs.Add(1)
			fmt.Fprint(w, `{"content":{"server_id":5,"router_id":0,"heartbeat_interval":60}}`)
		case "/v1/agent/work":
			fetches.Add(1)
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, conflictBody)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	d := newTestDaemon(t, io.Discard, func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = 100*time.Millisecond, 400*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if !d.register(ctx) {
		t.Fatal("not registered")
	}
	go func() {
		defer close(done)
		d.workLoop(ctx)
	}()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	<-done
	// at once, then 100, 200, 400, 400 ms…: about 6 in 1.5 s
	if n := regs.Load(); n > 10 || n < 2 {
		t.Errorf("%d registrations and %d work fetches in 1.5 s", n, fetches.Load())
	}
}

// TestHeartbeatTakenWhileASilenceIsJudged: a worker judges the deadline
// passed (no heartbeat taken for agent_down_after) and, before it marks
// the silence, a heartbeat is taken (heartbeatTaken). The silence is
// counted once and is over: the agent is not silent afterwards, and no
// second silence is counted. Before, the worker's check of the time of
// the last heartbeat and its marking of the silence were separate
// atomics: it marked the silence again just after the heartbeat had
// ended it, counting a phantom one (its error log right after "heartbeat
// taken again"), and the workers were held until the next heartbeat and
// work fetch.
func TestHeartbeatTakenWhileASilenceIsJudged(t *testing.T) {
	logs := &syncBuffer{}
	d := newTestDaemon(t, logs, func(c *Config) { c.Token = "t" }, "http://127.0.0.1:1")
	d.reg = api.AgentRegistered{ServerID: 5, AgentDownAfterMS: 1000}
	d.registered.Store(true)
	d.born = d.born.Add(-2 * time.Second) // no heartbeat taken for 2 s
	before := d.conflicts.Load()
	var hooked atomic.Bool
	taken := make(chan struct{})
	d.silenceJudged = func() {
		if !hooked.CompareAndSwap(false, true) {
			return // heartbeatTaken's own check
		}
		go func() {
			defer close(taken)
			d.heartbeatTaken(time.Now())
		}()
		// let it run as far as it can before the silence is marked
		select {
		case <-taken:
		case <-time.After(200 * time.Millisecond):
		}
	}
	d.silence()
	<-taken
	if d.isSilent() {
		t.Errorf("silent after a heartbeat was taken")
	}
	if why := d.silence(); why != "" {
		t.Errorf("silence after a heartbeat was taken: %q", why)
	}
	if n := d.conflicts.Load() - before; n != 1 {
		t.Errorf("%d silences counted, want the one that a heartbeat ended", n)
	}
	out := logs.String()
	if i, j := strings.Index(out, "heartbeat taken again"), strings.LastIndex(out, "no heartbeat delivered"); i < 0 || j > i {
		t.Errorf("a silence logged after the heartbeat was taken, or its end not logged:\n%s", out)
	}
}

// syncBuffer is a buffer the agent's log goes to from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestWorkFetchedAtOnceWhenTheControllerIsBack: after a controller outage
// the work fetch goes out as soon as a heartbeat is delivered again, not
// at the end of its backoff (which grows to max_retry, 30 s: the agent's
// routers and VMs took no step meanwhile, although the controller
// answered), and the log says the fetches work again.
func TestWorkFetchedAtOnceWhenTheControllerIsBack(t *testing.T) {
	srv := newIdentityAPI(t)
	reg := `{"server_id":5,"router_id":0,"heartbeat_interval":1,"heartbeat_interval_ms":100}`
	srv.registered.Store(&reg)
	var logs systemtest.Buffer
	d := newTestDaemon(t, &logs, func(c *Config) { c.Token = "t" }, srv.URL)
	d.minRetry, d.maxRetry = 20*time.Second, 20*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "a work fetch", func() bool { return len(srv.calls("/v1/agent/work")) > 0 })
	srv.setDown("/v1/agent/")
	waitUntil(t, "a failed work fetch and heartbeat", func() bool {
		return strings.Contains(logs.String(), "controller unreachable, retrying in 20s") &&
			strings.Contains(logs.String(), "heartbeat failed (controller unreachable)")
	})
	fetches := len(srv.calls("/v1/agent/work"))
	srv.setDown()
	healed := time.Now()
	waitUntil(t, "a work fetch after the outage", func() bool { return len(srv.calls("/v1/agent/work")) > fetches })
	if took := time.Since(healed); took > 5*time.Second {
		t.Errorf("the work was fetched %s after the controller came back, want within a heartbeat or two", took)
	}
	waitUntil(t, "the log saying so", func() bool { return strings.Contains(logs.String(), "work fetched again") })
}

// TestLastHeartbeatTimestamp: /metrics tells when the agent last reached
// a controller (its last heartbeat or registration taken), which moves
// every heartbeat interval; the work fetch's timestamp moves only when a
// blocking query ends (up to work_wait, 5 minutes).
func TestLastHeartbeatTimestamp(t *testing.T) {
	srv := newIdentityAPI(t)
	reg := `{"server_id":5,"router_id":0,"heartbeat_interval":1,"heartbeat_interval_ms":100}`
	srv.registered.Store(&reg)
	start := float64(time.Now().UnixNano()) / 1e9
	d, _, stop := runOn(t, t.TempDir(), srv.URL)
	defer stop()
	waitUntil(t, "two heartbeats", func() bool { return len(srv.calls("/v1/agent/heartbeat")) > 1 })
	if v := testutil.ToFloat64(d.metrics.lastBeat); v < start || v > float64(time.Now().Unix()+1) {
		t.Errorf("regent_agent_last_heartbeat_timestamp_seconds = %v, want since %v", v, start)
	}
}
