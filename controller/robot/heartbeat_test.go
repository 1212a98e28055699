package robot

import (
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// The memory belongs to a raft term: reports made in this node's term are
// kept however late the leader's loop first looks (the old Reset on the
// loop's first tick as leader dropped them), and a later term starts empty
// with a fresh grace period.
func TestHeartbeatsKeyedOnTerm(t *testing.T) {
	term := uint64(7)
	h := NewHeartbeats(30*time.Second, func() uint64 { return term })
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	h.Beat(1, 2, t0)
	h.AddPolicyLog([]api.PolicyLogEntry{{VirtualRouterID: 5, Action: "allow"}, {VirtualRouterID: 5, Action: "deny"}})
	h.SetVPNStatus([]uint64{5}, []api.VPNStatus{{VPNID: 9, VirtualRouterID: 5, IKEState: "ESTABLISHED"}})

	// the loop's first look in the same term keeps all of it
	store := state.New()
	if st := h.Changes(store.Read(), t0.Add(time.Second)); st != nil {
		t.Errorf("changes without servers = %+v", st)
	}
	if l := h.PolicyLog(5); len(l) != 2 || l[0].Action != "deny" {
		t.Errorf("policy log in the same term = %+v, want both entries, newest first", l)
	}
	if st, ok := h.VPNStatus(9); !ok || st.IKEState != "ESTABLISHED" {
		t.Errorf("VPN status in the same term = %+v, %v", st, ok)
	}
	if last, ok := h.servers[1]; !ok || !last.Equal(t0) {
		t.Errorf("server beat in the same term = %v, %v", last, ok)
	}

	// another term: nothing of the old one, and the grace period restarts
	term = 9
	if l := h.PolicyLog(5); len(l) != 0 {
		t.Errorf("policy log after a term change = %+v, want none", l)
	}
	if _, ok := h.VPNStatus(9); ok {
		t.Error("a VPN status survived a term change")
	}
	if len(h.servers) != 0 || len(h.routers) != 0 {
		t.Errorf("beats survived a term change: %v %v", h.servers, h.routers)
	}
	if h.since.Before(t0.Add(time.Second)) {
		t.Errorf("judging since %v, want the first call of the new term", h.since)
	}
}

// TestHealthChangesOnce: an agent's health is a change (to log) when it
// turns degraded, when its reason changes and when it turns ok again, not
// at every heartbeat; a new term's memory starts ok.
func TestHealthChangesOnce(t *testing.T) {
	term := uint64(1)
	h := NewHeartbeats(time.Minute, func() uint64 { return term })
	now := time.Now()
	for i, c := range []struct {
		health, detail string
		changed        bool
	}{
		{"ok", "", false},
		{"degraded", "libvirt: gone", true},
		{"degraded", "libvirt: gone", false},
		{"degraded", "work fetch: 503", true},
		{"ok", "", true},
		{"", "", false}, // an agent that does not say is ok
		{"degraded", "x", true},
	} {
		if got := h.SetHealth(5, 0, c.health, c.detail, now); got != c.changed {
			t.Errorf("step %d (%s %q): changed = %v, want %v", i, c.health, c.detail, got, c.changed)
		}
	}
	term++ // another leader's term: the memory starts again
	if !h.SetHealth(5, 0, "degraded", "y", now) || h.SetHealth(7, 0, "ok", "", now) {
		t.Error("a new term's memory does not start ok")
	}
}
