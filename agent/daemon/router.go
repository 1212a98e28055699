package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// routerBuilder is what the router handler needs of agent/netrouter.
type routerBuilder interface {
	Ensure(ctx context.Context, spec *api.RouterSpec) (netrouter.Result, error)
	Quiesce(ctx context.Context, spec *api.RouterSpec) error
	Scrub(ctx context.Context, id uint64) error
	List(ctx context.Context) ([]netrouter.Router, error)
}

// stateReporter makes the compare-and-swap state reports.
type stateReporter interface {
	SetRouterState(ctx context.Context, id uint64, r client.StateReport) error
}

// Error codes the agent stores on an UNRESOURCED router.
const (
	codeInvalidSpec = "agent_router_invalid_spec"
)

// errNotYet is a SCRUB_QUEUE router the controller does not let go yet
// (the project's grace period, or VMs of the project not CLOSED).
var errNotYet = errors.New("SCRUB_QUEUE: the controller does not allow scrubbing yet (grace period, or VMs not CLOSED); retrying")

// routerHandler drives virtual routers through the ROBOT state machine,
// level-triggered: whatever the state in the spec, it does what that state
// asks and reports the next stable state by compare-and-swap. A request
// state is claimed first (1→2, 10→11, 5→12, 7→13, 15→16, 8→14, 9→17); an
// in-progress state (after a restart, or a claim whose report was lost) is
// acted on and reported. A lost CAS (409) drops the object: the next work
// fetch carries the truth.
type routerHandler struct {
	// vtep is this host's VTEP address: a segment's FDB never points at
	// it (a hypervisor on the same host shares the segment bridge).
	vtep    string
	b       routerBuilder
	report  stateReporter
	metrics *Metrics
	log     hclog.Logger

	// reported is the generation last reported per router in a stable
	// state, so a drift-repair pass does not report it again.
	mu       sync.Mutex
	reported map[uint64]uint64
}

func routerKey(s api.RouterSpec) string { return strconv.FormatUint(s.ID, 10) }

// routerVersion is a digest of the whole spec, so any change (DHCP, NAT,
// firewall, metadata) reaches a RUNNING router.
func routerVersion(s api.RouterSpec) string {
	b, _ := json.Marshal(s)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

// action is what a state asks of the host.
type action int

const (
	actNone    action = iota
	actEnsure         // build, update, restart
	actQuiesce        // quiesce; also the first step of a scrub
	actQuiescedUpdate
	actScrub
)

// plan is one state's work: the claim (in-progress state, 0 for none), the
// action and the stable state to report (0 for no report).
type statePlan struct {
	claim  int
	act    action
	stable int
}

var routerPlans = map[int]statePlan{
	api.StateRequested:        {api.StateBuilding, actEnsure, api.StateRunning},
	api.StateBuilding:         {0, actEnsure, api.StateRunning},
	api.StateRunningUpdate:    {api.StateRunningUpdating, actEnsure, api.StateRunning},
	api.StateRunningUpdating:  {0, actEnsure, api.StateRunning},
	api.StateQuiesce:          {api.StateQuiescing, actQuiesce, api.StateQuiesced},
	api.StateQuiescing:        {0, actQuiesce, api.StateQuiesced},
	api.StateRestart:          {api.StateRestarting, actEnsure, api.StateRunning},
	api.StateRestarting:       {0, actEnsure, api.StateRunning},
	api.StateQuiescedUpdate:   {api.StateQuiescedUpdating, actQuiescedUpdate, api.StateQuiesced},
	api.StateQuiescedUpdating: {0, actQuiescedUpdate, api.StateQuiesced},
	api.StateScrub:            {api.StateScrubPrep, actQuiesce, api.StateScrubQueue},
	api.StateScrubPrep:        {0, actQuiesce, api.StateScrubQueue},
	api.StateScrubQueue:       {api.StateScrubbing, actScrub, api.StateClosed},
	api.StateScrubbing:        {0, actScrub, api.StateClosed},
	// Stable states: keep the host as the state says (drift repair), no report.
	api.StateRunning:  {0, actEnsure, 0},
	api.StateQuiesced: {0, actQuiesce, 0},
}

// Apply implements reconcile.Handler.
func (h *routerHandler) Apply(ctx context.Context, spec api.RouterSpec) error {
	spec = h.localize(spec)
	res, err := h.apply(ctx, &spec)
	h.metrics.reconciled(api.KindVirtualRouter, res)
	return err
}

func (h *routerHandler) apply(ctx context.Context, spec *api.RouterSpec) (string, error) {
	log := h.log.With("router", spec.ID, "project", spec.ProjectID, "state", spec.State, "generation", spec.Generation)
	p, ok := routerPlans[spec.State]
	if !ok {
		// IN_API, IGNORE, UNRESOURCED, CLOSED: nothing to do; what is
		// built stays until a state asks otherwise.
		return resultOK, nil
	}
	from := spec.State
	if p.claim != 0 {
		if p.act == actScrub {
			// SCRUB_QUEUE: keep it down while it waits out the grace period.
			if err := h.quiesce(ctx, spec); err != nil {
				return resultError, err
			}
		}
		err := h.report.SetRouterState(ctx, spec.ID, client.StateReport{State: p.claim, Expected: from})
		switch {
		case err == nil:
			log.Info("claimed", "to", api.StateNames[p.claim])
		case client.IsConflict(err):
			log.Debug("claim lost: the state moved on; the next work fetch decides", "error", err)
			return resultConflict, nil
		case p.act == actScrub && gracePeriod(err):
			return resultWaiting, errNotYet
		default:
			return resultError, fmt.Errorf("claim %d→%d: %w", from, p.claim, err)
		}
		from = p.claim
	}
	var err error
	switch p.act {
	case actEnsure:
		err = h.ensure(ctx, spec, log)
	case actQuiesce:
		err = h.quiesce(ctx, spec)
	case actQuiescedUpdate:
		// Apply the update, then take the router down again.
		if err = h.ensure(ctx, spec, log); err == nil {
			err = h.quiesce(ctx, spec)
		}
	case actScrub:
		start := time.Now()
		err = h.b.Scrub(ctx, spec.ID)
		h.metrics.built(api.KindVirtualRouter, "scrub", time.Since(start))
	}
	var se *netrouter.SpecError
	if errors.As(err, &se) {
		return h.unresourced(ctx, spec, from, p, se, log)
	}
	if err != nil {
		return resultError, err
	}
	to := p.stable
	gen := spec.Generation
	if to == 0 {
		// A stable state: report the generation now on the host, once.
		to = from
		if h.lastReported(spec.ID) == gen {
			return resultOK, nil
		}
	}
	err = h.report.SetRouterState(ctx, spec.ID, client.StateReport{State: to, Expected: from, ObservedGeneration: &gen})
	switch {
	case err == nil:
		if to != from {
			log.Info("reported", "to", api.StateNames[to])
		}
		h.setReported(spec.ID, gen)
		return resultOK, nil
	case client.IsConflict(err):
		log.Debug("report lost: the state moved on; the next work fetch decides", "error", err)
		return resultConflict, nil
	default:
		return resultError, fmt.Errorf("report %d→%d: %w", from, to, err)
	}
}

func (h *routerHandler) lastReported(id uint64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reported[id]
}

func (h *routerHandler) setReported(id, gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reported == nil {
		h.reported = map[uint64]uint64{}
	}
	h.reported[id] = gen
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
		log.Info("router ensured", "took", res.Duration, "changes", len(res.Changes))
		log.Debug("router changes", "changes", strings.Join(res.Changes, "; "))
	}
	return nil
}

