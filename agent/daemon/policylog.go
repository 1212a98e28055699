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
//
// Entries go out with their sequence number (seq) and the heartbeat with
// the numbering's epoch (policy_log_epoch): entries of a heartbeat that
// failed go again with the next, and the controller, which may have kept
// them already (the agent cannot tell), keeps each once by these.
type policyLogCursor struct {
	mu    sync.Mutex
	epoch string // the source's numbering that sent belongs to
	sent  map[uint64]uint64
}

// policyLogSource is what the cursor reads: the routers on the host and
// each one's recent policy log, and the epoch of its sequence numbers
// (netrouter.Builder).
type policyLogSource interface {
	List(ctx context.Context) ([]netrouter.Router, error)
	PolicyLog(id uint64) []netrouter.PolicyLogEntry
	PolicyLogEpoch() string
}

// heartbeatBudget bounds the JSON of a heartbeat: the controller refuses
// a body over 1 MiB (controller/api.MaxBodyBytes) with 413, and a
// heartbeat refused for its size would be sent again, as large, for ever.
// The policy log fills what the rest leaves; entries that do not fit go
// with the next heartbeat.
const heartbeatBudget = 768 << 10

// withPolicyLog returns hb with as many unreported policy log entries as
// fit in heartbeatBudget (at most 4096) and, with them, the epoch of their
// sequence numbers, and the function that marks them reported (newEntries).
// Unless numbered (the controller's registration answer said it takes
// them: policy_log_seq), the entries go without their numbers and the
// heartbeat without the epoch: an older controller refuses a body with
// fields it does not know (400), and the router would be judged down.
// (A numbered heartbeat refused so turns the numbering off until the next
// registration: dropPolicyLogSeq.)
func (p *policyLogCursor) withPolicyLog(ctx context.Context, hb api.Heartbeat, b policyLogSource, numbered bool) (api.Heartbeat, func()) {
	hb.PolicyLog, hb.PolicyLogEpoch = nil, ""
	sized := hb
	if b != nil {
		sized.PolicyLogEpoch = b.PolicyLogEpoch()
	}
	enc, err := json.Marshal(sized)
	if err != nil {
		return hb, func() {}
	}
	entries, delivered := p.newEntries(ctx, b, 4096, heartbeatBudget-len(enc))
	if len(entries) > 0 { // the epoch only with entries
		hb.PolicyLog, hb.PolicyLogEpoch = entries, sized.PolicyLogEpoch
	}
	if !numbered {
		hb.PolicyLogEpoch = ""
		for i := range hb.PolicyLog {
			hb.PolicyLog[i].Seq = 0
		}
	}
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
	epoch := b.PolicyLogEpoch()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch != epoch { // the numbers restarted
		p.epoch, p.sent = epoch, nil
	}
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
			pe := api.PolicyLogEntry{Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano), VirtualRouterID: r.ID,
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
		if p.epoch != epoch {
			return // numbers of an older epoch
		}
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
