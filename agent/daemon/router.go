package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/agent/vpn"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// routerBuilder is what the router handler needs of agent/netrouter.
type routerBuilder interface {
	Ensure(ctx context.Context, spec *api.RouterSpec) (netrouter.Result, error)
	EnsureQuiesced(ctx context.Context, spec *api.RouterSpec) (netrouter.Result, error)
	Quiesce(ctx context.Context, spec *api.RouterSpec) error
	Scrub(ctx context.Context, id uint64) error
	List(ctx context.Context) ([]netrouter.Router, error)
	EnsureVPNRoutes(ctx context.Context, spec *api.RouterSpec) (netrouter.Result, error)
	Namespace(projectID uint64) string
}

// vpnRunner is what the router handler needs of agent/vpn.
type vpnRunner interface {
	Ensure(ctx context.Context, r vpn.Router, vpns []api.VPNSpec, rejected ...error) (vpn.Result, error)
	Remove(ctx context.Context, routerID uint64) error
}

// stateReporter makes the compare-and-swap state reports.
type stateReporter interface {
	SetRouterState(ctx context.Context, id uint64, r client.StateReport) error
}

// newRouterHandler returns the handler of the network role.
// vpns may be nil (no VPN support: a router with VPNs fails).
func newRouterHandler(vtep string, b routerBuilder, vpns vpnRunner, report stateReporter, metrics *Metrics, log hclog.Logger) *routerHandler {
	return &routerHandler{m: &machine{kind: "virtual router", set: report.SetRouterState},
		vtep: vtep, b: b, vpns: vpns, report: report, metrics: metrics, log: log,
		vpnFailures: &retryBudget{max: maxVPNFailures}, failedVPNs: map[uint64]map[uint64]string{}}
}

// Error codes the agent stores on an UNRESOURCED router.
const (
	codeInvalidSpec = "agent_router_invalid_spec"
	// The router's VPNs: its VPN list is malformed (a VPN listed twice),
	// or its charon could not be run. A single VPN that cannot be mapped
	// to strongSwan or that strongSwan refuses fails on its own: the
	// router stays RUNNING with its other VPNs, and that VPN's vpn_status
	// carries the error.
	codeVPNInvalidSpec = "agent_vpn_invalid_spec"
	codeVPNFailed      = "agent_vpn_failed"
)

// vpnError is a failure of the router's VPNs (not of the router itself).
type vpnError struct{ err error }

func (e *vpnError) Error() string { return "vpn: " + e.err.Error() }
func (e *vpnError) Unwrap() error { return e.err }

// errNotYet is a SCRUB_QUEUE router the controller does not let go yet
// (the project's grace period, or VMs of the project not CLOSED).
var errNotYet = errors.New("SCRUB_QUEUE: the controller does not allow scrubbing yet (grace period, or VMs not CLOSED); retrying")

// routerHandler drives virtual routers through the ROBOT state machine
// (machine, shared with VMs) with agent/netrouter; an invalid spec
// (netrouter.SpecError) goes UNRESOURCED.
type routerHandler struct {
	m *machine
	// vtep is this host's VTEP address: a segment's FDB never points at
	// it (a hypervisor on the same host shares the segment bridge).
	vtep    string
	b       routerBuilder
	vpns    vpnRunner
	report  stateReporter
	metrics *Metrics
	log     hclog.Logger
	// vpnChanged, when set, is called after VPNs were loaded, changed or
	// removed (the daemon sends their status early).
	vpnChanged func()
	// vpnFailures counts consecutive host failures of a router's VPNs
	// (charon would not start or answer, a route would not go in).
	vpnFailures *retryBudget

	// failedVPNs is, per router, the error last logged for each of its
	// VPNs that does not run: a failure is logged at error level when it
	// appears or changes, at debug level on the resyncs in between.
	failedMu   sync.Mutex
	failedVPNs map[uint64]map[uint64]string
}

// maxVPNFailures is how many consecutive host failures of a router's VPNs
// are retried (with backoff) before the router goes UNRESOURCED: a charon
// that crashed is restarted by its supervisor meanwhile.
const maxVPNFailures = 5

func routerKey(s api.RouterSpec) string { return strconv.FormatUint(s.ID, 10) }

// Apply implements reconcile.Handler.
func (h *routerHandler) Apply(ctx context.Context, spec api.RouterSpec) error {
	spec = h.localize(spec)
	res, err := h.apply(ctx, &spec)
	if err == nil {
		h.vpnFailures.clear(routerKey(spec))
	}
	h.metrics.reconciled(api.KindVirtualRouter, res)
	return err
}

