// Package agent serves the agent protocol under /v1/agent/ (register,
// heartbeat, work) and the CloudCIX run_robot listing under
// /iaas/run_robot/. Every route takes a robot token, bound to a region and
// optionally to one server; state changes go through the CloudCIX
// services (PATCH /iaas/vm/{id}/ with expected_state).
package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/robot"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// App names the error codes of the agent routes (agent_<route>_<nnn>).
const App = "agent"

// Config wires the routes to the node.
type Config struct {
	Heartbeats *robot.Heartbeats
	// HeartbeatInterval is what agents are told to use.
	HeartbeatInterval time.Duration
	Now               func() time.Time
	Logger            hclog.Logger
}

type routes struct {
	a   *api.API
	cfg Config
	// regMu serialises registrations, so that the server and router one
	// is checked against (claim) are those it updates.
	regMu sync.Mutex
}

// Register adds the agent routes to a.
func Register(a *api.API, cfg Config) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	r := &routes{a: a, cfg: cfg}
	a.Handle("POST /v1/agent/register", a.Route(App, "agent", auth.Create, r.register))
	a.Handle("POST /v1/agent/heartbeat", a.Route(App, "agent", auth.Update, r.heartbeat))
	a.Handle("GET /v1/agent/work", a.Route(App, "agent", auth.Read, r.work))
	a.Handle("GET /iaas/run_robot/{$}", a.Route("iaas", "run_robot", auth.List, r.runRobotList))
	a.Handle("POST /iaas/run_robot/{$}", a.Route("iaas", "run_robot", auth.Create, r.runRobotAck))
	a.Handle("GET /iaas/policy_log/{project_id}/{$}", a.Route("iaas", "policy_log", auth.List, r.policyLog))
	a.Handle("GET /iaas/vpn_status/{id}/{$}", a.Route("iaas", "vpn_status", auth.Read, r.vpnStatus))
}

func bad(code, format string, args ...any) error {
	return wire.Errorf(http.StatusBadRequest, code, format, args...)
}

// Bounds of a reported capacity: far above any host, and low enough that
// the server's cores, RAM (GB) and disk (GB) and placement's arithmetic on
// them stay exact.
const (
	maxCPUCores    = wire.MaxCores
	maxRAMMB       = wire.MaxRAMGB << 10
	maxStorageGB   = wire.MaxStorageGB
	maxStorageRows = 16
)

// capacityErr checks a capacity an agent reports (registration and
// heartbeats); "" when it is good.
func capacityErr(c wire.Capacity) string {
	if c.CPUCores < 0 || c.CPUCores > maxCPUCores || c.RAMMB > maxRAMMB || len(c.Storage) > maxStorageRows {
		return fmt.Sprintf("capacity: cpu_cores must be 0 to %d, ram_mb at most %d, and at most %d storage types may be listed.",
			maxCPUCores, uint64(maxRAMMB), maxStorageRows)
	}
	for _, s := range c.Storage {
		if strings.TrimSpace(s.Type) == "" || s.FreeGB > s.TotalGB || s.TotalGB > maxStorageGB {
			return fmt.Sprintf("capacity: every storage entry needs a type, total_gb at most %d and free_gb at most total_gb.", uint64(maxStorageGB))
		}
	}
	return ""
}

