package robot

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// Heartbeats is the leader's memory of agent heartbeats. Heartbeats are
// not raft writes: only a change of an agent's status (up or down) or a
// material change of a server's capacity is. A new leader starts with an
// empty memory and gives every agent a full deadline before judging it.
//
// What it holds belongs to one raft term: the first call in a later term
// (this node leads again after another node did, and agents reported
// there meanwhile) forgets it all. Keying on the term rather than on the
// moment the leader's loop notices its leadership keeps what agents
// report in a new leader's first seconds.
//
// A snapshot restore (state.Store.Restores) starts a fresh memory too:
// it keeps the term, but replaces the records the memory is about (their
// registrants, their virtual routers and VPNs, whose ids it may reuse).
//
// Only the leader's memory means anything: a follower hears no heartbeats
// (they are forwarded to the leader), and a node that lost leadership
// may still hold its old term's memory. The readers for display
// (ServerHealth, RouterHealth) answer unknown on a node that does not lead.
type Heartbeats struct {
	mu       sync.Mutex
	term     func() uint64 // the current raft term; nil: always 0
	leader   func() bool   // whether this node leads; nil: always
	cur      uint64        // the term the memory belongs to
	restored uint64        // and the count of restores (Restores)
	started  bool
	since    time.Time // when this node started judging (its first call in the term)
	servers  map[uint64]time.Time
	routers  map[uint64]time.Time
	policy   map[uint64]*policyLog    // virtual router → its recent entries
	vpns     map[uint64]api.VPNStatus // VPN → its last reported status
	health   map[[2]uint64]string     // (server, router) of an agent → its last "degraded: why", "" when ok
	byServer map[uint64]healthReport  // server → the health its agent last reported
	byRouter map[uint64]healthReport  // router → the health its agent last reported
	// holders are the agent instances last heard for each server and
	// router (Claim).
	serverHolder map[uint64]holder
	routerHolder map[uint64]holder
	claims       uint64 // numbers the holders recorded (holder.n)
	Deadline     time.Duration
	// Restores counts the snapshot restores of the node's state
	// (state.Store.Restores): memory from before one is forgotten like
	// that of an earlier term. nil: never.
	Restores func() uint64
}

// healthReport is an agent's last word on its health: api.AgentHealthOK
// or api.AgentHealthDegraded with a detail.
type healthReport struct{ health, detail string }

// SetHealth records the health an agent acting for server and router
// reported ("ok", or "degraded" with detail; an agent that does not say
// is ok) and reports whether it changed since its last heartbeat (for
// this a new leader's memory starts ok), so that the change is logged
// once, not at every heartbeat.
func (h *Heartbeats) SetHealth(server, router uint64, health, detail string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enter(now)
	cur, rep := "", healthReport{health: api.AgentHealthOK}
	if health == api.AgentHealthDegraded {
		cur = "degraded: " + detail
		rep = healthReport{health: api.AgentHealthDegraded, detail: detail}
	}
	if server != 0 {
		h.byServer[server] = rep
	}
	if router != 0 {
		h.byRouter[router] = rep
	}
	k := [2]uint64{server, router}
	if h.health[k] == cur {
		return false
	}
	if cur == "" {
		delete(h.health, k)
	} else {
		h.health[k] = cur
	}
	return true
}

// ServerHealth answers the health the agent of a server last reported
// (api.AgentHealthOK, or api.AgentHealthDegraded with its detail), or
// api.AgentHealthUnknown when this node does not lead, has had no health
// report for the server in its term, or the agent's last heartbeat is
// older than the deadline (a silent agent's last word is not its health
// now; its status goes down).
func (h *Heartbeats) ServerHealth(id uint64, now time.Time) (health, detail string) {
	return h.lastHealth(func() (healthReport, time.Time, bool) {
		r, ok := h.byServer[id]
		return r, h.servers[id], ok
	}, now)
}

