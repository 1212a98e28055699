package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/agent/reconcile"
	"github.com/regentcloud/regent/agent/vpn"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// fakeBuilder records calls; errs makes a call fail.
type fakeBuilder struct {
	mu    sync.Mutex
	calls []string
	built map[uint64]bool
	errs  map[string]error // "ensure", "quiesce", "scrub"
	// vpnFailed is what Ensure reports as VPNs whose routes are invalid.
	vpnFailed []error
}

func (f *fakeBuilder) rec(c string, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s %d", c, id))
	return f.errs[c]
}

func (f *fakeBuilder) Ensure(_ context.Context, s *api.RouterSpec) (netrouter.Result, error) {
	if err := f.rec("ensure", s.ID); err != nil {
		return netrouter.Result{}, err
	}
	f.mu.Lock()
	f.built[s.ID] = true
	f.mu.Unlock()
	return netrouter.Result{Changes: []string{"x"}, Duration: time.Millisecond, VPNFailed: f.vpnFailed}, nil
}
func (f *fakeBuilder) EnsureQuiesced(_ context.Context, s *api.RouterSpec) (netrouter.Result, error) {
	if err := f.rec("ensure-quiesced", s.ID); err != nil {
		return netrouter.Result{}, err
	}
	f.mu.Lock()
	f.built[s.ID] = true
	f.mu.Unlock()
	return netrouter.Result{Changes: []string{"x"}, Duration: time.Millisecond}, nil
}
func (f *fakeBuilder) Quiesce(_ context.Context, s *api.RouterSpec) error {
	return f.rec("quiesce", s.ID)
}
func (f *fakeBuilder) Scrub(_ context.Context, id uint64) error {
	if err := f.rec("scrub", id); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.built, id)
	f.mu.Unlock()
	return nil
}
func (f *fakeBuilder) List(context.Context) ([]netrouter.Router, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netrouter.Router
	for id := range f.built {
		out = append(out, netrouter.Router{ID: id})
	}
	return out, nil
}

func (f *fakeBuilder) EnsureVPNRoutes(_ context.Context, s *api.RouterSpec) (netrouter.Result, error) {
	return netrouter.Result{}, f.rec("vpnroutes", s.ID)
}
func (f *fakeBuilder) Namespace(p uint64) string { return fmt.Sprintf("P%d", p) }

// fakeVPN records VPN calls; err makes Ensure fail for routers in failFor.
type fakeVPN struct {
	mu      sync.Mutex
	calls   []string
	err     error
	failFor map[uint64]bool
	// failed is what Ensure reports as VPNs that do not run.
	failed []error
}

func (f *fakeVPN) Ensure(_ context.Context, r vpn.Router, vpns []api.VPNSpec, rejected ...error) (vpn.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := fmt.Sprintf("vpn %d %s %s %d", r.ID, r.Namespace, r.PublicAddr, len(vpns))
	if len(rejected) > 0 {
		c += fmt.Sprintf(" rejected %d", len(rejected))
	}
	f.calls = append(f.calls, c)
	if f.failFor[r.ID] {
		return vpn.Result{}, f.err
	}
	// Like vpn.Manager: the rejected VPNs fail alone.
	return vpn.Result{Changes: []string{"x"}, Failed: append(slices.Clone(f.failed), rejected...)}, nil
}

func (f *fakeVPN) Remove(_ context.Context, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("vpn-remove %d", id))
	return nil
}

func (f *fakeVPN) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeBuilder) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeController keeps router states and applies CAS reports like the
// controller does (409 on a mismatch).
type fakeController struct {
	mu      sync.Mutex
	states  map[uint64]int
	reports []client.StateReport
	refuse  error // returned for 9→17
	// failReport fails the next report of an object that is not a claim
	// (one with an observed generation), once, as a controller that does
	// not answer.
	failReport map[uint64]error
	// agentConflict refuses the n-th report (from 0) with 409
	// agent_conflict_001 when its entry is true, as a controller does while
	// another agent instance holds the server.
	agentConflict []bool
	calls         int
}