// validateRegistration checks what an agent reports about itself.
func validateRegistration(in *wire.AgentRegistration) error {
	fe := wire.FieldErrors{}
	in.Hostname = strings.ToLower(strings.TrimSpace(in.Hostname))
	if in.Hostname == "" || len(in.Hostname) > 253 || strings.ContainsAny(in.Hostname, " /\\\t\n") {
		fe.Add("hostname", "agent_register_105", "hostname is required: the host's name, at most 253 characters, no spaces.")
	}
	if len(in.Roles) == 0 {
		fe.Add("roles", "agent_register_106", "roles must list hypervisor, network or both.")
	}
	for _, r := range in.Roles {
		if r != wire.RoleHypervisor && r != wire.RoleNetwork {
			fe.Add("roles", "agent_register_106", "Unknown role %q: roles are hypervisor and network.", r)
		}
	}
	if in.VTEP != "" {
		if _, err := netip.ParseAddr(in.VTEP); err != nil {
			fe.Add("vtep", "agent_register_107", "vtep %q is not an IP address.", in.VTEP)
		}
	}
	if msg := capacityErr(in.Capacity); msg != "" {
		fe.Add("capacity", "agent_register_108", "%s", msg)
	}
	if len(in.Interfaces) > 512 {
		fe.Add("interfaces", "agent_register_109", "At most 512 interfaces may be reported.")
	}
	return fe.Err()
}

// boundToServer is the 403 of a robot token bound to a server acting for
// a router (the network role): such a token writes its server's records
// only (docs/api.md, Roles).
func boundToServer(q *api.Request, route string) error {
	return wire.Errorf(http.StatusForbidden, route+"_204",
		"This robot token is bound to server %d: it acts for that server alone, not for a router (the network role needs a token of the region).", q.P.ServerID)
}

func (r *routes) register(q *api.Request) error {
	var in wire.AgentRegistration
	if err := q.Decode(&in); err != nil {
		return err
	}
	if err := validateRegistration(&in); err != nil {
		return err
	}
	if q.P.ServerID != 0 && slices.Contains(in.Roles, wire.RoleNetwork) {
		return boundToServer(q, "agent_register")
	}
	agent, err := agentID(q)
	if err != nil {
		return err
	}
	reg := &state.AgentRegistration{RegionID: q.P.RegionID, ServerID: q.P.ServerID, Agent: in, AgentID: agent}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	// The records as they are now (an earlier registration may have
	// created them since q.Txn was taken): another live agent holding one
	// refuses this registration before it changes anything.
	server, router := r.a.Store().Read().AgentTargets(reg)
	undo, err := r.claim(q, agent, server, router, true)
	if err != nil {
		return err
	}
	cmd, err := q.Command(fsm.AgentRegisterType, reg)
	if err != nil {
		undo()
		return err
	}
	res, index, err := r.a.Apply(q, cmd)
	if err != nil {
		// Refused (bad input the state machine found, e.g. an unknown
		// storage type): the records are unchanged, so is who holds
		// them. A write whose outcome is unknown (5xx: leadership lost,
		// commit timeout) keeps the claim: it may have been applied,
		// and the agent registers again. If it was applied, the records
		// name the agent, and the claim takes its calls as its own
		// (robot.Heartbeats.ClaimRegistration).
		if we := (*wire.Error)(nil); !errors.As(err, &we) || we.Status < http.StatusInternalServerError {
			undo()
		}
		return err
	}
	out := *res.(*wire.AgentRegistered)
	out.HeartbeatIntervalMS = r.cfg.HeartbeatInterval.Milliseconds()
	out.HeartbeatInterval = max(int((r.cfg.HeartbeatInterval+time.Second-1)/time.Second), 1)
	// how long this agent may go unheard before it is down and another
	// instance may take its server and router over
	out.AgentDownAfterMS = r.cfg.Heartbeats.DownAfter().Milliseconds()
	out.PolicyLogSeq = true // heartbeats' policy_log_epoch and entries' seq are taken
	now := r.cfg.Now()
	// the records it created are held by this agent from now on (this
	// ends the claim's pending state: the agent's own calls are taken)
	r.cfg.Heartbeats.Claim(out.ServerID, out.RouterID, agent, nil, now, true)
	r.cfg.Heartbeats.Beat(out.ServerID, out.RouterID, now)
	q.W.Header().Set("X-Regent-Index", strconv.FormatUint(index, 10))
	api.WriteJSON(q.W, http.StatusOK, wire.Item[wire.AgentRegistered]{Content: out})
	return nil
}