func (h *routerHandler) quiesce(ctx context.Context, spec *api.RouterSpec) error {
	start := time.Now()
	err := h.b.Quiesce(ctx, spec)
	var se *netrouter.SpecError
	if err != nil && !errors.As(err, &se) {
		// Quiesce needs the router's links; build it first (a restarted
		// host, or a router that never got built), then take it down.
		if _, e := h.b.Ensure(ctx, spec); e == nil {
			err = h.b.Quiesce(ctx, spec)
		}
	}
	h.metrics.built(api.KindVirtualRouter, "quiesce", time.Since(start))
	return err
}

// unresourced reports an invalid spec: from an in-progress state the
// router goes UNRESOURCED with the detail; from a stable state (which the
// ROBOT map cannot leave) it is logged and left alone until the spec
// changes.
func (h *routerHandler) unresourced(ctx context.Context, spec *api.RouterSpec, from int, p statePlan, se *netrouter.SpecError, log hclog.Logger) (string, error) {
	if p.stable == 0 {
		log.Error("invalid router spec; left as it is until the spec changes", "error", se)
		return resultInvalid, nil
	}
	detail := se.Error()
	if len(detail) > 1000 {
		detail = detail[:1000]
	}
	err := h.report.SetRouterState(ctx, spec.ID, client.StateReport{State: api.StateUnresourced, Expected: from,
		ErrorCode: codeInvalidSpec, ErrorDetail: detail})
	switch {
	case err == nil:
		log.Error("invalid router spec: UNRESOURCED", "error", se)
		return resultInvalid, nil
	case client.IsConflict(err):
		return resultConflict, nil
	default:
		return resultError, fmt.Errorf("report UNRESOURCED: %w", err)
	}
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
	err = h.b.Scrub(ctx, id)
	h.metrics.built(api.KindVirtualRouter, "scrub", time.Since(start))
	if err == nil {
		h.mu.Lock()
		delete(h.reported, id)
		h.mu.Unlock()
		h.metrics.reconciled(api.KindVirtualRouter, resultRemoved)
	}
	return err
}