func (f *fakeController) SetRouterState(_ context.Context, id uint64, r client.StateReport) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.calls
	f.calls++
	if n < len(f.agentConflict) && f.agentConflict[n] {
		return &api.Error{Status: http.StatusConflict, ErrorCode: api.ErrAgentConflict, Detail: "another agent"}
	}
	if f.states[id] != r.Expected {
		return &api.Error{Status: http.StatusConflict, ErrorCode: "iaas_virtual_router_update_409", Detail: "moved"}
	}
	if err := f.failReport[id]; err != nil && r.ObservedGeneration != nil {
		delete(f.failReport, id)
		return err
	}
	if r.Expected == api.StateScrubQueue && f.refuse != nil {
		return f.refuse
	}
	if changed, err := api.Transition("virtual_router", api.KindVirtualRouter, api.ActorRobot, r.Expected, r.State); err != nil {
		return err
	} else if !changed && r.ObservedGeneration == nil {
		return errors.New("a no-op report without a generation")
	}
	f.states[id] = r.State
	f.reports = append(f.reports, r)
	return nil
}

func (f *fakeController) state(id uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[id]
}

func newHandler() (*routerHandler, *fakeBuilder, *fakeController) {
	b := &fakeBuilder{built: map[uint64]bool{}, errs: map[string]error{}}
	c := &fakeController{states: map[uint64]int{}}
	return newRouterHandler("", b, nil, c, NewMetrics(), hclog.NewNullLogger()), b, c
}

func TestRouterStateMachine(t *testing.T) {
	for _, tc := range []struct {
		from, want int
		calls      []string
	}{
		{api.StateRequested, api.StateRunning, []string{"ensure 7"}},
		{api.StateBuilding, api.StateRunning, []string{"ensure 7"}}, // resumed after a restart
		{api.StateRunningUpdate, api.StateRunning, []string{"ensure 7"}},
		{api.StateRunningUpdating, api.StateRunning, []string{"ensure 7"}},
		{api.StateRestart, api.StateRunning, []string{"ensure 7"}},
		{api.StateRestarting, api.StateRunning, []string{"ensure 7"}},
		{api.StateQuiesce, api.StateQuiesced, []string{"quiesce 7"}},
		{api.StateQuiescing, api.StateQuiesced, []string{"quiesce 7"}},
		{api.StateQuiescedUpdate, api.StateQuiesced, []string{"ensure-quiesced 7"}},
		{api.StateQuiescedUpdating, api.StateQuiesced, []string{"ensure-quiesced 7"}},
		{api.StateScrub, api.StateScrubQueue, []string{"quiesce 7"}},
		{api.StateScrubPrep, api.StateScrubQueue, []string{"quiesce 7"}},
		{api.StateScrubQueue, api.StateClosed, []string{"quiesce 7", "scrub 7"}},
		{api.StateScrubbing, api.StateClosed, []string{"scrub 7"}},
		{api.StateRunning, api.StateRunning, []string{"ensure 7"}},
		{api.StateQuiesced, api.StateQuiesced, []string{"quiesce 7"}},
		{api.StateUnresourced, api.StateUnresourced, nil},
	} {
		t.Run(api.StateNames[tc.from], func(t *testing.T) {
			h, b, c := newHandler()
			c.states[7] = tc.from
			if err := h.Apply(context.Background(), api.RouterSpec{ID: 7, ProjectID: 3, State: tc.from, Generation: 4}); err != nil {
				t.Fatal(err)
			}
			if got := c.state(7); got != tc.want {
				t.Errorf("state %d → %d, want %d", tc.from, got, tc.want)
			}
			if got := b.log(); !slices.Equal(got, tc.calls) {
				t.Errorf("builder calls %q, want %q", got, tc.calls)
			}
			if n := len(c.reports); n > 0 && tc.from != tc.want {
				last := c.reports[n-1]
				if last.ObservedGeneration == nil || *last.ObservedGeneration != 4 {
					t.Errorf("stable report without observed_generation 4: %+v", last)
				}
			}
		})
	}
}

