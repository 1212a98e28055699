package iaas

// agent health: the server and router views show what their agent last
// said of its health in its heartbeats.

import (
	"time"

	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// Options wires the services to what the node knows outside the state
// store.
type Options struct {
	// AgentHealth answers the health agents last reported (the leader's
	// heartbeat memory, robot.Heartbeats); nil: always unknown.
	AgentHealth AgentHealth
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