func (h *routerHandler) apply(ctx context.Context, spec *api.RouterSpec) (string, error) {
	log := h.log.With("router", spec.ID, "project", spec.ProjectID, "state", spec.State, "generation", spec.Generation)
	return h.m.run(ctx, object{id: spec.ID, generation: spec.Generation, state: spec.State}, steps{
		do: func(ctx context.Context, act action) error {
			switch act {
			case actEnsure:
				return h.ensure(ctx, spec, log)
			case actQuiesce:
				return h.quiesce(ctx, spec)
			case actQuiescedUpdate:
				// Apply the update with the router kept down throughout
				// (QUIESCED_UPDATE → QUIESCED): VPNs stopped, public side
				// and services never up, also when a step fails.
				return h.quiescedUpdate(ctx, spec, log)
			case actScrub:
				start := time.Now()
				if err := h.removeVPNs(ctx, spec.ID); err != nil {
					return err
				}
				err := h.b.Scrub(ctx, spec.ID)
				h.metrics.built(api.KindVirtualRouter, "scrub", time.Since(start))
				return err
			}
			return nil
		},
		failed: func(err error) string {
			var se *netrouter.SpecError
			var vse *vpn.SpecError
			var ve *vpnError
			switch {
			case errors.As(err, &se):
				return codeInvalidSpec
			case errors.As(err, &vse):
				return codeVPNInvalidSpec
			case errors.As(err, &ve):
				// charon would not start or answer: the router is built but
				// its VPNs are not. Retried first (a crashed charon comes
				// back); the detail of the last failure says why.
				if !h.vpnFailures.spent(routerKey(*spec)) {
					return ""
				}
				return codeVPNFailed
			}
			return ""
		},
	}, log)
}

// localize drops this host's own VTEP from the segments' remote VTEPs
// (a copy: the spec the loop keeps is not changed).
func (h *routerHandler) localize(spec api.RouterSpec) api.RouterSpec {
	if h.vtep == "" {
		return spec
	}
	subs := make([]api.RouterSubnetSpec, len(spec.Subnets))
	for i, s := range spec.Subnets {
		s.VTEPs = slices.DeleteFunc(slices.Clone(s.VTEPs), func(v string) bool { return v == h.vtep })
		subs[i] = s
	}
	spec.Subnets = subs
	return spec
}

func (h *routerHandler) ensure(ctx context.Context, spec *api.RouterSpec, log hclog.Logger) error {
	res, err := h.b.Ensure(ctx, spec)
	if err != nil {
		return err
	}
	if len(res.Changes) > 0 {
		h.metrics.built(api.KindVirtualRouter, "ensure", res.Duration)
		// netrouter logs the changes ("router reconciled") at info.
		log.Debug("router ensured", "took", res.Duration, "changes", len(res.Changes))
	}
	// A VPN whose routes do not fit the router fails alone (res.VPNFailed):
	// the router is built without it and the VPN manager reports it.
	return h.ensureVPNs(ctx, spec, res.VPNFailed, log)
}

// ensureVPNs runs the router's VPNs after the router itself: charon with
// exactly the spec's VPNs (none: stopped), then the routes into the
// tunnel device charon made.
func (h *routerHandler) ensureVPNs(ctx context.Context, spec *api.RouterSpec, rejected []error, log hclog.Logger) error {
	if h.vpns == nil {
		if len(spec.VPNs) > 0 {
			return &vpnError{err: errors.New("this agent runs no VPNs (no network role VPN manager)")}
		}
		return nil
	}
	pub, err := netip.ParsePrefix(spec.PublicIP) // Ensure validated it
	if err != nil {
		return &vpnError{err: err}
	}
	start := time.Now()
	r := vpn.Router{ID: spec.ID, Namespace: h.b.Namespace(spec.ProjectID), PublicAddr: pub.Addr()}
	res, err := h.vpns.Ensure(ctx, r, spec.VPNs, rejected...)
	failedChanged := h.vpnsFailed(spec.ID, res.Failed, log)
	if err != nil {
		return &vpnError{err: err}
	}
	if len(spec.VPNs) > 0 {
		rr, err := h.b.EnsureVPNRoutes(ctx, spec)
		if err != nil {
			return &vpnError{err: fmt.Errorf("routes: %w", err)}
		}
		res.Changes = append(res.Changes, rr.Changes...)
	}
	if len(res.Changes) > 0 || failedChanged {
		h.metrics.built(api.KindVirtualRouter, "vpn", time.Since(start))
		log.Info("vpns ensured", "vpns", len(spec.VPNs), "took", time.Since(start), "changes", strings.Join(res.Changes, "; "))
		if h.vpnChanged != nil {
			h.vpnChanged() // report the new VPNs' state soon, not at the next heartbeat
		}
	}
	return nil
}

