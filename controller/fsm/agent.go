package fsm

import "github.com/regentcloud/regent/controller/state"

// Agent protocol command types, 100–119. Never renumber.
const (
	AgentRegisterType MessageType = 100 // payload state.AgentRegistration
	AgentStatusType   MessageType = 101 // payload state.AgentStatus; proposed by the leader from heartbeats
)

func agentHandlers() map[MessageType]handler {
	return map[MessageType]handler{
		AgentRegisterType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[state.AgentRegistration](c)
			if err != nil {
				return nil, err
			}
			return t.AgentRegister(&p)
		},
		AgentStatusType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[state.AgentStatus](c)
			if err != nil {
				return nil, err
			}
			return t.SetAgentStatus(&p)
		},
	}
}
