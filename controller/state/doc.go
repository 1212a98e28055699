// Package state is the replicated state of a controller: the go-memdb schema
// and the only code that mutates it. Every mutation runs inside one write
// transaction opened by the FSM for one raft log entry, so it sees the effects
// of every earlier entry and nothing else. Code here is deterministic: the time
// and any random material come from the command, never from the clock.
package state