func TestRouterConflictDrops(t *testing.T) {
	h, b, c := newHandler()
	c.states[7] = api.StateBuilding // another agent claimed it
	if err := h.Apply(context.Background(), api.RouterSpec{ID: 7, State: api.StateRequested}); err != nil {
		t.Fatalf("a lost claim must not be retried: %v", err)
	}
	if len(b.log()) != 0 || c.state(7) != api.StateBuilding {
		t.Errorf("lost claim acted: %q, state %d", b.log(), c.state(7))
	}
	if v := testutil.ToFloat64(h.metrics.reconciles.WithLabelValues(api.KindVirtualRouter, resultConflict)); v != 1 {
		t.Errorf("conflict counter = %v", v)
	}
}

func TestRouterSpecErrorGoesUnresourced(t *testing.T) {
	h, b, c := newHandler()
	b.errs["ensure"] = &netrouter.SpecError{Err: errors.New("subnet 10.0.0.1/33 is not a prefix")}
	c.states[7] = api.StateRequested
	if err := h.Apply(context.Background(), api.RouterSpec{ID: 7, State: api.StateRequested}); err != nil {
		t.Fatal(err)
	}
	last := c.reports[len(c.reports)-1]
	if c.state(7) != api.StateUnresourced || last.ErrorCode != codeInvalidSpec || !strings.Contains(last.ErrorDetail, "10.0.0.1/33") {
		t.Errorf("state %d, report %+v", c.state(7), last)
	}
	// a host error is retried (returned), no state change
	b.errs["ensure"] = errors.New("netlink: busy")
	c.states[8] = api.StateRequested
	if err := h.Apply(context.Background(), api.RouterSpec{ID: 8, State: api.StateRequested}); err == nil {
		t.Error("a host error was not returned for a retry")
	}
	if c.state(8) != api.StateBuilding {
		t.Errorf("state after a host error = %d, want BUILDING (resumed on retry)", c.state(8))
	}
}

// TestRouterBadSpecScrubbed: a router UNRESOURCED with a spec the builder
// refuses goes through SCRUB to CLOSED. A host failure of Quiesce on the
// way is retried: the fallback (EnsureQuiesced) refusing the spec does not
// turn it into an invalid spec, which sent the router back to UNRESOURCED.
func TestRouterBadSpecScrubbed(t *testing.T) {
	h, b, c := newHandler()
	bad := &netrouter.SpecError{Err: errors.New("public_ip: \"x\" is not an IPv4 address")}
	b.errs["ensure"], b.errs["ensure-quiesced"] = bad, bad
	ctx := context.Background()
	c.states[7] = api.StateRequested
	if err := h.Apply(ctx, api.RouterSpec{ID: 7, ProjectID: 3, State: api.StateRequested}); err != nil {
		t.Fatal(err)
	}
	if c.state(7) != api.StateUnresourced {
		t.Fatalf("state %d, want UNRESOURCED", c.state(7))
	}
	c.states[7] = api.StateScrub // the user's request
	b.errs["quiesce"] = errors.New("netlink: busy")
	if err := h.Apply(ctx, api.RouterSpec{ID: 7, ProjectID: 3, State: api.StateScrub}); err == nil {
		t.Error("the host failure of Quiesce was not returned for a retry")
	}
	if c.state(7) != api.StateScrubPrep {
		t.Fatalf("state after a host failure of Quiesce = %s, want SCRUB_PREP (retried)", api.StateNames[c.state(7)])
	}
	delete(b.errs, "quiesce")
	for _, st := range []int{api.StateScrubPrep, api.StateScrubQueue} {
		if err := h.Apply(ctx, api.RouterSpec{ID: 7, ProjectID: 3, State: st}); err != nil {
			t.Fatalf("%s: %v", api.StateNames[st], err)
		}
	}
	if c.state(7) != api.StateClosed {
		t.Errorf("state %s, want CLOSED", api.StateNames[c.state(7)])
	}
}

