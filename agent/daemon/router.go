package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
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

// newRouterHandler returns the handler of the network role.
func newRouterHandler(vtep string, b routerBuilder, report stateReporter, metrics *Metrics, log hclog.Logger) *routerHandler {
	return &routerHandler{m: &machine{kind: "virtual router", set: report.SetRouterState},
		vtep: vtep, b: b, report: report, metrics: metrics, log: log}
}

// Error codes the agent stores on an UNRESOURCED router.
const (
	codeInvalidSpec = "agent_router_invalid_spec"
)

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
	report  stateReporter
	metrics *Metrics
	log     hclog.Logger
}

func routerKey(s api.RouterSpec) string { return strconv.FormatUint(s.ID, 10) }

// routerVersion is a digest of the whole spec, so any change (DHCP, NAT,
// firewall, metadata) reaches a RUNNING router.
func routerVersion(s api.RouterSpec) string {
	b, _ := json.Marshal(s)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
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
	return h.m.run(ctx, object{id: spec.ID, generation: spec.Generation, state: spec.State}, steps{
		do: func(ctx context.Context, act action) error {
			switch act {
			case actEnsure:
				return h.ensure(ctx, spec, log)
			case actQuiesce:
				return h.quiesce(ctx, spec)
			case actQuiescedUpdate:
				// Apply the update, then take the router down again.
				if err := h.ensure(ctx, spec, log); err != nil {
					return err
				}
				return h.quiesce(ctx, spec)
			case actScrub:
				start := time.Now()
				err := h.b.Scrub(ctx, spec.ID)
				h.metrics.built(api.KindVirtualRouter, "scrub", time.Since(start))
				return err
			}
			return nil
		},
		failed: func(err error) string {
			var se *netrouter.SpecError
			if errors.As(err, &se) {
				return codeInvalidSpec
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
		h.m.forget(id)
		h.metrics.reconciled(api.KindVirtualRouter, resultRemoved)
	}
	return err
}