// maxAgentID bounds the agent instance id of X-Regent-Agent-Id (agents
// send 32 hex digits).
const maxAgentID = 64

// agentID is the caller's agent instance id (wire.HeaderAgentID): ""
// for an older agent that sends none. One longer than maxAgentID or with
// other characters than letters, digits, '-' and '_' is 400
// agent_conflict_002.
func agentID(q *api.Request) (string, error) {
	id := q.Header.Get(wire.HeaderAgentID)
	ok := len(id) <= maxAgentID
	for _, c := range id {
		ok = ok && (c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_')
	}
	if !ok {
		return "", bad("agent_conflict_002", "%s must be at most %d letters, digits, '-' or '_' (the agent's instance id).", wire.HeaderAgentID, maxAgentID)
	}
	return id, nil
}

// claim records agent instance agent (its id, "" for an older agent) as
// acting for server and router, or refuses the call with 409
// wire.ErrAgentConflict when another instance was heard for one of them
// within the down-after deadline: two hosts with one hostname, or two
// agents on one data_dir, would otherwise build the same VMs. A holder
// silent past the deadline is taken over (logged at warn) by a
// registration (takeover) only; a heartbeat or work fetch is refused then
// too, and the agent registers. Leader memory, no raft write. A
// registration's claim (takeover) comes with undo, to call if its write is
// refused; for the others undo does nothing.
func (r *routes) claim(q *api.Request, agent string, server, router uint64, takeover bool) (undo func(), err error) {
	// the records as they are when the memory is judged (a registration
	// may have changed them since q.Txn was taken, a restore since this
	// line): their last registrants, for a new leader
	rec := robot.CurrentRegistrants(r.a.Store(), server, router)
	var c *robot.AgentConflict
	var took []robot.Takeover
	undo = func() {}
	if takeover {
		var undoClaim func()
		c, took, undoClaim = r.cfg.Heartbeats.ClaimRegistration(server, router, agent, rec, r.cfg.Now())
		undo = func() {
			undoClaim()
			if len(took) > 0 {
				r.cfg.Logger.Warn("the registration that took over was refused: the previous agent instance holds again",
					"server_id", server, "router_id", router, "agent_id", agent)
			}
		}
	} else {
		c, took = r.cfg.Heartbeats.Claim(server, router, agent, rec, r.cfg.Now(), false)
	}
	for _, t := range took {
		what := "server_id"
		if t.Router {
			what = "router_id"
		}
		r.cfg.Logger.Warn("another agent instance takes over: the previous one was silent past the down-after deadline",
			what, t.ID, "agent_id", agent, "previous_agent_id", t.From, "silent_for", t.Since.Round(time.Second).String())
	}
	if c == nil {
		return undo, nil
	}
	return nil, r.conflict(agent, c)
}

// conflict logs c, a call of agent refused for another instance holding a
// record, and returns its 409.
func (r *routes) conflict(agent string, c *robot.AgentConflict) error {
	// the records as they are now: a registration may have made them
	// since q.Txn was taken
	cur, kind, host := r.a.Store().Read(), "server_id", ""
	if c.Router {
		kind = "router_id"
		if rt, ok := cur.Router(c.ID); ok {
			host = rt.Hostname
		}
	} else if s, ok := cur.Server(c.ID); ok {
		host = s.Hostname
	}
	heard := c.Since.Round(time.Millisecond).String() + " ago"
	if c.Registrant {
		heard = "never by this leader (the record's registrant; its memory began " + heard + ")"
	}
	r.cfg.Logger.Warn("agent call refused: another agent instance holds the record", kind, c.ID, "hostname", host,
		"agent_id", agent, "holder_agent_id", c.Holder, "holder_heard", heard)
	return c.Err(host, r.cfg.Heartbeats.Deadline)
}

// ids checks that the server and router ids an agent names are in its
// token's region (and are its bound server). A token bound to a server
// acts for that server alone: naming a router is 403 (route_204).
func ids(q *api.Request, server, router uint64, route string) error {
	code := route + "_101"
	if server != 0 {
		s, ok := q.Txn.Server(server)
		if !ok || s.RegionID != q.P.RegionID || (q.P.ServerID != 0 && q.P.ServerID != server) {
			return bad(code, "Server %d is not a server of this robot token's region; register first.", server)
		}
	}
	if router != 0 && q.P.ServerID != 0 {
		return boundToServer(q, route)
	}
	if router != 0 {
		rt, ok := q.Txn.Router(router)
		if !ok || rt.RegionID != q.P.RegionID {
			return bad(code, "Router %d is not a router of this robot token's region; register first.", router)
		}
	}
	if server == 0 && router == 0 {
		return bad(code, "Name the server_id and/or router_id that registration returned.")
	}
	return nil
}

func (r *routes) heartbeat(q *api.Request) error {
	var in wire.Heartbeat
	if err := q.Decode(&in); err != nil {
		return err
	}
	if err := ids(q, in.ServerID, in.RouterID, "agent_heartbeat"); err != nil {
		return err
	}
	agent, err := agentID(q)
	if err != nil {
		return err
	}
	if _, err := r.claim(q, agent, in.ServerID, in.RouterID, false); err != nil {
		return err // before anything of the report is kept
	}
	if in.Health != "" && in.Health != "ok" && in.Health != "degraded" {
		return bad("agent_heartbeat_102", "health is ok or degraded, got %q.", in.Health)
	}
	if msg := capacityErr(in.Capacity); msg != "" {
		return bad("agent_heartbeat_106", "%s", msg)
	}
	// The detail is an error message the API shows on the server and
	// router; a long one is cut rather than costing the agent its heartbeat.
	in.Detail = truncateUTF8(in.Detail, maxHealthDetail)
	if len(in.PolicyLog) > 4096 {
		return bad("agent_heartbeat_103", "At most 4096 policy log entries per heartbeat, got %d.", len(in.PolicyLog))
	}
	if len(in.PolicyLogEpoch) > wire.PolicyLogMaxString {
		return bad("agent_heartbeat_108", "policy_log_epoch is at most %d bytes.", wire.PolicyLogMaxString)
	}
	var logs []wire.PolicyLogEntry
	for i, e := range in.PolicyLog {
		for _, v := range []string{e.Time, e.Direction, e.Action, e.Protocol, e.Source, e.Destination} {
			if len(v) > wire.PolicyLogMaxString {
				return bad("agent_heartbeat_107", "policy_log[%d]: its strings are at most %d bytes.", i, wire.PolicyLogMaxString)
			}
		}
		// A sequence number means something only in its epoch: without
		// one, entries sent again after an agent restart would be
		// dropped as kept.
		if e.Seq != 0 && in.PolicyLogEpoch == "" {
			return bad("agent_heartbeat_108", "policy_log[%d] has a seq: the heartbeat needs the policy_log_epoch it belongs to.", i)
		}
		// only the agent's own router's virtual routers
		if vr, ok := q.Txn.VirtualRouter(e.VirtualRouterID); ok && in.RouterID != 0 && vr.RouterID == in.RouterID {
			logs = append(logs, e)
		}
	}
	// Everything is checked before anything is kept: a refused heartbeat
	// changes nothing (its policy log entries come again with the next).
	var vpns []wire.VPNStatus
	if in.RouterID != 0 {
		var err error
		if vpns, err = vpnReport(q, in.RouterID, in.VPNStatus); err != nil {
			return err
		}
	}
	if in.RouterID != 0 {
		var vrs []uint64
		for _, vr := range q.Txn.VirtualRoutersOnRouter(in.RouterID) {
			vrs = append(vrs, vr.ID)
		}
		r.cfg.Heartbeats.SetVPNStatus(vrs, vpns)
	}
	now := r.cfg.Now()
	r.cfg.Heartbeats.Beat(in.ServerID, in.RouterID, now)
	if r.cfg.Heartbeats.SetHealth(in.ServerID, in.RouterID, in.Health, in.Detail, now) {
		if in.Health == "degraded" {
			r.cfg.Logger.Warn("agent reports itself degraded", "server_id", in.ServerID, "router_id", in.RouterID, "detail", in.Detail)
		} else {
			r.cfg.Logger.Info("agent reports itself healthy again", "server_id", in.ServerID, "router_id", in.RouterID)
		}
	}
	change := r.cfg.Heartbeats.Changes(q.Txn, now)
	if s, ok := q.Txn.Server(in.ServerID); ok && in.Capacity.CPUCores > 0 {
		st, _ := q.Txn.StorageType(s.StorageTypeID)
		name := ""
		if st != nil {
			name = st.Name
		}
		if robot.CapacityChanged(s, in.Capacity, name) {
			if change == nil {
				change = &state.AgentStatus{}
			}
			change.Capacity = map[uint64]wire.Capacity{s.ID: in.Capacity}
		}
	}
	if change != nil {
		cmd, err := q.Command(fsm.AgentStatusType, change)
		if err != nil {
			return err
		}
		if _, _, err := r.a.Apply(q, cmd); err != nil {
			return err
		}
	}
	// The policy log last, once nothing can fail the heartbeat: a failed
	// one has its entries sent again. (Entries with seq would be dropped
	// as kept; those of an older agent, without, would be kept twice.)
	// The logs of its virtual routers that are closed or gone go with it.
	var live []uint64
	if in.RouterID != 0 {
		for _, vr := range q.Txn.VirtualRoutersOnRouter(in.RouterID) {
			if vr.State != wire.StateClosed {
				live = append(live, vr.ID)
			}
		}
	}
	if n := r.cfg.Heartbeats.AddPolicyLog(in.RouterID, live, in.PolicyLogEpoch, logs); n > 0 {
		r.cfg.Logger.Debug("policy log entries sent again, already kept: dropped", "router_id", in.RouterID, "dropped", n)
	}
	q.W.WriteHeader(http.StatusNoContent)
	return nil
}

// Bounds of a heartbeat's VPN status report.
const (
	maxVPNReports  = 4096
	maxVPNChildren = wire.VPNStatusMaxChildren
	maxVPNString   = wire.VPNStatusMaxString
)

// vpnReport checks an agent's VPN statuses and keeps those of VPNs on its
// own router's virtual routers (the rest are dropped, like policy log
// entries of other routers).
func vpnReport(q *api.Request, router uint64, in []wire.VPNStatus) ([]wire.VPNStatus, error) {
	if len(in) > maxVPNReports {
		return nil, bad("agent_heartbeat_104", "At most %d VPN statuses per heartbeat, got %d.", maxVPNReports, len(in))
	}
	var out []wire.VPNStatus
	for _, st := range in {
		v, ok := q.Txn.VPN(st.VPNID)
		// A VPN with traffic selectors has a child SA per route (two while
		// one rekeys), and the API does not bound its routes.
		maxChildren := maxVPNChildren
		if ok {
			maxChildren = max(maxChildren, 2*len(v.Routes))
		}
		long := len(st.IKEState) > maxVPNString || len(st.LocalHost) > maxVPNString || len(st.RemoteHost) > maxVPNString ||
			len(st.Time) > maxVPNString || len(st.Error) > wire.VPNStatusMaxError || len(st.Children) > maxChildren
		for _, c := range st.Children {
			long = long || len(c.Name) > maxVPNString || len(c.State) > maxVPNString || len(c.LocalTS) > maxVPNChildren || len(c.RemoteTS) > maxVPNChildren
		}
		if long || st.IKEState == "" {
			return nil, bad("agent_heartbeat_105", "VPN status of VPN %d: ike_state is required, strings are at most %d bytes and at most %d child SAs or selectors are listed.",
				st.VPNID, maxVPNString, maxChildren)
		}
		if !ok || v.VirtualRouterID != st.VirtualRouterID {
			continue
		}
		if vr, ok := q.Txn.VirtualRouter(v.VirtualRouterID); !ok || vr.RouterID != router {
			continue
		}
		if st.Children == nil {
			st.Children = []wire.VPNChildStatus{}
		}
		out = append(out, st)
	}
	return out, nil
}

// vpnStatus answers the live IPsec state of a VPN as its router's agent
// last reported it (on its heartbeats). Before any report, ike_state is
// UNKNOWN. Another member's VPN is 404.
func (r *routes) vpnStatus(q *api.Request) error {
	id, err := strconv.ParseUint(q.PathValue("id"), 10, 64)
	v, ok := q.Txn.VPN(id)
	if err != nil || !ok || !seesVPN(q.P, v) {
		return wire.NotFound("iaas_vpn_status_read_001")
	}
	st, ok := r.cfg.Heartbeats.VPNStatus(id)
	if !ok {
		st = wire.VPNStatus{VPNID: id, VirtualRouterID: v.VirtualRouterID, IKEState: wire.VPNStateUnknown, Children: []wire.VPNChildStatus{},
			Error: "The agent of the VPN's router has not reported this VPN yet."}
	}
	q.W.Header().Set("X-Regent-Index", strconv.FormatUint(max(q.Txn.MaxIndex(state.VPNs), 1), 10))
	api.WriteJSON(q.W, http.StatusOK, wire.Item[wire.VPNStatus]{Content: st})
	return nil
}

// seesVPN is the VPN service's rule (iaas seesTenant): global users see
// every VPN, robots those of their region (whatever member their token's
// user is of), anyone else its member's.
func seesVPN(p *auth.Principal, v *wire.VPN) bool {
	switch {
	case p.Global():
		return true
	case p.Role == auth.Robot:
		return v.RegionID == p.RegionID
	}
	return v.MemberID == p.MemberID
}

func parseID(q *api.Request, name, code string) (uint64, error) {
	v := q.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, bad(code, "%s must be a positive integer, got %q.", name, v)
	}
	return id, nil
}

