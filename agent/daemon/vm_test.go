package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/agent/reconcile"
	"github.com/regentcloud/regent/agent/vm"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// fakeVMs records builder calls; errs makes one fail.
type fakeVMs struct {
	mu      sync.Mutex
	calls   []string
	domains map[string]bool
	errs    map[string]error // "build", "update", "quiesce", "scrub"
	bad     map[uint64]error // build errors per VM
}

func newFakeVMs() *fakeVMs {
	return &fakeVMs{domains: map[string]bool{}, errs: map[string]error{}, bad: map[uint64]error{}}
}

func (f *fakeVMs) DomainName(s *api.VMSpec) string { return fmt.Sprintf("t%d_%d", s.ProjectID, s.ID) }

func (f *fakeVMs) rec(c string, s *api.VMSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s %d", c, s.ID))
	if c == "build" && f.bad[s.ID] != nil {
		return f.bad[s.ID]
	}
	if err := f.errs[c]; err != nil {
		return err
	}
	switch c {
	case "build", "update":
		f.domains[f.DomainName(s)] = true
	case "scrub":
		delete(f.domains, f.DomainName(s))
	}
	return nil
}

func (f *fakeVMs) Build(_ context.Context, s *api.VMSpec) error   { return f.rec("build", s) }
func (f *fakeVMs) Update(_ context.Context, s *api.VMSpec) error  { return f.rec("update", s) }
func (f *fakeVMs) Quiesce(_ context.Context, s *api.VMSpec) error { return f.rec("quiesce", s) }
func (f *fakeVMs) Scrub(_ context.Context, s *api.VMSpec) error   { return f.rec("scrub", s) }
func (f *fakeVMs) Domains(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for d := range f.domains {
		out = append(out, d)
	}
	slices.Sort(out)
	return out, nil
}
func (f *fakeVMs) ScrubDomain(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "scrub-domain "+name)
	delete(f.domains, name)
	return nil
}
func (f *fakeVMs) recName(c string, s *api.VMSpec, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s %d %s", c, s.ID, name))
	return f.errs[c]
}
func (f *fakeVMs) SnapshotCreate(_ context.Context, s *api.VMSpec, name string) error {
	return f.recName("snapshot-create", s, name)
}
func (f *fakeVMs) SnapshotRevert(_ context.Context, s *api.VMSpec, name string, _ uint64) error {
	return f.recName("snapshot-revert", s, name)
}
func (f *fakeVMs) SnapshotDelete(_ context.Context, s *api.VMSpec, name string, subtree bool) error {
	return f.recName(fmt.Sprintf("snapshot-delete(subtree=%v)", subtree), s, name)
}
func (f *fakeVMs) Backup(_ context.Context, s *api.VMSpec, name string) (string, error) {
	return "/backups/" + name, f.recName("backup", s, name)
}
func (f *fakeVMs) BackupDelete(_ context.Context, s *api.VMSpec, name string) error {
	return f.recName("backup-delete", s, name)
}
func (f *fakeVMs) BackupRestore(_ context.Context, s *api.VMSpec, name string, _ uint64) error {
	return f.recName("backup-restore", s, name)
}
func (f *fakeVMs) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// vmController is the fake controller for VMs (the ROBOT map is the same).
type vmController struct{ *fakeController }

func (c vmController) SetVMState(ctx context.Context, id uint64, r client.StateReport) error {
	return c.SetRouterState(ctx, id, r)
}

// Snapshots and backups share the fake's states: tests give them ids
// apart from the VMs'.
func (c vmController) SetSnapshotState(ctx context.Context, id uint64, r client.StateReport) error {
	return c.SetRouterState(ctx, id, r)
}
func (c vmController) SetBackupState(ctx context.Context, id uint64, r client.StateReport) error {
	return c.SetRouterState(ctx, id, r)
}

