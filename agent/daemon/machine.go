package daemon

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/agent/reconcile"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// machine is the ROBOT state machine that virtual routers and VMs share,
// level-triggered: whatever the state in the spec, it does what that state
// asks (statePlans) and reports the next stable state by compare-and-swap.
// A request state is claimed first (1→2, 10→11, 5→12, 7→13, 15→16, 8→14,
// 9→17); an in-progress state (after a restart, or a claim whose report
// was lost) is acted on and reported. A lost CAS (409) drops the object:
// the next work fetch carries the truth. A report refused because another
// agent instance holds the server (409 agent_conflict_001) is an error,
// retried with backoff, and tells refused (every worker is held from then
// on); so is every step while held says another instance holds it, before
// any host action or report.
type machine struct {
	kind string
	set  func(ctx context.Context, id uint64, r client.StateReport) error
	// plans are the object kind's state plans (nil: statePlans, the VMs'
	// and virtual routers').
	plans map[int]statePlan
	// held, when set, is why this agent must not act on its objects now:
	// another agent instance holds the server or router, or did since
	// the objects were fetched (Daemon.acting), "" when it may. A
	// worker retrying an object it fetched before (a build that failed
	// locally) would otherwise act on the host first, and only its state
	// report would be refused: a partitioned agent whose server another
	// instance took would start the domain the other built.
	held func() string
	// refused, when set, is told of a state report refused because
	// another agent instance holds the server or router (409
	// agent_conflict_001): Daemon.reportConflict, which holds every
	// worker (held) as a heartbeat's refusal does, at once.
	refused func(error)

	// reported is the generation last reported per object in a stable
	// state, so a drift-repair pass does not report it again.
	mu       sync.Mutex
	reported map[uint64]uint64
	// finished is the in-progress state and generation per object whose
	// step this process finished and reported (to a stable state or
	// UNRESOURCED): a spec fetched before that report (the claim's index)
	// still shows the in-progress state, and acting on it again would
	// repeat the step (a second snapshot revert). A claim clears it.
	finished map[uint64]finishedStep
	// acted is the state and generation per object whose step this
	// process finished but has not reported yet: when the report fails,
	// the retry reports again and does not repeat the step (a revert or
	// restore repeated would throw away what the VM did since). A claim
	// clears it; a successful report moves it to finished.
	acted map[uint64]finishedStep
	// graceWait are the objects in SCRUB_QUEUE whose scrub the controller
	// refused so far (the project's grace period, a week by default):
	// said once at info level, then retried at debug level, not a
	// warning a minute for the whole week.
	graceWait map[uint64]bool
}

type finishedStep struct {
	state      int
	generation uint64
}

// object is what the machine needs of one object's spec.
type object struct {
	id, generation uint64
	state          int
}

// steps are one object's host actions.
type steps struct {
	// do makes the host as act asks.
	do func(ctx context.Context, act action) error
	// failed classifies a failed action: a non-empty code puts the object
	// UNRESOURCED with that error_code and the error as error_detail; ""
	// retries with backoff.
	failed func(err error) (code string)
}

