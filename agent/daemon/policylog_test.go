package daemon

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/regentcloud/regent/agent/netrouter"
)

type fakeLogs map[uint64][]netrouter.PolicyLogEntry

func (f fakeLogs) List(context.Context) ([]netrouter.Router, error) {
	var out []netrouter.Router
	for id := range f {
		out = append(out, netrouter.Router{ID: id})
	}
	return out, nil
}

func (f fakeLogs) PolicyLog(id uint64) []netrouter.PolicyLogEntry { return f[id] }

// TestPolicyLogSurvivesAFailedHeartbeat: entries are marked reported only
// when the heartbeat that carried them was delivered; a failed one leaves
// them for the next, and delivered ones are not sent twice.
func TestPolicyLogSurvivesAFailedHeartbeat(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	entry := func(sec int) netrouter.PolicyLogEntry {
		return netrouter.PolicyLogEntry{Time: t0.Add(time.Duration(sec) * time.Second), Direction: "in", Action: "block",
			Protocol: "tcp", Source: netip.MustParseAddr("192.0.2.1"), Destination: netip.MustParseAddr("10.0.0.5")}
	}
	logs := fakeLogs{7: {entry(1), entry(2)}}
	var c policyLogCursor
	ctx := context.Background()
	got, _ := c.newEntries(ctx, logs, 100) // the heartbeat fails: not delivered
	if len(got) != 2 {
		t.Fatalf("first heartbeat: %d entries", len(got))
	}
	got, delivered := c.newEntries(ctx, logs, 100)
	if len(got) != 2 {
		t.Fatalf("after a failed heartbeat: %d entries, want the same 2 again", len(got))
	}
	delivered()
	if got, _ := c.newEntries(ctx, logs, 100); len(got) != 0 {
		t.Fatalf("after delivery: %d entries sent again", len(got))
	}
	logs[7] = append(logs[7], entry(3))
	if got, _ := c.newEntries(ctx, logs, 100); len(got) != 1 || got[0].Time != t0.Add(3*time.Second).Format(time.RFC3339Nano) {
		t.Fatalf("a new entry: %+v", got)
	}
	if got, _ := c.newEntries(ctx, nil, 100); got != nil {
		t.Fatalf("no network role: %v", got)
	}
}