func TestRouterScrubQueueWaitsForGrace(t *testing.T) {
	h, b, c := newHandler()
	c.states[7] = api.StateScrubQueue
	c.refuse = &api.Error{Status: http.StatusBadRequest, Detail: "Invalid data.",
		Errors: map[string]api.FieldError{"state": {ErrorCode: "iaas_virtual_router_update_114", Detail: "grace"}}}
	err := h.Apply(context.Background(), api.RouterSpec{ID: 7, State: api.StateScrubQueue})
	if !errors.Is(err, errNotYet) {
		t.Fatalf("within the grace period: %v", err)
	}
	if slices.Contains(b.log(), "scrub 7") {
		t.Fatal("scrubbed within the grace period")
	}
	c.refuse = nil
	if err := h.Apply(context.Background(), api.RouterSpec{ID: 7, State: api.StateScrubQueue}); err != nil {
		t.Fatal(err)
	}
	if c.state(7) != api.StateClosed {
		t.Errorf("state = %d", c.state(7))
	}
}

// TestGracePeriodIsNotAFailure: a router in SCRUB_QUEUE waits out its
// project's grace period (a week by default), retried with backoff. The
// wait is said once at info level; it was logged as "apply failed" at
// warn level at every retry, a line a minute per deleted project for the
// whole week.
func TestGracePeriodIsNotAFailure(t *testing.T) {
	b := &fakeBuilder{built: map[uint64]bool{}, errs: map[string]error{}}
	c := &fakeController{states: map[uint64]int{7: api.StateScrubQueue}}
	c.refuse = &api.Error{Status: http.StatusBadRequest, Detail: "Invalid data.",
		Errors: map[string]api.FieldError{"state": {ErrorCode: "iaas_virtual_router_update_114", Detail: "grace"}}}
	var logs systemtest.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	h := newRouterHandler("", b, nil, c, NewMetrics(), log)
	l := reconcile.New(context.Background(), reconcile.Config[api.RouterSpec]{Key: routerKey, Version: func(s api.RouterSpec) string { return specVersion(testKey, s) },
		Handler: h, MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Logger: log})
	defer l.Stop()
	l.Sync([]api.RouterSpec{{ID: 7, ProjectID: 3, State: api.StateScrubQueue}}, false)
	for deadline := time.Now().Add(30 * time.Second); strings.Count(strings.Join(b.log(), "\n"), "quiesce 7") < 5; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("host calls: %q", b.log())
		}
	}
	if n := strings.Count(logs.String(), "apply failed"); n > 0 {
		t.Errorf("%d \"apply failed\" lines while the grace period runs, want none at info level:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "scrub waits until the controller allows it"); n != 1 {
		t.Errorf("the wait said %d times, want once:\n%s", n, logs.String())
	}
	c.mu.Lock()
	c.refuse = nil
	c.mu.Unlock()
	for deadline := time.Now().Add(30 * time.Second); c.state(7) != api.StateClosed; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("state %s after the grace period, want CLOSED", api.StateNames[c.state(7)])
		}
	}
}

