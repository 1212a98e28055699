package daemon

import (
	"context"
	"net/netip"
	"slices"
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
		return netrouter.PolicyLogEntry{Seq: uint64(sec), Time: t0.Add(time.Duration(sec) * time.Second), Direction: "in", Action: "block",
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

// TestPolicyLogEntriesOfOneTime: entries that share a time (or come out
// of time order) are each sent once: the cursor is the entry's sequence
// number, not its time. With the time "after the last sent", the rest of
// a heartbeat cut at max and an entry logged later with the same time
// were never sent.
func TestPolicyLogEntriesOfOneTime(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	entry := func(seq uint64, at time.Time) netrouter.PolicyLogEntry {
		return netrouter.PolicyLogEntry{Seq: seq, Time: at, Direction: "out", Order: int(seq), Action: "block",
			Protocol: "udp", Source: netip.MustParseAddr("10.0.0.5"), Destination: netip.MustParseAddr("192.0.2.1")}
	}
	logs := fakeLogs{7: {entry(1, t0), entry(2, t0), entry(3, t0)}}
	var c policyLogCursor
	ctx := context.Background()
	var orders []int
	take := func(max int) int {
		got, delivered := c.newEntries(ctx, logs, max)
		delivered()
		for _, e := range got {
			orders = append(orders, e.Order)
		}
		return len(got)
	}
	if n := take(2); n != 2 {
		t.Fatalf("first heartbeat: %d entries, want 2 (max)", n)
	}
	if n := take(100); n != 1 {
		t.Fatalf("second heartbeat: %d entries, want the third of the same time", n)
	}
	// Logged later, with the same time as those sent, and one a moment
	// older (the kernel's time of a packet handled a little later).
	logs[7] = append(logs[7], entry(4, t0), entry(5, t0.Add(-time.Millisecond)))
	if n := take(100); n != 2 {
		t.Fatalf("third heartbeat: %d entries, want 2", n)
	}
	if n := take(100); n != 0 {
		t.Fatalf("nothing new: %d entries sent again", n)
	}
	if want := []int{1, 2, 3, 4, 5}; !slices.Equal(orders, want) {
		t.Errorf("sent %v, want %v, each once", orders, want)
	}
}
