package iaas

// agent health: the server and router views show what their agent last
// said of its health in its heartbeats.

import (
	"time"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/robot"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// Options wires the services to what the node knows outside the state
// store.
type Options struct {
	// AgentHealth answers the health agents last reported (the leader's
	// heartbeat memory, robot.Heartbeats); nil: always unknown.
	AgentHealth AgentHealth
	// AgentHolders answers which agent instance holds a server or router
	// (robot.Heartbeats); nil: no robot's state report is refused for it.
	AgentHolders AgentHolders
}

// AgentHolders is the leader's memory of the agent instance last heard
// for each server and router (robot.Heartbeats.Claim).
type AgentHolders interface {
	// Held is the conflict when another instance than agent holds server
	// or router (live, or silent and not yet taken over by a
	// registration); nil otherwise, for an empty agent, and on a node that
	// does not lead.
	Held(server, router uint64, agent string, rec func() robot.Registrants, now time.Time) *robot.AgentConflict
	// DownAfter is how long a silent holder holds.
	DownAfter() time.Duration
}

// heldByAnother refuses a robot's state report (409
// wire.ErrAgentConflict) of an object on a server or router that another
// agent instance holds (wire.HeaderAgentID): two hosts with one
// hostname, or two agents on one data_dir, must not both build it. Only a
// check: a state report is no sign of life, and a report without an id
// (an older agent) is never refused.
func heldByAnother(q *api.Request, h AgentHolders, kind string, id uint64) error {
	agent := q.Header.Get(wire.HeaderAgentID)
	if h == nil || agent == "" {
		return nil
	}
	var server, router uint64
	vmServer := func(vm uint64) {
		if v, ok := q.Txn.VM(vm); ok {
			server = v.ServerID
		}
	}
	switch kind {
	case wire.KindVM:
		vmServer(id)
	case wire.KindVirtualRouter:
		if vr, ok := q.Txn.VirtualRouter(id); ok {
			router = vr.RouterID
		}
	case wire.KindSnapshot:
		if s, ok := q.Txn.Snapshot(id); ok {
			vmServer(s.VMID)
		}
	case wire.KindBackup:
		if b, ok := q.Txn.Backup(id); ok {
			vmServer(b.VMID)
		}
	}
	c := h.Held(server, router, agent, robot.CurrentRegistrants(q.API.Store(), server, router), q.API.Now())
	if c == nil {
		return nil
	}
	host := ""
	if s, ok := q.Txn.Server(c.ID); ok && !c.Router {
		host = s.Hostname
	} else if r, ok := q.Txn.Router(c.ID); ok && c.Router {
		host = r.Hostname
	}
	return c.Err(host, h.DownAfter())
}

// AgentHealth is the leader's memory of the health agents report in their
// heartbeats. It is not replicated: a node that does not lead answers
// wire.AgentHealthUnknown, and so does a new leader until the agent's next
// heartbeat.
type AgentHealth interface {
	ServerHealth(id uint64, now time.Time) (health, detail string)
	RouterHealth(id uint64, now time.Time) (health, detail string)
}

// agentHealth asks h for the health of a server or router whose agent has
// registered (status is set); one without an agent has none to show.
func agentHealth(status string, ask func(uint64, time.Time) (string, string), id uint64, now time.Time) (string, string) {
	if status == "" {
		return "", ""
	}
	if ask == nil {
		return wire.AgentHealthUnknown, ""
	}
	return ask(id, now)
}

func serverView(h AgentHealth, now func() time.Time) func(*state.ReadTxn, *wire.Server) any {
	var ask func(uint64, time.Time) (string, string)
	if h != nil {
		ask = h.ServerHealth
	}
	return func(_ *state.ReadTxn, s *wire.Server) any {
		v := wire.ServerView{Server: *s}
		v.AgentHealth, v.AgentHealthDetail = agentHealth(s.Status, ask, s.ID, now())
		return v
	}
}

func routerView(h AgentHealth, now func() time.Time) func(*state.ReadTxn, *wire.Router) any {
	var ask func(uint64, time.Time) (string, string)
	if h != nil {
		ask = h.RouterHealth
	}
	return func(r *state.ReadTxn, rt *wire.Router) any {
		v := wire.RouterView{Router: *rt}
		if rt.Capacity != nil {
			n := *rt.Capacity
			for _, vr := range r.VirtualRoutersOnRouter(rt.ID) {
				if vr.State != wire.StateClosed {
					n--
				}
			}
			v.CapacityAvailable = &n
		}
		v.AgentHealth, v.AgentHealthDetail = agentHealth(rt.Status, ask, rt.ID, now())
		return v
	}
}