// work answers the complete desired state for the caller's server and
// router; with ?index=N&wait=D it blocks until something it depends on
// changes past N.
func (r *routes) work(q *api.Request) error {
	server, err := parseID(q, "server_id", "agent_work_101")
	if err != nil {
		return err
	}
	router, err := parseID(q, "router_id", "agent_work_101")
	if err != nil {
		return err
	}
	if err := ids(q, server, router, "agent_work"); err != nil {
		return err
	}
	agent, err := agentID(q)
	if err != nil {
		return err
	}
	// whether the claim below checks anything that the answer relies on:
	// a ?stale query on a follower does not (it does not know who holds
	// what), and a ?stale query asked any node to answer from its local
	// state, so one on the leader is answered as on a follower if the
	// lead moves while it waits
	led := r.cfg.Heartbeats.Leading() && !q.Stale()
	if _, err := r.claim(q, agent, server, router, false); err != nil {
		return err
	}
	// ?hash is the X-Regent-Content-Hash of the work the agent holds: a
	// blocking query then answers only when its work differs (or at the
	// end of the wait), not at every change to the region's tables.
	have := q.URL.Query().Get("hash")
	if have != "" && !robot.ValidWorkHash(have) {
		return bad("agent_work_102", "hash must be the X-Regent-Content-Hash of an earlier answer (%d hex digits), got %q.", robot.WorkHashLen, have)
	}
	var w wire.Work
	var sum string
	var from *state.ReadTxn // the state w was rendered from
	render := func() {
		w, from = robot.Work(q.Txn, server, router), q.Txn
		sum = robot.WorkHash(w)
	}
	var same func() bool
	if have != "" {
		same = func() bool { render(); return sum == have }
	}
	if err := q.BlockingUnless(same, robot.WorkTables...); err != nil {
		return err
	}
	// Leadership may have moved while the query waited: the holders this
	// node remembers are no longer the ones that count, and Held checks
	// nothing on a node that does not lead. Answered as a node answers a
	// call it cannot serve for the leader: 503, and the agent asks again
	// (the next controller, which forwards it to the leader).
	if led && !r.cfg.Heartbeats.Leading() {
		return api.NoLeader("Leadership moved to another node while the query waited; ask again.")
	}
	// The hold may have moved while the query waited: another instance's
	// registration took the server or router over (its write is what
	// woke the query). That agent's work is not this one's to act on.
	// Checked, not recorded: the claim above was this call's sign of life.
	rec := robot.CurrentRegistrants(r.a.Store(), server, router)
	if c := r.cfg.Heartbeats.Held(server, router, agent, rec, r.cfg.Now()); c != nil {
		return r.conflict(agent, c)
	}
	if from != q.Txn {
		render()
	}
	q.W.Header().Set("X-Regent-Index", strconv.FormatUint(max(w.Index, 1), 10))
	q.W.Header().Set("X-Regent-Content-Hash", sum)
	api.WriteJSON(q.W, http.StatusOK, wire.Item[wire.Work]{Content: w})
	return nil
}