func newVMTest() (*vmHandler, *fakeVMs, *fakeController) {
	b := newFakeVMs()
	c := &fakeController{states: map[uint64]int{}}
	return newVMHandler(b, vmController{c}, NewMetrics(), hclog.NewNullLogger()), b, c
}

func TestVMStateMachine(t *testing.T) {
	for _, tc := range []struct {
		from, want int
		calls      []string
	}{
		{api.StateRequested, api.StateRunning, []string{"build 7"}},
		{api.StateBuilding, api.StateRunning, []string{"build 7"}}, // resumed after a restart
		{api.StateRunningUpdate, api.StateRunning, []string{"build 7"}},
		{api.StateRunningUpdating, api.StateRunning, []string{"build 7"}},
		{api.StateRestart, api.StateRunning, []string{"build 7"}},
		{api.StateRestarting, api.StateRunning, []string{"build 7"}},
		{api.StateQuiesce, api.StateQuiesced, []string{"quiesce 7"}},
		{api.StateQuiescing, api.StateQuiesced, []string{"quiesce 7"}},
		{api.StateQuiescedUpdate, api.StateQuiesced, []string{"quiesce 7", "update 7"}},
		{api.StateQuiescedUpdating, api.StateQuiesced, []string{"quiesce 7", "update 7"}},
		{api.StateScrub, api.StateScrubQueue, []string{"quiesce 7"}},
		{api.StateScrubPrep, api.StateScrubQueue, []string{"quiesce 7"}},
		{api.StateScrubQueue, api.StateClosed, []string{"quiesce 7", "scrub 7"}},
		{api.StateScrubbing, api.StateClosed, []string{"scrub 7"}},
		{api.StateRunning, api.StateRunning, []string{"build 7"}},
		{api.StateQuiesced, api.StateQuiesced, []string{"quiesce 7"}},
		{api.StateUnresourced, api.StateUnresourced, nil},
		{api.StateClosed, api.StateClosed, nil},
	} {
		t.Run(api.StateNames[tc.from], func(t *testing.T) {
			h, b, c := newVMTest()
			c.states[7] = tc.from
			if err := h.Apply(context.Background(), api.VMSpec{ID: 7, ProjectID: 3, State: tc.from, Generation: 4}); err != nil {
				t.Fatal(err)
			}
			if got := c.state(7); got != tc.want {
				t.Errorf("state %d → %d, want %d", tc.from, got, tc.want)
			}
			if got := b.log(); !slices.Equal(got, tc.calls) {
				t.Errorf("builder calls %q, want %q", got, tc.calls)
			}
			if n := len(c.reports); n > 0 {
				last := c.reports[n-1]
				if last.ObservedGeneration == nil || *last.ObservedGeneration != 4 {
					t.Errorf("stable report without observed_generation 4: %+v", last)
				}
			}
			if tc.want == api.StateScrubQueue {
				return // a request state for the next pass
			}
			// a second pass over a stable state reports nothing new
			before := len(c.reports)
			if err := h.Apply(context.Background(), api.VMSpec{ID: 7, ProjectID: 3, State: c.state(7), Generation: 4}); err != nil {
				t.Fatal(err)
			}
			if len(c.reports) != before {
				t.Errorf("drift-repair pass reported again: %+v", c.reports[before:])
			}
		})
	}
}

func TestVMConflictDrops(t *testing.T) {
	h, b, c := newVMTest()
	c.states[7] = api.StateBuilding // the state moved on
	if err := h.Apply(context.Background(), api.VMSpec{ID: 7, State: api.StateRequested}); err != nil {
		t.Fatalf("a lost claim must not be retried: %v", err)
	}
	if len(b.log()) != 0 || c.state(7) != api.StateBuilding {
		t.Errorf("lost claim acted: %q, state %d", b.log(), c.state(7))
	}
}