// run drives o one step and returns the reconcile result.
func (m *machine) run(ctx context.Context, o object, s steps, log hclog.Logger) (string, error) {
	plans := m.plans
	if plans == nil {
		plans = statePlans
	}
	p, ok := plans[o.state]
	if !ok {
		// IN_API, IGNORE, UNRESOURCED, CLOSED: nothing to do; what is
		// built stays until a state asks otherwise.
		return resultOK, nil
	}
	if why := m.heldElsewhere(); why != "" {
		// Nothing on the host, no report: the work loop registers
		// again, and the loops retry once this agent holds the server.
		return resultWaiting, reconcile.Waiting(&heldError{kind: m.kind, id: o.id, why: why})
	}
	from := o.state
	if p.claim == 0 && p.stable != 0 && m.wasFinished(o.id, finishedStep{o.state, o.generation}) {
		log.Debug("stale spec: this step is done and reported; the next work fetch carries the new state")
		return resultOK, nil
	}
	if p.claim != 0 {
		m.setFinished(o.id, nil)
		m.setActed(o.id, nil)
		if p.act == actScrub {
			// SCRUB_QUEUE: keep it down while it waits out the grace period.
			if err := s.do(ctx, actQuiesce); err != nil {
				return resultError, err
			}
		}
		err := m.set(ctx, o.id, client.StateReport{State: p.claim, Expected: from})
		switch {
		case err == nil:
			m.waitingForGrace(o.id, false)
			log.Info("claimed", "to", api.StateNames[p.claim])
		case isAgentConflict(err):
			return resultError, m.agentConflict(o.id, fmt.Sprintf("claim %d→%d", from, p.claim), err, log)
		case client.IsConflict(err):
			log.Debug("claim lost: the state moved on; the next work fetch decides", "error", err)
			return resultConflict, nil
		case p.act == actScrub && gracePeriod(err):
			if m.waitingForGrace(o.id, true) {
				log.Info("scrub waits until the controller allows it (the project's grace_period, or VMs not CLOSED); kept quiesced, asked again with backoff")
			}
			return resultWaiting, reconcile.Waiting(errNotYet)
		default:
			return resultError, fmt.Errorf("claim %d→%d: %w", from, p.claim, err)
		}
		from = p.claim
	}
	if p.claim == 0 && p.stable != 0 && m.hasActed(o.id, finishedStep{from, o.generation}) {
		log.Debug("step done already, its report failed: reporting again")
	} else {
		if err := s.do(ctx, p.act); err != nil {
			return m.failure(ctx, o, from, p, s, err, log)
		}
		if p.stable != 0 {
			m.setActed(o.id, &finishedStep{from, o.generation})
		}
	}
	to := p.stable
	gen := o.generation
	if to == 0 {
		// A stable state: report the generation now on the host, once.
		to = from
		if m.lastReported(o.id) == gen {
			return resultOK, nil
		}
	}
	err := m.set(ctx, o.id, client.StateReport{State: to, Expected: from, ObservedGeneration: &gen})
	switch {
	case err == nil:
		if to != from {
			log.Info("reported", "to", api.StateNames[to])
		}
		if to == api.StateClosed {
			// CLOSED is final and leaves the work: keep nothing of it (a
			// stale spec repeats the idempotent scrub or delete, and its
			// report is a conflict).
			m.forget(o.id)
			return resultOK, nil
		}
		m.setActed(o.id, nil)
		if to != from {
			m.setFinished(o.id, &finishedStep{from, gen})
		}
		m.setReported(o.id, gen)
		return resultOK, nil
	case isAgentConflict(err):
		return resultError, m.agentConflict(o.id, fmt.Sprintf("report %d→%d", from, to), err, log)
	case client.IsConflict(err):
		log.Debug("report lost: the state moved on; the next work fetch decides", "error", err)
		m.setActed(o.id, nil)
		return resultConflict, nil
	default:
		return resultError, fmt.Errorf("report %d→%d: %w", from, to, err)
	}
}

// failure handles a failed action: retried, or UNRESOURCED with the code
// the object's classifier gives. From a stable state (which the ROBOT map
// cannot leave for UNRESOURCED) it is logged and left alone until the
// spec changes.
func (m *machine) failure(ctx context.Context, o object, from int, p statePlan, s steps, cause error, log hclog.Logger) (string, error) {
	code := ""
	if ctx.Err() == nil {
		code = s.failed(cause)
	}
	if code == "" {
		return resultError, cause
	}
	if p.stable == 0 {
		log.Error(fmt.Sprintf("%s cannot be made as its spec says; left as it is until the spec changes", m.kind),
			"error_code", code, "error", cause)
		return resultInvalid, nil
	}
	detail := cause.Error()
	if len(detail) > 1000 {
		detail = detail[:1000]
	}
	err := m.set(ctx, o.id, client.StateReport{State: api.StateUnresourced, Expected: from, ErrorCode: code, ErrorDetail: detail})
	switch {
	case err == nil:
		log.Error("UNRESOURCED", "error_code", code, "error", cause)
		m.setFinished(o.id, &finishedStep{from, o.generation})
		return resultInvalid, nil
	case isAgentConflict(err):
		return resultError, m.agentConflict(o.id, "report UNRESOURCED", err, log)
	case client.IsConflict(err):
		return resultConflict, nil
	default:
		return resultError, fmt.Errorf("report UNRESOURCED: %w", err)
	}
}