// TestLoopWithHandler: the reconcile loop with the router handler — one
// bad router goes UNRESOURCED while another builds, and a complete sync
// without a router scrubs it.
func TestLoopWithHandler(t *testing.T) {
	h, b, c := newHandler()
	bad := &netrouter.SpecError{Err: errors.New("bad")}
	c.states[1], c.states[2] = api.StateRequested, api.StateRequested
	h.b = &selectiveBuilder{fakeBuilder: b, bad: map[uint64]error{2: bad}}
	l := reconcile.New(context.Background(), reconcile.Config[api.RouterSpec]{Key: routerKey, Version: func(s api.RouterSpec) string { return specVersion(testKey, s) },
		Handler: h, MinBackoff: 10 * time.Millisecond})
	defer l.Stop()
	l.Sync([]api.RouterSpec{{ID: 1, State: api.StateRequested}, {ID: 2, State: api.StateRequested}}, true)
	deadline := time.Now().Add(30 * time.Second)
	for c.state(1) != api.StateRunning || c.state(2) != api.StateUnresourced {
		if time.Now().After(deadline) {
			t.Fatalf("states %d %d", c.state(1), c.state(2))
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.Sync([]api.RouterSpec{{ID: 2, State: api.StateUnresourced}}, true)
	if !slices.Contains(b.log(), "scrub 1") {
		t.Errorf("router 1 not in a complete fetch was not scrubbed: %q", b.log())
	}
	// a changed spec of the same state is a new version
	s := api.RouterSpec{ID: 9, State: api.StateRunning}
	v1 := specVersion(testKey, s)
	s.FirewallRules = []api.FirewallRuleSpec{{Order: 1, Allow: true}}
	if specVersion(testKey, s) == v1 {
		t.Error("a firewall change did not change the version")
	}
	// a new pre-shared key is a new version; the digest is keyed, so the
	// same spec under another daemon's key gives another version
	s.VPNs = []api.VPNSpec{{ID: 1, PreSharedKey: "one"}}
	v2 := specVersion(testKey, s)
	s.VPNs[0].PreSharedKey = "two"
	if v3 := specVersion(testKey, s); v3 == v2 {
		t.Error("a key change did not change the version")
	} else if specVersion([]byte("another daemon"), s) == v3 {
		t.Error("the version does not depend on the daemon's key")
	}
}

type selectiveBuilder struct {
	*fakeBuilder
	bad map[uint64]error
}

func (s *selectiveBuilder) Ensure(ctx context.Context, spec *api.RouterSpec) (netrouter.Result, error) {
	if err := s.bad[spec.ID]; err != nil {
		return netrouter.Result{}, err
	}
	return s.fakeBuilder.Ensure(ctx, spec)
}

func TestLocalizeDropsOwnVTEP(t *testing.T) {
	h := &routerHandler{vtep: "192.0.2.1"}
	in := api.RouterSpec{Subnets: []api.RouterSubnetSpec{{VTEPs: []string{"192.0.2.1", "192.0.2.2"}}}}
	out := h.localize(in)
	if !slices.Equal(out.Subnets[0].VTEPs, []string{"192.0.2.2"}) || len(in.Subnets[0].VTEPs) != 2 {
		t.Errorf("localize: %v (input now %v)", out.Subnets[0].VTEPs, in.Subnets[0].VTEPs)
	}
}

// TestRouterVPNs: VPNs are ensured after the router, their routes after
// charon; a VPN failure puts that router (only) UNRESOURCED with a VPN
// error code; quiesce and scrub stop its charon.
func TestRouterVPNs(t *testing.T) {
	b := &fakeBuilder{built: map[uint64]bool{}, errs: map[string]error{}}
	c := &fakeController{states: map[uint64]int{}}
	v := &fakeVPN{failFor: map[uint64]bool{}}
	h := newRouterHandler("", b, v, c, NewMetrics(), hclog.NewNullLogger())
	ctx := context.Background()
	spec := func(id uint64, state int) api.RouterSpec {
		return api.RouterSpec{ID: id, ProjectID: id * 10, State: state, PublicIP: "198.51.100.10/24",
			VPNs: []api.VPNSpec{{ID: 99}}}
	}

	c.states[7] = api.StateRequested
	if err := h.Apply(ctx, spec(7, api.StateRequested)); err != nil {
		t.Fatal(err)
	}
	if c.state(7) != api.StateRunning || !slices.Equal(b.log(), []string{"ensure 7", "vpnroutes 7"}) ||
		!slices.Equal(v.log(), []string{"vpn 7 P70 198.51.100.10 1"}) {
		t.Fatalf("state %d, builder %q, vpn %q", c.state(7), b.log(), v.log())
	}

	for _, tc := range []struct {
		err  error
		code string
	}{
		{&vpn.SpecError{Err: errors.New("vpn 99: listed twice")}, codeVPNInvalidSpec},
		{errors.New("charon exited at start"), codeVPNFailed},
	} {
		v.failFor[8], v.err = true, tc.err
		c.states[8] = api.StateRequested
		c.states[9] = api.StateRequested
		if tc.code == codeVPNFailed {
			// a host failure (charon would not run) is retried first:
			// BUILDING, an error for the loop's backoff, no report
			for i := 1; i < maxVPNFailures; i++ {
				st := api.StateRequested
				if i > 1 {
					st = api.StateBuilding
				}
				if err := h.Apply(ctx, spec(8, st)); err == nil || c.state(8) != api.StateBuilding {
					t.Fatalf("attempt %d of a charon failure: err %v, state %d; want a retry in BUILDING", i, err, c.state(8))
				}
			}
		}
		st8 := api.StateRequested
		if tc.code == codeVPNFailed {
			st8 = api.StateBuilding
		}
		if err := h.Apply(ctx, spec(8, st8)); err != nil {
			t.Fatal(err)
		}
		if err := h.Apply(ctx, spec(9, api.StateRequested)); err != nil {
			t.Fatal(err)
		}
		last := c.reports[len(c.reports)-2] // 8's, before 9's two reports... find it
		for _, r := range c.reports {
			if r.State == api.StateUnresourced {
				last = r
			}
		}
		if c.state(8) != api.StateUnresourced || last.ErrorCode != tc.code || !strings.Contains(last.ErrorDetail, tc.err.Error()) {
			t.Errorf("%v: state %d, report %+v", tc.err, c.state(8), last)
		}
		if c.state(9) != api.StateRunning {
			t.Errorf("another router disturbed: state %d", c.state(9))
		}
		c.reports = nil
	}

	c.states[7] = api.StateQuiesce
	if err := h.Apply(ctx, spec(7, api.StateQuiesce)); err != nil {
		t.Fatal(err)
	}
	c.states[7] = api.StateScrubbing
	if err := h.Apply(ctx, spec(7, api.StateScrubbing)); err != nil {
		t.Fatal(err)
	}
	var removes []string
	for _, l := range v.log() {
		if strings.HasPrefix(l, "vpn-remove 7") {
			removes = append(removes, l)
		}
	}
	if len(removes) != 2 || c.state(7) != api.StateClosed {
		t.Errorf("quiesce+scrub: vpn calls %q, state %d", v.log(), c.state(7))
	}
}

// TestRouterVPNFailsAlone: VPNs that do not run (one whose spec cannot be
// mapped, one strongSwan refused) leave the router RUNNING (its other
// VPNs run: vpn.Manager.Ensure loads them) and are counted in
// regent_agent_vpns_failed until they run or the router goes.
func TestRouterVPNFailsAlone(t *testing.T) {
	b := &fakeBuilder{built: map[uint64]bool{}, errs: map[string]error{}}
	c := &fakeController{states: map[uint64]int{}}
	v := &fakeVPN{failFor: map[uint64]bool{}, failed: []error{
		&vpn.SpecError{VPNID: 98, Err: errors.New("vpn 98: ike_dh_groups: \"group99\"")},
		&vpn.LoadError{VPNID: 99, Err: errors.New("load-conn: invalid proposal")}}}
	m := NewMetrics()
	h := newRouterHandler("", b, v, c, m, hclog.NewNullLogger())
	ctx := context.Background()
	spec := api.RouterSpec{ID: 7, ProjectID: 70, State: api.StateRequested, PublicIP: "198.51.100.10/24",
		VPNs: []api.VPNSpec{{ID: 97}, {ID: 98}, {ID: 99}}}
	c.states[7] = api.StateRequested
	if err := h.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if c.state(7) != api.StateRunning || !slices.Equal(b.log(), []string{"ensure 7", "vpnroutes 7"}) {
		t.Fatalf("state %d, builder %q", c.state(7), b.log())
	}
	if got := testutil.ToFloat64(m.vpnsFailed); got != 2 {
		t.Fatalf("regent_agent_vpns_failed %v, want 2", got)
	}
	v.failed = nil
	spec.State = api.StateRunning
	if err := h.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.vpnsFailed); got != 0 {
		t.Fatalf("regent_agent_vpns_failed %v after they run, want 0", got)
	}
}

// TestRouterVPNBadRouteFailsAlone: a VPN whose routes do not fit the
// router (the builder reports it in Result.VPNFailed) is handed to the VPN
// manager as rejected: the router goes RUNNING with its other VPNs, the
// VPN is counted in regent_agent_vpns_failed.
func TestRouterVPNBadRouteFailsAlone(t *testing.T) {
	bad := &vpn.SpecError{VPNID: 98, Err: errors.New("vpn 98: routes[0].local_subnet: 10.9.0.0/24 is not in a subnet of the router")}
	b := &fakeBuilder{built: map[uint64]bool{}, errs: map[string]error{}, vpnFailed: []error{bad}}
	c := &fakeController{states: map[uint64]int{}}
	v := &fakeVPN{failFor: map[uint64]bool{}}
	m := NewMetrics()
	h := newRouterHandler("", b, v, c, m, hclog.NewNullLogger())
	spec := api.RouterSpec{ID: 7, ProjectID: 70, State: api.StateRequested, PublicIP: "198.51.100.10/24",
		VPNs: []api.VPNSpec{{ID: 97}, {ID: 98}}}
	c.states[7] = api.StateRequested
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if c.state(7) != api.StateRunning || !slices.Equal(v.log(), []string{"vpn 7 P70 198.51.100.10 2 rejected 1"}) {
		t.Fatalf("state %d, vpn calls %q", c.state(7), v.log())
	}
	if got := testutil.ToFloat64(m.vpnsFailed); got != 1 {
		t.Fatalf("regent_agent_vpns_failed %v, want 1", got)
	}
}

// TestRouterVPNFailureLoggedOnChange: a VPN that keeps failing is logged
// at error level once, again when its error changes or after it ran in
// between, and at debug level on the resyncs in between.
func TestRouterVPNFailureLoggedOnChange(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	b := &fakeBuilder{built: map[uint64]bool{}, errs: map[string]error{}}
	c := &fakeController{states: map[uint64]int{}}
	refused := &vpn.LoadError{VPNID: 99, Err: errors.New("load-conn: invalid proposal")}
	v := &fakeVPN{failFor: map[uint64]bool{}, failed: []error{refused}}
	h := newRouterHandler("", b, v, c, NewMetrics(), log)
	ctx := context.Background()
	spec := api.RouterSpec{ID: 7, ProjectID: 70, State: api.StateRequested, PublicIP: "198.51.100.10/24",
		VPNs: []api.VPNSpec{{ID: 99}}}
	c.states[7] = api.StateRequested
	apply := func() {
		t.Helper()
		if err := h.Apply(ctx, spec); err != nil {
			t.Fatal(err)
		}
		spec.State = api.StateRunning
	}
	count := func() int { return strings.Count(buf.String(), "vpn does not run") }
	for range 3 {
		apply()
	}
	if n := count(); n != 1 {
		t.Fatalf("%d error lines after 3 applies with the same failure, want 1:\n%s", n, buf.String())
	}
	v.failed = []error{&vpn.LoadError{VPNID: 99, Err: errors.New("load-shared: no key")}}
	apply()
	apply()
	if n := count(); n != 2 {
		t.Fatalf("%d error lines after the error changed, want 2:\n%s", n, buf.String())
	}
	v.failed = nil
	apply()
	v.failed = []error{refused}
	apply()
	if n := count(); n != 3 {
		t.Fatalf("%d error lines after it ran and failed again, want 3:\n%s", n, buf.String())
	}
}

// TestRouterVPNHostFailureIsRetried: charon failing a few times (it
// crashed and its supervisor restarts it) does not make the router
// UNRESOURCED; the build finishes once charon answers, and the count
// starts again afterwards.
func TestRouterVPNHostFailureIsRetried(t *testing.T) {
	b := &fakeBuilder{built: map[uint64]bool{}, errs: map[string]error{}}
	c := &fakeController{states: map[uint64]int{}}
	v := &fakeVPN{failFor: map[uint64]bool{}, err: errors.New("vici: dial unix charon.vici: connection refused")}
	h := newRouterHandler("", b, v, c, NewMetrics(), hclog.NewNullLogger())
	ctx := context.Background()
	spec := api.RouterSpec{ID: 4, ProjectID: 40, State: api.StateRequested, PublicIP: "198.51.100.10/24", VPNs: []api.VPNSpec{{ID: 1}}}
	c.states[4] = api.StateRequested
	v.failFor[4] = true
	for i := 1; i < maxVPNFailures; i++ {
		if err := h.Apply(ctx, spec); err == nil {
			t.Fatalf("attempt %d: a charon failure did not ask for a retry", i)
		}
		spec.State = api.StateBuilding
	}
	v.failFor[4] = false
	if err := h.Apply(ctx, spec); err != nil || c.state(4) != api.StateRunning {
		t.Fatalf("after charon came back: err %v, state %d", err, c.state(4))
	}
	// a later update gets the whole budget again
	c.states[4], spec.State, spec.Generation = api.StateRunningUpdate, api.StateRunningUpdate, 2
	v.failFor[4] = true
	for i := 1; i < maxVPNFailures; i++ {
		if err := h.Apply(ctx, spec); err == nil || c.state(4) == api.StateUnresourced {
			t.Fatalf("update attempt %d: err %v, state %d: the budget was not cleared by the success", i, err, c.state(4))
		}
		spec.State = api.StateRunningUpdating
	}
}

// TestRouterQuiescedUpdateStaysDown: an update of a QUIESCED router
// (QUIESCED_UPDATE → QUIESCED_UPDATING → QUIESCED) stops its VPNs and
// reconciles it quiesced: it is never ensured running and charon is never
// started for it, also when the update fails (UNRESOURCED from
// QUIESCED_UPDATING, or a retry).
func TestRouterQuiescedUpdateStaysDown(t *testing.T) {
	b := &fakeBuilder{built: map[uint64]bool{}, errs: map[string]error{}}
	c := &fakeController{states: map[uint64]int{}}
	v := &fakeVPN{failFor: map[uint64]bool{}}
	h := newRouterHandler("", b, v, c, NewMetrics(), hclog.NewNullLogger())
	ctx := context.Background()
	spec := api.RouterSpec{ID: 7, ProjectID: 70, State: api.StateQuiescedUpdate, Generation: 2,
		PublicIP: "198.51.100.10/24", VPNs: []api.VPNSpec{{ID: 99}}}

	c.states[7] = api.StateQuiescedUpdate
	if err := h.Apply(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if c.state(7) != api.StateQuiesced {
		t.Errorf("state %d, want QUIESCED", c.state(7))
	}
	if got := b.log(); !slices.Equal(got, []string{"ensure-quiesced 7"}) {
		t.Errorf("builder calls %q, want only a quiesced ensure", got)
	}
	if got := v.log(); !slices.Equal(got, []string{"vpn-remove 7"}) {
		t.Errorf("vpn calls %q, want the VPNs stopped and never started", got)
	}
	var states []int
	for _, r := range c.reports {
		states = append(states, r.State)
	}
	if !slices.Equal(states, []int{api.StateQuiescedUpdating, api.StateQuiesced}) {
		t.Errorf("reports %v, want QUIESCED_UPDATING then QUIESCED", states)
	}

	// A host failure is retried in QUIESCED_UPDATING, an invalid spec goes
	// UNRESOURCED; neither ever ensures the router running.
	b.calls, v.calls, c.reports = nil, nil, nil
	b.errs["ensure-quiesced"] = errors.New("nft: busy")
	spec.Generation = 3
	c.states[7] = api.StateQuiescedUpdate
	if err := h.Apply(ctx, spec); err == nil || c.state(7) != api.StateQuiescedUpdating {
		t.Fatalf("host failure: err %v, state %d; want a retry in QUIESCED_UPDATING", err, c.state(7))
	}
	b.errs["ensure-quiesced"] = &netrouter.SpecError{Err: errors.New("bad subnet")}
	spec.State = api.StateQuiescedUpdating
	if err := h.Apply(ctx, spec); err != nil || c.state(7) != api.StateUnresourced {
		t.Fatalf("invalid spec: err %v, state %d; want UNRESOURCED", err, c.state(7))
	}
	for _, call := range append(b.log(), v.log()...) {
		if call == "ensure 7" || strings.HasPrefix(call, "vpn 7") {
			t.Errorf("a failed quiesced update brought the router up: %q", call)
		}
	}
}
