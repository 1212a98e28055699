package fsm

import (
	"errors"

	"github.com/regentcloud/regent/controller/state"
)

// Coalescer lets the cluster's leader put concurrent commands into one raft
// entry (it implements cluster.Coalescer): one log write, one replication
// message and one decode per entry instead of per command on every node.
type Coalescer struct{}

// Encode renders cmds as one BatchType entry.
func (Coalescer) Encode(cmds [][]byte) []byte { return EncodeBatch(cmds) }

// Split returns the per-command results of a BatchType entry's response.
func (Coalescer) Split(resp any, n int) []any {
	if rs, ok := resp.([]any); ok && len(rs) == n {
		return rs
	}
	// Not what ApplyBatch returns for a batch entry: report it on each.
	out := make([]any, n)
	for i := range out {
		out[i] = Result{Err: errors.New("fsm: unexpected response to a batch entry")}
	}
	return out
}

// Retry reports whether a command's result is state.ErrDeferred: it was not
// applied and must go into a later entry.
func (Coalescer) Retry(resp any) bool {
	r, ok := resp.(Result)
	return ok && errors.Is(r.Err, state.ErrDeferred)
}