func TestVMErrorCodesGoUnresourced(t *testing.T) {
	for _, code := range []string{vm.CodeBadSpec, vm.CodeImageMissing, vm.CodeImageChecksum, vm.CodePoolFull} {
		t.Run(code, func(t *testing.T) {
			h, b, c := newVMTest()
			b.errs["build"] = &vm.Error{Code: code, Err: errors.New("the detail")}
			c.states[7] = api.StateRequested
			if err := h.Apply(context.Background(), api.VMSpec{ID: 7, State: api.StateRequested}); err != nil {
				t.Fatal(err)
			}
			last := c.reports[len(c.reports)-1]
			if c.state(7) != api.StateUnresourced || last.ErrorCode != code || !strings.Contains(last.ErrorDetail, "the detail") {
				t.Errorf("state %d, report %+v", c.state(7), last)
			}
		})
	}
	// A libvirt error is retried maxLibvirtFailures-1 times, then reported.
	h, b, c := newVMTest()
	b.errs["build"] = &vm.Error{Code: vm.CodeLibvirt, Err: errors.New("define: internal error")}
	c.states[7] = api.StateRequested
	spec := api.VMSpec{ID: 7, State: api.StateRequested}
	for i := 1; i < maxLibvirtFailures; i++ {
		if err := h.Apply(context.Background(), spec); err == nil {
			t.Fatalf("attempt %d: a libvirt error was not returned for a retry", i)
		}
		spec.State = c.state(7)
	}
	if c.state(7) != api.StateBuilding {
		t.Fatalf("state after retries = %d, want BUILDING", c.state(7))
	}
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if c.state(7) != api.StateUnresourced || c.reports[len(c.reports)-1].ErrorCode != vm.CodeLibvirt {
		t.Errorf("after %d libvirt failures: state %d", maxLibvirtFailures, c.state(7))
	}
	// libvirtd away (connection refused) is never UNRESOURCED
	b.errs["build"] = &vm.Error{Code: vm.CodeLibvirt, Err: fmt.Errorf("libvirt: connect: %w", syscall.ECONNREFUSED)}
	c.states[8] = api.StateBuilding
	for i := 0; i < maxLibvirtFailures+2; i++ {
		if err := h.Apply(context.Background(), api.VMSpec{ID: 8, State: api.StateBuilding}); err == nil {
			t.Fatal("a lost libvirtd was not retried")
		}
	}
	if c.state(8) != api.StateBuilding {
		t.Errorf("state with libvirtd away = %d", c.state(8))
	}
	// a missing segment bridge waits
	h.missing = func(*api.VMSpec) []string { return []string{"rgb10000"} }
	c.states[9] = api.StateRequested
	err := h.Apply(context.Background(), api.VMSpec{ID: 9, State: api.StateRequested})
	var ns *errNoSegment
	if !errors.As(err, &ns) || c.state(9) != api.StateBuilding || slices.Contains(b.log(), "build 9") {
		t.Errorf("missing bridge: err %v, state %d, calls %q", err, c.state(9), b.log())
	}
	// a stable state that cannot be repaired is left alone, no report
	h.missing = nil
	b.errs["build"] = &vm.Error{Code: vm.CodeImageChecksum, Err: errors.New("mismatch")}
	c.states[10] = api.StateRunning
	n := len(c.reports)
	if err := h.Apply(context.Background(), api.VMSpec{ID: 10, State: api.StateRunning}); err != nil {
		t.Fatal(err)
	}
	if c.state(10) != api.StateRunning || len(c.reports) != n {
		t.Errorf("stable VM with a bad spec: state %d, reports %+v", c.state(10), c.reports[n:])
	}
}