// RouterHealth is ServerHealth for the agent of a router.
func (h *Heartbeats) RouterHealth(id uint64, now time.Time) (health, detail string) {
	return h.lastHealth(func() (healthReport, time.Time, bool) {
		r, ok := h.byRouter[id]
		return r, h.routers[id], ok
	}, now)
}

// Leading reports whether this node leads, that is whether its memory
// means anything.
func (h *Heartbeats) Leading() bool { return h.leader == nil || h.leader() }

func (h *Heartbeats) lastHealth(get func() (healthReport, time.Time, bool), now time.Time) (string, string) {
	if !h.Leading() {
		return api.AgentHealthUnknown, ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enter(now)
	r, last, ok := get()
	if !ok || now.Sub(last) >= h.Deadline {
		return api.AgentHealthUnknown, ""
	}
	return r.health, r.detail
}

// PolicyLogSize is how many policy log entries the leader keeps per
// virtual router.
const PolicyLogSize = 100

// policyLog is what the leader keeps of a virtual router's policy log:
// its last PolicyLogSize entries, oldest first, the router whose agent
// reported them last, and the agent's numbering of those it kept: per
// epoch, the highest sequence number kept in it, for the last
// policyEpochs epochs.
type policyLog struct {
	entries []api.PolicyLogEntry
	router  uint64
	marks   []policyMark // oldest first
}

// policyMark is the highest sequence number kept of an epoch.
type policyMark struct {
	epoch string
	seq   uint64
}

// policyEpochs is how many epochs' marks a virtual router's log keeps: the
// current one and the one before, so that a late copy of a call made
// before the agent restarted is dropped too.
const policyEpochs = 2

// AddPolicyLog keeps the entries the agent of router reported, the last
// PolicyLogSize per virtual router, and returns how many it dropped as
// already kept. Like heartbeats they live in the leader's memory: a new
// leader starts with an empty log.
//
// An agent sends entries again when it could not tell that the heartbeat
// carrying them was taken (the call failed, or timed out while the
// leader took it), so each entry carries the agent's sequence number
// (Seq, increasing per virtual router) and the heartbeat the epoch those
// numbers belong to (a new one each time the agent's numbering restarts).
// Per virtual router the leader remembers, for each of the last two
// epochs, the highest number kept in it, and drops an entry at or below
// it: a resend keeps only what is new, and so does a late copy of a call
// of the previous epoch arriving after the agent restarted. An entry of a
// new epoch starts its count afresh. An entry without a number (Seq 0: an
// older agent) is kept as before, without this check. Kept entries lose
// their number: it means nothing to tenants.
//
// live are the virtual routers on router that are not closed (router's
// heartbeat carries the state of all of them): the logs router's agent
// reported for any other virtual router (closed, deleted, or no longer
// on router) go, so that the memory holds no log of a router that is
// gone. A router of 0 (no network role) prunes nothing.
func (h *Heartbeats) AddPolicyLog(router uint64, live []uint64, epoch string, entries []api.PolicyLogEntry) (dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enter(time.Now())
	for _, e := range entries {
		l := h.policy[e.VirtualRouterID]
		if l == nil {
			l = &policyLog{}
			h.policy[e.VirtualRouterID] = l
		}
		l.router = router
		if e.Seq != 0 {
			i := slices.IndexFunc(l.marks, func(m policyMark) bool { return m.epoch == epoch })
			if i < 0 {
				l.marks = append(l.marks, policyMark{epoch: epoch})
				if len(l.marks) > policyEpochs {
					l.marks = slices.Delete(l.marks, 0, len(l.marks)-policyEpochs)
				}
				i = len(l.marks) - 1
			}
			if e.Seq <= l.marks[i].seq {
				dropped++
				continue
			}
			l.marks[i].seq = e.Seq
			e.Seq = 0
		}
		l.entries = append(l.entries, e)
		if len(l.entries) > PolicyLogSize {
			l.entries = slices.Delete(l.entries, 0, len(l.entries)-PolicyLogSize)
		}
	}
	if router != 0 {
		for vr, l := range h.policy {
			if l.router == router && !slices.Contains(live, vr) {
				delete(h.policy, vr)
			}
		}
	}
	return dropped
}

// PolicyLog returns the recent entries of a virtual router, newest first;
// none on a node that does not lead (its memory, if any, is old).
func (h *Heartbeats) PolicyLog(vr uint64) []api.PolicyLogEntry {
	if !h.Leading() {
		return []api.PolicyLogEntry{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enter(time.Now())
	var l []api.PolicyLogEntry
	if p := h.policy[vr]; p != nil {
		l = p.entries
	}
	out := make([]api.PolicyLogEntry, len(l))
	for i, e := range l {
		out[len(l)-1-i] = e
	}
	return out
}

// SetVPNStatus replaces what is known about the VPNs of the virtual
// routers vrs with an agent's report: each report carries every VPN of the
// agent's routers, so a VPN of vrs that is not in it has no status any more.
// Like heartbeats, statuses live in the leader's memory.
func (h *Heartbeats) SetVPNStatus(vrs []uint64, statuses []api.VPNStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enter(time.Now())
	for id, st := range h.vpns {
		if slices.Contains(vrs, st.VirtualRouterID) {
			delete(h.vpns, id)
		}
	}
	for _, st := range statuses {
		h.vpns[st.VPNID] = st
	}
}

// VPNStatus returns the last reported status of a VPN; none on a node
// that does not lead.
func (h *Heartbeats) VPNStatus(vpn uint64) (api.VPNStatus, bool) {
	if !h.Leading() {
		return api.VPNStatus{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enter(time.Now())
	st, ok := h.vpns[vpn]
	return st, ok
}

// NewHeartbeats returns a tracker that marks an agent down after deadline
// without a heartbeat. term returns the current raft term (nil for a
// tracker whose memory never expires, as in unit tests); leader reports
// whether this node leads (nil: it always does).
func NewHeartbeats(deadline time.Duration, term func() uint64, leader func() bool) *Heartbeats {
	return &Heartbeats{Deadline: deadline, term: term, leader: leader}
}

// enter starts a fresh memory when the raft term has changed since the
// last call, or the state was restored from a snapshot (or on the first
// call). The caller holds mu.
func (h *Heartbeats) enter(now time.Time) {
	var t, r uint64
	if h.term != nil {
		t = h.term()
	}
	if h.Restores != nil {
		r = h.Restores()
	}
	if h.started && t == h.cur && r == h.restored {
		return
	}
	h.cur, h.restored, h.started, h.since = t, r, true, now
	h.servers, h.routers = map[uint64]time.Time{}, map[uint64]time.Time{}
	h.policy = map[uint64]*policyLog{}
	h.vpns = map[uint64]api.VPNStatus{}
	h.health = map[[2]uint64]string{}
	h.byServer, h.byRouter = map[uint64]healthReport{}, map[uint64]healthReport{}
	h.serverHolder, h.routerHolder = map[uint64]holder{}, map[uint64]holder{}
}

// Beat records a heartbeat of the agent acting for server and router
// (0 for a role it does not have).
func (h *Heartbeats) Beat(server, router uint64, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enter(now)
	if server != 0 {
		h.servers[server] = now
	}
	if router != 0 {
		h.routers[router] = now
	}
}

// holder is the agent instance last heard acting for a server or router,
// and when.
type holder struct {
	agent string
	at    time.Time
	n     uint64 // which recording this is (Heartbeats.claims), for an undo
	// pending: recorded by a registration whose write has not been taken
	// yet (ClaimRegistration); prev is the holder it replaced (nil: none,
	// the record's registrant held). Until the registration's Claim after
	// its write, the registering agent's other calls are judged against
	// prev, as if it had not registered.
	pending bool
	prev    *holder
}

// AgentConflict is a refused Claim: the server (or router) is held by
// another agent instance, heard Since ago (within the deadline).
type AgentConflict struct {
	Router bool   // the router, not the server, is held
	ID     uint64 // the server or router
	Holder string // the holding agent's instance id
	Since  time.Duration
	// Silent: the holder was silent past the deadline, and the call was
	// no registration, the one call that takes over.
	Silent bool
	// Registrant: the holder was not heard by this leader: it is the
	// record's last registrant, held as if heard when this leader's
	// memory began (its term, or a snapshot restore), Since ago.
	Registrant bool
}

// Takeover is a Claim that replaced another agent instance, silent past
// the deadline (for the leader's log).
type Takeover struct {
	Router bool
	ID     uint64
	From   string // the previous instance id
	Since  time.Duration
}

// Claim records that agent instance agent is acting for server and
// router (0 for a role it does not have) at now, unless another instance
// was heard for either within the deadline: then nothing is recorded and
// the conflict is returned. Two agents acting as one server would build
// the same VMs twice; the instance id tells them apart where the hostname
// (cloned hosts) or the server id (two agents on one data_dir) cannot.
// The takeovers are the holders replaced after their silence passed the
// deadline; only a registration (takeover) replaces one: a heartbeat or
// work fetch from another instance is refused even then, so that the
// agent registers, and the record takes its host's VTEP and interfaces,
// before it acts (else the other hosts were given the silent host's VTEP).
//
// An empty agent (an older agent that sends no id) is never refused and
// never recorded, and on a node that does not lead nothing is checked.
// Like heartbeats, holders are leader memory: a new term starts empty.
// Until a record's holder is heard in the term, the agent the record names
// as its last registrant (rec, from the replicated records) holds it as if
// heard when the term began: another instance's heartbeat after a leader
// change (an agent back from a partition, whose server another host took
// meanwhile) is refused, not taken for the holder, and its registration
// takes over only after that silence. rec is called under the memory's
// lock once it belongs to the current term and restore (see
// CurrentRegistrants), so that a fresh memory after a restore is never
// judged by the records from before it; nil: no registrants.
func (h *Heartbeats) Claim(server, router uint64, agent string, rec func() Registrants, now time.Time, takeover bool) (*AgentConflict, []Takeover) {
	c, took, _ := h.claim(server, router, agent, rec, now, true, takeover, false)
	return c, took
}

// ClaimRegistration is Claim for a registration (it takes over from a
// holder silent past the deadline), made before the registration is
// written so that no call of another instance slips in between. When the
// write is refused after all (bad input the state machine finds, such as
// an unknown storage type), the caller calls undo: a refused registration
// must change nothing, and else its agent would hold the server and router
// while their records keep the previous holder's VTEP and interfaces. undo
// puts back each holder this claim replaced (or forgets the entry it made,
// leaving the record's registrant to hold it again), but only where the
// entry is still the one this claim recorded: a fresh memory (a new term,
// a restore) stands.
//
// Until the write is taken (the caller's Claim after it records the agent
// as heard), the claim is pending: it holds against other instances, but
// not for its own agent. A heartbeat, work fetch or state report of the
// registering agent while the write is under way is judged against the
// holder the claim replaced, as if the registration had not been made: a
// silent holder refuses it, and nothing is recorded (before, it was taken
// and recorded anew, the undo left that entry alone, and the refused
// registrant held the server while its record kept the other host's
// VTEP). Where it is taken (no holder but itself, or none at all) it
// records as usual, and that entry stands an undo too: it would have been
// taken without the registration. Once the records name the registering
// agent (rec), the write was taken even if its caller never learnt so (a
// commit timeout: 5xx, no undo and no Claim after it): its calls are its
// own again, and the first that records ends the pending state.
// undo is never nil; it does nothing after a refused claim.
func (h *Heartbeats) ClaimRegistration(server, router uint64, agent string, rec func() Registrants, now time.Time) (c *AgentConflict, took []Takeover, undo func()) {
	return h.claim(server, router, agent, rec, now, true, true, true)
}

// Registrants are the instance ids of the agents that last registered a
// server and a router (their records' AgentID; "" for none or an older
// agent).
type Registrants struct{ Server, Router string }

// CurrentRegistrants reads the registrants of server and router from the
// store's state when called, for Claim, ClaimRegistration and Held.
func CurrentRegistrants(s *state.Store, server, router uint64) func() Registrants {
	return func() Registrants { return RegistrantsOf(s.Read(), server, router) }
}

// RegistrantsOf reads the registrants of server and router from r.
func RegistrantsOf(r *state.ReadTxn, server, router uint64) Registrants {
	var out Registrants
	if s, ok := r.Server(server); ok {
		out.Server = s.AgentID
	}
	if rt, ok := r.Router(router); ok {
		out.Router = rt.AgentID
	}
	return out
}

// Held is Claim without recording and without taking over: whether
// another agent instance holds server or router, live or silent (only a
// registration takes over from a silent one). State reports use it: they
// are acts on work the agent fetched, not signs of life.
func (h *Heartbeats) Held(server, router uint64, agent string, rec func() Registrants, now time.Time) *AgentConflict {
	c, _, _ := h.claim(server, router, agent, rec, now, false, false, false)
	return c
}

func (h *Heartbeats) claim(server, router uint64, agent string, rec func() Registrants, now time.Time, record, takeover, pending bool) (*AgentConflict, []Takeover, func()) {
	nothing := func() {}
	if agent == "" || !h.Leading() {
		return nil, nil, nothing
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enter(now)
	// The registrants are read now, not before the lock: a snapshot
	// restore completed in between would have made enter start a fresh
	// memory, seeded from the records from before the restore.
	var regs Registrants
	if rec != nil {
		regs = rec()
	}
	type claim struct {
		router bool
		id     uint64
		m      map[uint64]holder
		rec    string
	}
	claims := []claim{{false, server, h.serverHolder, regs.Server}, {true, router, h.routerHolder, regs.Router}}
	// prevs are the holders judged against, for a pending claim's prev
	prevs := make([]*holder, len(claims))
	var took []Takeover
	for i, c := range claims {
		cur, ok := c.m[c.id]
		if ok && cur.pending && cur.agent == agent && c.rec != agent {
			// this agent's registration is being written: judged as if
			// it had not been made. Where the records already name it,
			// the write was taken (its commit may have timed out, a
			// 5xx that kept the claim): its calls are its own, and a
			// recording one ends the pending state.
			if ok = cur.prev != nil; ok {
				cur = *cur.prev
			}
		}
		if ok {
			prev := holder{agent: cur.agent, at: cur.at} // who and when is all it is judged by
			prevs[i] = &prev
		}
		seeded := false
		if !ok && c.rec != "" {
			// not heard in this term: its last registrant holds it
			// as if heard when the term began
			cur, ok, seeded = holder{agent: c.rec, at: h.since}, true, true
		}
		if c.id == 0 || !ok || cur.agent == agent {
			continue
		}
		since := now.Sub(cur.at)
		if since < h.Deadline || !takeover {
			return &AgentConflict{Router: c.router, ID: c.id, Holder: cur.agent, Since: since, Silent: since >= h.Deadline, Registrant: seeded}, nil, nothing
		}
		took = append(took, Takeover{Router: c.router, ID: c.id, From: cur.agent, Since: since})
	}
	if !record {
		return nil, took, nothing
	}
	// what the claim replaced, for undo
	type prior struct {
		m        map[uint64]holder
		id       uint64
		old, set holder
		had      bool
	}
	var priors []prior
	for i, c := range claims {
		if c.id == 0 {
			continue
		}
		h.claims++
		p := prior{m: c.m, id: c.id, set: holder{agent: agent, at: now, n: h.claims}}
		if pending {
			p.set.pending, p.set.prev = true, prevs[i]
		}
		p.old, p.had = c.m[c.id]
		c.m[c.id] = p.set
		priors = append(priors, p)
	}
	// A fresh memory (enter) makes new maps: an undo after it changes
	// only the old ones, which nothing reads.
	undo := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, p := range priors {
			if cur, ok := p.m[p.id]; !ok || cur.n != p.set.n {
				continue // heard since: that stands
			}
			if p.had {
				p.m[p.id] = p.old
			} else {
				delete(p.m, p.id)
			}
		}
	}
	return nil, took, undo
}

// DownAfter is the deadline: how long a silent agent holds its records
// (and is up).
func (h *Heartbeats) DownAfter() time.Duration { return h.Deadline }

// Err is the 409 api.ErrAgentConflict of c for the caller: the record
// (host its hostname), the holder's id prefix and when it was last heard
// (or, for a registrant this leader has not heard, since when it has not),
// and what to do.
func (c *AgentConflict) Err(host string, deadline time.Duration) *api.Error {
	what := "Server"
	if c.Router {
		what = "Router"
	}
	prefix := c.Holder
	if len(prefix) > 8 {
		prefix = prefix[:8] + "…"
	}
	secs := int(c.Since / time.Second)
	if c.Silent {
		heard := fmt.Sprintf("), silent for %ds", secs)
		if c.Registrant {
			heard = fmt.Sprintf(", which registered it last; not heard since this controller took the lead or restored a snapshot %ds ago)", secs)
		}
		return api.Errorf(http.StatusConflict, api.ErrAgentConflict,
			"%s %d (%s) was held by another agent (agent id %s%s: register again to take it over (the record then takes this host's VTEP and interfaces).",
			what, c.ID, host, prefix, heard)
	}
	heard := fmt.Sprintf("last heard %ds ago", secs)
	if c.Registrant {
		heard = fmt.Sprintf("which registered it last; not heard since this controller took the lead or restored a snapshot %ds ago", secs)
	}
	return api.Errorf(http.StatusConflict, api.ErrAgentConflict,
		"%s %d (%s) is held by another agent (agent id %s, %s): two hosts with one hostname, or two agents on one host; "+
			"give each host its own hostname and each agent its own data_dir. It is taken over once that agent has been silent for %s.",
		what, c.ID, host, prefix, heard, deadline)
}

// Changes compares what the agents last said with the stored records and
// returns the status command to propose, or nil when nothing changed:
// agents that beat but are not "up" come up, agents that are "up" but
// silent past the deadline go down.
func (h *Heartbeats) Changes(r *state.ReadTxn, now time.Time) *state.AgentStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enter(now)
	st := &state.AgentStatus{Servers: map[uint64]string{}, Routers: map[uint64]string{}}
	judge := now.Sub(h.since) >= h.Deadline
	for _, s := range r.ServerList() {
		if s.Status == "" {
			continue // never registered: not an agent's server
		}
		last, beat := h.servers[s.ID]
		switch {
		case beat && now.Sub(last) < h.Deadline && s.Status != api.AgentUp:
			st.Servers[s.ID] = api.AgentUp
		case judge && s.Status == api.AgentUp && (!beat || now.Sub(last) >= h.Deadline):
			st.Servers[s.ID] = api.AgentDown
		}
	}
	for _, rt := range r.RouterList() {
		if rt.Status == "" {
			continue
		}
		last, beat := h.routers[rt.ID]
		switch {
		case beat && now.Sub(last) < h.Deadline && rt.Status != api.AgentUp:
			st.Routers[rt.ID] = api.AgentUp
		case judge && rt.Status == api.AgentUp && (!beat || now.Sub(last) >= h.Deadline):
			st.Routers[rt.ID] = api.AgentDown
		}
	}
	if len(st.Servers) == 0 && len(st.Routers) == 0 {
		return nil
	}
	return st
}

// CapacityChanged reports whether a heartbeat's capacity differs
// materially from the server record: other cores, or RAM or disk off by
// more than 5 %.
func CapacityChanged(s *api.Server, c api.Capacity, storageType string) bool {
	if c.CPUCores != s.Cores {
		return true
	}
	off := func(a, b int) bool { return a != b && (b == 0 || abs(a-b)*20 > b) }
	if off(int(c.RAMMB/1024), s.RAM) {
		return true
	}
	gb := 0
	for _, sc := range c.Storage {
		if strings.EqualFold(sc.Type, storageType) { // as registration matches it
			gb += int(sc.TotalGB)
		}
	}
	return gb > 0 && off(gb, s.GB)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