// vpnsFailed logs the router's VPNs that do not run (their spec cannot
// be mapped, or strongSwan refused it) and counts them in
// regent_agent_vpns_failed. Each fails on its own: the router and its
// other VPNs run, and the failed VPN's status (vpn_status) says why. A
// failure is logged at error level once, and again when its error changes
// (or it ran in between); every resync in between at debug level. It
// reports whether the set of failures changed.
func (h *routerHandler) vpnsFailed(router uint64, failed []error, log hclog.Logger) bool {
	now := map[uint64]string{}
	for _, err := range failed {
		now[failedVPNID(err)] = err.Error()
	}
	h.failedMu.Lock()
	before := h.failedVPNs[router]
	if len(now) > 0 {
		h.failedVPNs[router] = now
	} else {
		delete(h.failedVPNs, router)
	}
	h.failedMu.Unlock()
	for _, err := range failed {
		id := failedVPNID(err)
		if prev, ok := before[id]; ok && prev == err.Error() {
			log.Debug("vpn does not run (unchanged)", "vpn", id, "error", err)
			continue
		}
		log.Error("vpn does not run", "vpn", id, "error", err)
	}
	h.metrics.setVPNsFailed(router, len(failed))
	return !maps.Equal(before, now)
}

// failedVPNID is the id of the VPN a Result.Failed error is about.
func failedVPNID(err error) uint64 {
	var se *vpn.SpecError
	var le *vpn.LoadError
	if errors.As(err, &se) {
		return se.VPNID
	} else if errors.As(err, &le) {
		return le.VPNID
	}
	return 0
}

// forgetFailedVPNs drops what was logged about a router's VPNs (its
// VPNs were removed: quiesce, scrub, removal).
func (h *routerHandler) forgetFailedVPNs(router uint64) {
	h.failedMu.Lock()
	delete(h.failedVPNs, router)
	h.failedMu.Unlock()
}

// removeVPNs stops the router's charon (quiesce, scrub, removal).
func (h *routerHandler) removeVPNs(ctx context.Context, id uint64) error {
	if h.vpns == nil {
		return nil
	}
	h.metrics.setVPNsFailed(id, 0)
	h.forgetFailedVPNs(id)
	if err := h.vpns.Remove(ctx, id); err != nil {
		return &vpnError{err: err}
	}
	return nil
}

func (h *routerHandler) quiesce(ctx context.Context, spec *api.RouterSpec) error {
	start := time.Now()
	// A quiesced router keeps no tunnels up.
	if err := h.removeVPNs(ctx, spec.ID); err != nil {
		return err
	}
	err := h.b.Quiesce(ctx, spec)
	var se *netrouter.SpecError
	if err != nil && !errors.As(err, &se) {
		// Quiesce could not take it down as it is: reconcile the router
		// as a quiesced one (never brought up on the way). A spec that
		// cannot be built (the router went UNRESOURCED with it) does not
		// make the host failure an invalid spec: Quiesce reads only the
		// id and project, and its own failure is retried, so the router
		// can still be quiesced and scrubbed.
		if _, err2 := h.b.EnsureQuiesced(ctx, spec); err2 == nil || !errors.As(err2, &se) {
			err = err2
		}
	}
	h.metrics.built(api.KindVirtualRouter, "quiesce", time.Since(start))
	return err
}

// quiescedUpdate applies a QUIESCED router's new spec without starting
// it: its VPNs are stopped first, then the builder reconciles it quiesced.
func (h *routerHandler) quiescedUpdate(ctx context.Context, spec *api.RouterSpec, log hclog.Logger) error {
	start := time.Now()
	if err := h.removeVPNs(ctx, spec.ID); err != nil {
		return err
	}
	res, err := h.b.EnsureQuiesced(ctx, spec)
	if err != nil {
		return err
	}
	h.metrics.built(api.KindVirtualRouter, "update", time.Since(start))
	log.Debug("router updated quiesced", "took", res.Duration, "changes", len(res.Changes))
	return nil
}

// gracePeriod reports whether err is the controller refusing SCRUBBING
// for now: the project's grace period has not passed
// (iaas_virtual_router_update_114) or a VM of the project is not CLOSED
// yet (_003).
func gracePeriod(err error) bool {
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
		return false
	}
	codes := []string{e.ErrorCode}
	for _, fe := range e.Errors {
		codes = append(codes, fe.ErrorCode)
	}
	for _, c := range codes {
		if strings.HasSuffix(c, "_114") || strings.HasSuffix(c, "_003") {
			return true
		}
	}
	return false
}

// Owned implements reconcile.Handler: the routers the builder finds on
// the host by their ownership tags.
func (h *routerHandler) Owned(ctx context.Context) ([]string, error) {
	rs, err := h.b.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, strconv.FormatUint(r.ID, 10))
	}
	return out, nil
}

// Remove implements reconcile.Handler: a router nobody wants is scrubbed.
func (h *routerHandler) Remove(ctx context.Context, key string) error {
	id, err := strconv.ParseUint(key, 10, 64)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := h.removeVPNs(ctx, id); err != nil {
		return err
	}
	err = h.b.Scrub(ctx, id)
	h.metrics.built(api.KindVirtualRouter, "scrub", time.Since(start))
	if err == nil {
		h.m.forget(id)
		h.metrics.reconciled(api.KindVirtualRouter, resultRemoved)
	}
	return err
}
