package daemon

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
)

// policyLogCursor remembers, per router, the sequence number of the newest
// policy log entry already reported, so each heartbeat carries only what
// is new. (Not its time: entries share times, and a packet handled later
// can carry an earlier one.)
type policyLogCursor struct {
	mu   sync.Mutex
	sent map[uint64]uint64
}

// policyLogSource is what the cursor reads: the routers on the host and
// each one's recent policy log (netrouter.Builder).
type policyLogSource interface {
	List(ctx context.Context) ([]netrouter.Router, error)
	PolicyLog(id uint64) []netrouter.PolicyLogEntry
}

// heartbeatBudget bounds the JSON of a heartbeat: the controller refuses
// a body over 1 MiB (controller/api.MaxBodyBytes) with 413, and a
// heartbeat refused for its size would be sent again, as large, for ever.
// The policy log fills what the rest leaves; entries that do not fit go
// with the next heartbeat.
const heartbeatBudget = 768 << 10

// withPolicyLog returns hb with as many unreported policy log entries as
// fit in heartbeatBudget (at most 4096), and the function that marks them
// reported (newEntries).
func (p *policyLogCursor) withPolicyLog(ctx context.Context, hb api.Heartbeat, b policyLogSource) (api.Heartbeat, func()) {
	hb.PolicyLog = nil
	enc, err := json.Marshal(hb)
	if err != nil {
		return hb, func() {}
	}
	entries, delivered := p.newEntries(ctx, b, 4096, heartbeatBudget-len(enc))
	hb.PolicyLog = entries
	return hb, delivered
}

// newEntries returns the policy log entries of the source's routers that
// were not reported yet, at most max and at most maxBytes of JSON (a
// list's commas included), and the function that marks them
// reported: call it once the heartbeat carrying them was delivered, so
// entries gathered while the controllers are unreachable go with the
// next heartbeat that arrives instead of being lost.
func (p *policyLogCursor) newEntries(ctx context.Context, b policyLogSource, max, maxBytes int) ([]api.PolicyLogEntry, func()) {
	if b == nil {
		return nil, func() {}
	}
	routers, err := b.List(ctx)
	if err != nil {
		return nil, func() {}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []api.PolicyLogEntry
	upto := map[uint64]uint64{}
	size := len("[]")
	full := false
	for _, r := range routers {
		last := p.sent[r.ID]
		entries := b.PolicyLog(r.ID) // oldest first
		for _, e := range entries {
			if full || len(out) >= max {
				break
			}
			if e.Seq <= last {
				continue
			}
			pe := api.PolicyLogEntry{Time: e.Time.UTC().Format(time.RFC3339Nano), VirtualRouterID: r.ID,
				Direction: e.Direction, Order: e.Order, Action: e.Action, Protocol: e.Protocol,
				Source: e.Source.String(), Destination: e.Destination.String(),
				SourcePort: int(e.SourcePort), DestinationPort: int(e.DestinationPort)}
			enc, err := json.Marshal(pe)
			if err != nil {
				continue
			}
			if size+len(enc)+1 > maxBytes {
				full = true // the rest of every router waits for the next heartbeat
				break
			}
			size += len(enc) + 1
			out = append(out, pe)
			upto[r.ID] = e.Seq
		}
	}
	return out, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.sent == nil {
			p.sent = map[uint64]uint64{}
		}
		for id, seq := range upto {
			if seq > p.sent[id] {
				p.sent[id] = seq
			}
		}
	}
}