func (r *routes) runRobotList(q *api.Request) error {
	if err := q.Blocking(robot.RunRobotTables...); err != nil {
		return err
	}
	out := robot.ListRunRobot(q.Txn, q.P.RegionID, r.cfg.Now())
	q.W.Header().Set("X-Regent-Index", strconv.FormatUint(max(q.Txn.MaxIndex(robot.RunRobotTables...), 1), 10))
	api.WriteJSON(q.W, http.StatusOK, wire.Item[robot.RunRobot]{Content: out})
	return nil
}

// runRobotAck accepts CloudCIX's acknowledgement. Work here is derived
// from states, not from a flag, so an acknowledgement changes nothing and
// cannot hide a change made after the listing was read.
func (r *routes) runRobotAck(q *api.Request) error {
	var in struct {
		ProjectIDs []uint64 `json:"project_ids"`
	}
	if err := q.Decode(&in); err != nil {
		return err
	}
	if in.ProjectIDs == nil {
		fe := wire.FieldErrors{}
		fe.Add("project_ids", "iaas_run_robot_create_101", "This field is required.")
		return fe.Err()
	}
	q.W.WriteHeader(http.StatusOK)
	return nil
}

// policyLog lists the recent firewall log entries of a project's virtual
// router (rules with pci_logging or debug_logging), newest first, as its
// network agent reported them. Another member's project is 404.
func (r *routes) policyLog(q *api.Request) error {
	id, err := strconv.ParseUint(q.PathValue("project_id"), 10, 64)
	p, ok := q.Txn.Project(id)
	if err != nil || !ok || !(q.P.Global() || p.MemberID == q.P.MemberID) {
		return wire.NotFound("iaas_policy_log_list_001")
	}
	entries := r.cfg.Heartbeats.PolicyLog(p.VirtualRouterID)
	q.W.Header().Set("X-Regent-Index", strconv.FormatUint(max(q.Txn.MaxIndex(state.Projects), 1), 10))
	api.WriteJSON(q.W, http.StatusOK, wire.List[wire.PolicyLogEntry]{Content: entries,
		Metadata: wire.ListMetadata{Limit: robot.PolicyLogSize, Order: "-time", TotalRecords: len(entries), Warnings: []string{}}})
	return nil
}

// maxHealthDetail bounds the health detail kept from a heartbeat (bytes).
const maxHealthDetail = 1024

// truncateUTF8 cuts s to at most max bytes at a character boundary, marking
// the cut with "…".
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "…"
	return wire.CutUTF8(s, max-len(mark)) + mark
}