// heldElsewhere is why the machine must not act now ("" when it may).
func (m *machine) heldElsewhere() string {
	if m.held == nil {
		return ""
	}
	return m.held()
}

// heldError is a step not taken because another agent instance holds the
// server or router, or may (Daemon.acting).
type heldError struct {
	kind string
	id   uint64
	why  string
}

func (e *heldError) Error() string {
	return fmt.Sprintf("%s %d not acted on (no host action, no state report) while another agent instance holds, or may hold, this server or router: %s; "+
		"retried once this agent holds it again and has fetched its work", e.kind, e.id, e.why)
}

// agentConflict is a state report refused because another agent instance
// holds the server or router (409 agent_conflict_001): no lost CAS (the
// state did not move on), but an error retried with backoff until this
// agent holds it again. The other workers stop at once (refused), not at
// the next heartbeat: this agent's host must not build what the other
// host builds.
func (m *machine) agentConflict(id uint64, what string, err error, log hclog.Logger) error {
	log.Warn(what+" refused: another agent acts for this server or router; retrying", "error", err)
	if m.refused != nil {
		m.refused(fmt.Errorf("%s %d %s: %w", m.kind, id, what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (m *machine) lastReported(id uint64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reported[id]
}

func (m *machine) setReported(id, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reported == nil {
		m.reported = map[uint64]uint64{}
	}
	m.reported[id] = gen
}

func (m *machine) wasFinished(id uint64, f finishedStep) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	got, ok := m.finished[id]
	return ok && got == f
}

// setFinished records (f) or clears (nil) the finished step of id.
func (m *machine) setFinished(id uint64, f *finishedStep) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f == nil {
		delete(m.finished, id)
		return
	}
	if m.finished == nil {
		m.finished = map[uint64]finishedStep{}
	}
	m.finished[id] = *f
}

func (m *machine) hasActed(id uint64, f finishedStep) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	got, ok := m.acted[id]
	return ok && got == f
}

// setActed records (f) or clears (nil) the step of id done but not
// reported.
func (m *machine) setActed(id uint64, f *finishedStep) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f == nil {
		delete(m.acted, id)
		return
	}
	if m.acted == nil {
		m.acted = map[uint64]finishedStep{}
	}
	m.acted[id] = *f
}

// waitingForGrace records whether object id waits for the controller to
// allow its scrub, and reports whether that wait just began.
func (m *machine) waitingForGrace(id uint64, waiting bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !waiting {
		delete(m.graceWait, id)
		return false
	}
	if m.graceWait[id] {
		return false
	}
	if m.graceWait == nil {
		m.graceWait = map[uint64]bool{}
	}
	m.graceWait[id] = true
	return true
}

// forget drops what is known of a removed object.
func (m *machine) forget(id uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.reported, id)
	delete(m.finished, id)
	delete(m.acted, id)
	delete(m.graceWait, id)
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

var statePlans = map[int]statePlan{
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

// retryBudget counts consecutive transient failures per object key: the
// first max-1 are retried (with the loop's backoff), the max-th goes to
// UNRESOURCED. A success clears the count.
type retryBudget struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// spent counts a failure of key and reports whether it was the last one
// allowed (the count starts again after it).
func (b *retryBudget) spent(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == nil {
		b.n = map[string]int{}
	}
	b.n[key]++
	if b.n[key] < b.max {
		return false
	}
	delete(b.n, key)
	return true
}

// clear forgets the failures of key.
func (b *retryBudget) clear(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.n, key)
}
