package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
)

// policyLogCursor remembers, per router, the newest policy log entry
// already reported, so each heartbeat carries only what is new.
type policyLogCursor struct {
	mu   sync.Mutex
	sent map[uint64]time.Time
}

// newEntries returns the policy log entries of the builder's routers that
// were not reported yet, at most max, and marks them reported.
func (p *policyLogCursor) newEntries(ctx context.Context, b *netrouter.Builder, max int) []api.PolicyLogEntry {
	if b == nil {
		return nil
	}
	routers, err := b.List(ctx)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent == nil {
		p.sent = map[uint64]time.Time{}
	}
	var out []api.PolicyLogEntry
	for _, r := range routers {
		last := p.sent[r.ID]
		entries := b.PolicyLog(r.ID) // oldest first
		for _, e := range entries {
			if !e.Time.After(last) || len(out) >= max {
				continue
			}
			out = append(out, api.PolicyLogEntry{Time: e.Time.UTC().Format(time.RFC3339Nano), VirtualRouterID: r.ID,
				Direction: e.Direction, Order: e.Order, Action: e.Action, Protocol: e.Protocol,
				Source: e.Source.String(), Destination: e.Destination.String(),
				SourcePort: int(e.SourcePort), DestinationPort: int(e.DestinationPort)})
			p.sent[r.ID] = e.Time
		}
	}
	return out
}