// TestVMLoopWithHandler: one bad VM goes UNRESOURCED while another builds,
// and a complete sync without a VM scrubs its domain.
func TestVMLoopWithHandler(t *testing.T) {
	h, b, c := newVMTest()
	b.bad[2] = &vm.Error{Code: vm.CodeImageMissing, Err: errors.New("no source")}
	b.domains["t9_99"] = true // a leftover of a VM nobody wants
	c.states[1], c.states[2] = api.StateRequested, api.StateRequested
	l := reconcile.New(context.Background(), reconcile.Config[api.VMSpec]{Key: h.Key, Version: func(s api.VMSpec) string { return specVersion(testKey, s) },
		Handler: h, MinBackoff: 10 * time.Millisecond})
	defer l.Stop()
	l.Sync([]api.VMSpec{{ID: 1, ProjectID: 5, State: api.StateRequested}, {ID: 2, ProjectID: 5, State: api.StateRequested}}, true)
	deadline := time.Now().Add(30 * time.Second)
	for c.state(1) != api.StateRunning || c.state(2) != api.StateUnresourced || slices.Contains(mustDomains(b), "t9_99") {
		if time.Now().After(deadline) {
			t.Fatalf("states %d %d, domains %v", c.state(1), c.state(2), mustDomains(b))
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.Sync([]api.VMSpec{{ID: 2, ProjectID: 5, State: api.StateUnresourced}}, true)
	if !slices.Contains(b.log(), "scrub-domain t5_1") {
		t.Errorf("VM 1 not in a complete fetch was not scrubbed: %q", b.log())
	}
	s := api.VMSpec{ID: 9, State: api.StateRunning, CPU: 1}
	v1 := specVersion(testKey, s)
	s.Storages = []api.StorageSpec{{ID: 1, GB: 20}}
	if specVersion(testKey, s) == v1 {
		t.Error("a storage change did not change the version")
	}
}

// A state report refused for another agent instance holding the server
// (409 agent_conflict_001) is no lost CAS: the claim and the report are
// retried with backoff until the controller takes them, without another
// work fetch.
func TestAgentConflictReportIsRetried(t *testing.T) {
	// A claim (REQUESTED) and a report (BUILDING) refused once each.
	for _, from := range []int{api.StateRequested, api.StateBuilding} {
		t.Run(api.StateNames[from], func(t *testing.T) {
			h, b, c := newVMTest()
			c.states[1] = from
			c.agentConflict = []bool{true}
			l := reconcile.New(context.Background(), reconcile.Config[api.VMSpec]{Key: h.Key, Version: func(s api.VMSpec) string { return specVersion(testKey, s) },
				Handler: h, MinBackoff: 10 * time.Millisecond})
			defer l.Stop()
			l.Sync([]api.VMSpec{{ID: 1, ProjectID: 5, State: from, Generation: 2}}, true)
			deadline := time.Now().Add(10 * time.Second)
			for c.state(1) != api.StateRunning {
				if time.Now().After(deadline) {
					t.Fatalf("state %s, builder calls %q: the refused report was not retried", api.StateNames[c.state(1)], b.log())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func mustDomains(b *fakeVMs) []string {
	d, _ := b.Domains(context.Background())
	return d
}

func TestVMConfig(t *testing.T) {
	c := Config{DataDir: "/var/lib/regent-agent", Storage: map[string]string{"SSD": "/d/ssd", "HDD": "/d/hdd"},
		LinkPrefix: "rg", SegmentMode: "vxlan", DomainPrefix: "x-"}
	if errs := c.finishVM(); len(errs) != 0 {
		t.Fatal(errs)
	}
	v := c.vmConfig(nil)
	if v.SeedDir != "/var/lib/regent-agent/seeds" || v.StorageRoot != "/var/lib/regent-agent/pools" ||
		!slices.Equal(v.StorageTypes, []string{"HDD", "SSD"}) || v.PoolPaths["SSD"] != "/d/ssd" ||
		v.ShutdownTimeout != 2*time.Minute || v.NamePrefix != "x-" || v.BridgePrefix != "rg" {
		t.Errorf("vm config = %+v", v)
	}
	if c.ImageRetention != "24h" {
		t.Errorf("image_retention default %q", c.ImageRetention)
	}
	bad := Config{DataDir: "/x", DomainType: "xen", SeedDir: "rel", ShutdownTimeout: "0s", DomainPrefix: "vm*", ImageRetention: "-1h"}
	if errs := bad.finishVM(); len(errs) != 5 {
		t.Errorf("bad config errors = %v", errs)
	}
	for _, p := range []string{"a/b", "[x]", "x?", strings.Repeat("a", 33)} {
		c := Config{DataDir: "/x", DomainPrefix: p}
		if errs := c.finishVM(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "domain_prefix") {
			t.Errorf("domain_prefix %q: %v", p, errs)
		}
	}
}

// testKey keys the spec digests in tests.
var testKey = []byte("test version key")

// TestLibvirtErrorLoggedOnChange: the capacity read at every heartbeat
// logs libvirtd's failure once, again only when the error changes, and
// its recovery once; the health keeps the current reason.
func TestLibvirtErrorLoggedOnChange(t *testing.T) {
	var logs systemtest.Buffer
	d := &Daemon{log: hclog.New(&hclog.LoggerOptions{Output: &logs}), metrics: NewMetrics()}
	down := errors.New("libvirt: connect /run/libvirt/libvirt-sock: no such file or directory")
	d.setLibvirtErr(nil)
	for range 5 {
		d.setLibvirtErr(down)
	}
	if h, detail := d.health(); h != "degraded" || !strings.Contains(detail, "no such file") {
		t.Errorf("health = %s %q", h, detail)
	}
	d.setLibvirtErr(errors.New("libvirt: timeout"))
	d.setLibvirtErr(nil)
	d.setLibvirtErr(nil)
	out := logs.String()
	if n := strings.Count(out, "libvirtd does not answer"); n != 2 {
		t.Errorf("%d warnings, want 2 (one per distinct error):\n%s", n, out)
	}
	if n := strings.Count(out, "libvirtd answers again"); n != 1 {
		t.Errorf("%d recoveries logged, want 1:\n%s", n, out)
	}
	if h, _ := d.health(); h != "ok" {
		t.Errorf("health after recovery = %s", h)
	}
}

// TestLibvirtdAwayIsNotLoggedPerVM: while libvirtd is away every VM's
// apply fails and is retried, but the log says so once (the daemon's
// "libvirtd does not answer"), not once per VM and retry: the retries of
// a lost connection are logged at debug level. A plain libvirt error is
// still a warning per attempt.
func TestLibvirtdAwayIsNotLoggedPerVM(t *testing.T) {
	h, b, c := newVMTest()
	away := &vm.Error{Code: vm.CodeLibvirt, Err: fmt.Errorf("state of t5_1: libvirt: connect /run/libvirt/libvirt-sock: %w", syscall.ENOENT)}
	b.errs["build"] = away
	var logs systemtest.Buffer
	l := reconcile.New(context.Background(), reconcile.Config[api.VMSpec]{Key: h.Key, Version: func(s api.VMSpec) string { return specVersion(testKey, s) },
		Handler: h, MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})})
	defer l.Stop()
	var specs []api.VMSpec
	for id := uint64(1); id <= 3; id++ {
		c.states[id] = api.StateRunning
		specs = append(specs, api.VMSpec{ID: id, ProjectID: 5, State: api.StateRunning})
	}
	l.Sync(specs, false)
	for deadline := time.Now().Add(30 * time.Second); strings.Count(strings.Join(b.log(), "\n"), "build") < 15; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("builds: %q", b.log())
		}
	}
	if n := strings.Count(logs.String(), "apply failed"); n > 0 {
		t.Errorf("%d \"apply failed\" lines for 3 VMs waiting for libvirtd, want none at info level:\n%s", n, logs.String())
	}
	b.mu.Lock()
	b.errs["build"] = &vm.Error{Code: vm.CodeLibvirt, Err: errors.New("internal error: qemu unexpectedly closed the monitor")}
	b.mu.Unlock()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "apply failed"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a plain libvirt error was not logged as a failure")
		}
	}
}
