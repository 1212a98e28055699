package robot

import (
	"slices"
	"strings"
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
	h := NewHeartbeats(30*time.Second, func() uint64 { return term }, nil)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	h.Beat(1, 2, t0)
	h.AddPolicyLog(0, nil, "", []api.PolicyLogEntry{{VirtualRouterID: 5, Action: "allow"}, {VirtualRouterID: 5, Action: "deny"}})
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
	h := NewHeartbeats(time.Minute, func() uint64 { return term }, nil)
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

// TestHealthShown: what the API and /metrics show of an agent's health is
// its last report while it beats; unknown before its first report, once
// it is silent past the deadline, in a later term, and on a node that
// does not lead (whose memory, if any, is not the leader's).
func TestHealthShown(t *testing.T) {
	term, leading := uint64(1), true
	h := NewHeartbeats(time.Minute, func() uint64 { return term }, func() bool { return leading })
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	check := func(step, got, gotDetail, want, wantDetail string) {
		t.Helper()
		if got != want || gotDetail != wantDetail {
			t.Errorf("%s: health %q %q, want %q %q", step, got, gotDetail, want, wantDetail)
		}
	}
	h.Beat(5, 7, t0) // registered: beats, no health said yet
	hs, d := h.ServerHealth(5, t0)
	check("before a report", hs, d, api.AgentHealthUnknown, "")

	h.Beat(5, 7, t0)
	h.SetHealth(5, 7, "degraded", "libvirt: gone", t0)
	hs, d = h.ServerHealth(5, t0.Add(time.Second))
	check("server, degraded", hs, d, api.AgentHealthDegraded, "libvirt: gone")
	hs, d = h.RouterHealth(7, t0.Add(time.Second))
	check("router, degraded", hs, d, api.AgentHealthDegraded, "libvirt: gone")
	hs, d = h.ServerHealth(6, t0)
	check("another server", hs, d, api.AgentHealthUnknown, "")

	h.Beat(5, 0, t0.Add(2*time.Second)) // the hypervisor role alone
	h.SetHealth(5, 0, "ok", "", t0.Add(2*time.Second))
	hs, d = h.ServerHealth(5, t0.Add(3*time.Second))
	check("server, ok again", hs, d, api.AgentHealthOK, "")
	hs, d = h.RouterHealth(7, t0.Add(3*time.Second))
	check("router, untouched by the server's report", hs, d, api.AgentHealthDegraded, "libvirt: gone")

	hs, d = h.ServerHealth(5, t0.Add(2*time.Second+time.Minute))
	check("silent past the deadline", hs, d, api.AgentHealthUnknown, "")

	h.Beat(5, 0, t0.Add(4*time.Second))
	h.SetHealth(5, 0, "", "", t0.Add(4*time.Second))
	hs, d = h.ServerHealth(5, t0.Add(5*time.Second))
	check("an agent that does not say", hs, d, api.AgentHealthOK, "")

	h.AddPolicyLog(0, nil, "", []api.PolicyLogEntry{{VirtualRouterID: 9}})
	h.SetVPNStatus([]uint64{9}, []api.VPNStatus{{VPNID: 3, VirtualRouterID: 9}})
	if _, ok := h.VPNStatus(3); !ok || len(h.PolicyLog(9)) != 1 {
		t.Fatal("the leader lost a VPN status or policy log entry")
	}
	leading = false
	if h.Leading() {
		t.Error("Leading on a node that does not lead")
	}
	if _, ok := h.VPNStatus(3); ok || len(h.PolicyLog(9)) != 0 {
		t.Error("a node that does not lead answers from its old memory: VPN status or policy log")
	}
	hs, d = h.ServerHealth(5, t0.Add(5*time.Second))
	check("not the leader", hs, d, api.AgentHealthUnknown, "")
	leading = true
	term++
	hs, d = h.ServerHealth(5, t0.Add(5*time.Second))
	check("a later term", hs, d, api.AgentHealthUnknown, "")
}

// Claim: the agent instance last heard for a server or router holds it
// while it is heard within the deadline; another instance is refused
// (nothing recorded) until the holder has been silent past the deadline,
// then takes over by registering (its heartbeats and work fetches are
// still refused). An empty id (an older agent) is never refused nor
// recorded, and a node that does not lead checks nothing.
func TestClaimRefusesASecondLiveAgent(t *testing.T) {
	leading := true
	h := NewHeartbeats(30*time.Second, nil, func() bool { return leading })
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	if c, took := h.Claim(1, 2, "aaaa", fixed(Registrants{}), t0, false); c != nil || took != nil {
		t.Fatalf("first claim = %+v, %+v", c, took)
	}
	// the holder again: fine, and it refreshes its hold
	if c, _ := h.Claim(1, 2, "aaaa", fixed(Registrants{}), t0.Add(20*time.Second), false); c != nil {
		t.Fatalf("the holder refused: %+v", c)
	}
	// another instance, 10 s after the holder was heard: refused
	c, _ := h.Claim(1, 0, "bbbb", fixed(Registrants{}), t0.Add(30*time.Second), false)
	if c == nil || c.Router || c.ID != 1 || c.Holder != "aaaa" || c.Since != 10*time.Second {
		t.Fatalf("second instance on the server = %+v", c)
	}
	// the router alone is held too; a refused claim records nothing
	if c, _ := h.Claim(0, 2, "bbbb", fixed(Registrants{}), t0.Add(30*time.Second), false); c == nil || !c.Router || c.ID != 2 {
		t.Fatalf("second instance on the router = %+v", c)
	}
	if c, _ := h.Claim(7, 2, "bbbb", fixed(Registrants{}), t0.Add(31*time.Second), false); c == nil {
		t.Fatal("a claim of a free server and a held router passed")
	}
	if _, ok := h.serverHolder[7]; ok {
		t.Error("a refused claim recorded its free server")
	}
	// older agents: never refused, never recorded
	if c, _ := h.Claim(1, 2, "", fixed(Registrants{}), t0.Add(32*time.Second), false); c != nil {
		t.Errorf("an empty id refused: %+v", c)
	}
	if h.serverHolder[1].agent != "aaaa" {
		t.Errorf("holder after an empty id = %+v", h.serverHolder[1])
	}
	// Held checks without recording
	if c := h.Held(1, 0, "bbbb", fixed(Registrants{}), t0.Add(32*time.Second)); c == nil || c.Holder != "aaaa" {
		t.Errorf("Held by another = %+v", c)
	}
	if c := h.Held(9, 0, "bbbb", fixed(Registrants{}), t0.Add(32*time.Second)); c != nil {
		t.Errorf("Held of a free server = %+v", c)
	}
	if _, ok := h.serverHolder[9]; ok {
		t.Error("Held recorded its caller")
	}
	// a follower checks nothing
	leading = false
	if c, _ := h.Claim(1, 2, "bbbb", fixed(Registrants{}), t0.Add(33*time.Second), false); c != nil {
		t.Errorf("a follower refused: %+v", c)
	}
	leading = true
	// the holder silent past the deadline: a heartbeat or work fetch of
	// another instance is still refused (it must register, so that the
	// record takes its host's VTEP), and records nothing
	c, took := h.Claim(1, 2, "bbbb", fixed(Registrants{}), t0.Add(50*time.Second), false)
	if c == nil || !c.Silent || c.Holder != "aaaa" || took != nil || h.serverHolder[1].agent != "aaaa" {
		t.Fatalf("a heartbeat of another instance after the holder's silence = %+v, %+v", c, took)
	}
	if err := c.Err("hv1", 30*time.Second); err.Status != 409 || !strings.Contains(err.Detail, "register again") {
		t.Errorf("its error = %+v", err)
	}
	// a registration takes over
	c, took = h.Claim(1, 2, "bbbb", fixed(Registrants{}), t0.Add(50*time.Second), true)
	if c != nil || len(took) != 2 || took[0].From != "aaaa" || took[0].Since != 30*time.Second {
		t.Fatalf("takeover = %+v, %+v", c, took)
	}
	for _, register := range []bool{false, true} {
		if c, _ := h.Claim(1, 0, "aaaa", fixed(Registrants{}), t0.Add(51*time.Second), register); c == nil || c.Holder != "bbbb" || c.Silent {
			t.Errorf("the old holder back (registering %v) = %+v, want refused", register, c)
		}
	}
}

// TestPolicyLogKeptOnce: entries an agent sends again (it could not tell
// whether the heartbeat carrying them was taken) are kept once: per
// virtual router the leader remembers the epoch and the highest sequence
// number kept, and drops an entry at or below it. A new epoch (the agent
// restarted, its numbers too) starts afresh; entries without a sequence
// number (an older agent) are kept as before; kept entries do not show
// their number. Before, a resend was kept twice.
func TestPolicyLogKeptOnce(t *testing.T) {
	h := NewHeartbeats(time.Minute, nil, nil)
	entry := func(vr, seq uint64, order int) api.PolicyLogEntry {
		return api.PolicyLogEntry{VirtualRouterID: vr, Seq: seq, Order: order, Action: "allow"}
	}
	orders := func(vr uint64) []int {
		var out []int
		for _, e := range h.PolicyLog(vr) { // newest first
			if e.Seq != 0 {
				t.Errorf("a kept entry shows its seq: %+v", e)
			}
			out = append([]int{e.Order}, out...)
		}
		return out
	}
	check := func(what string, vr uint64, want ...int) {
		t.Helper()
		if got := orders(vr); !slices.Equal(got, want) {
			t.Errorf("%s: virtual router %d keeps %v, want %v", what, vr, got, want)
		}
	}

	if n := h.AddPolicyLog(0, nil, "a", []api.PolicyLogEntry{entry(5, 1, 1), entry(5, 2, 2), entry(6, 3, 3)}); n != 0 {
		t.Errorf("first report: %d dropped", n)
	}
	// the same entries again, with one new of each router
	if n := h.AddPolicyLog(0, nil, "a", []api.PolicyLogEntry{entry(5, 1, 1), entry(5, 2, 2), entry(6, 3, 3), entry(5, 4, 4), entry(6, 5, 5)}); n != 3 {
		t.Errorf("resend: %d dropped, want the 3 kept before", n)
	}
	check("after a resend", 5, 1, 2, 4)
	check("after a resend", 6, 3, 5)
	// a resend that arrives late (the first call, cancelled by the agent,
	// taken after its retry) adds nothing
	h.AddPolicyLog(0, nil, "a", []api.PolicyLogEntry{entry(5, 2, 2)})
	check("a late resend", 5, 1, 2, 4)

	// the agent restarted: a new epoch, its numbers from 1 again
	h.AddPolicyLog(0, nil, "b", []api.PolicyLogEntry{entry(5, 1, 11), entry(5, 2, 12)})
	h.AddPolicyLog(0, nil, "b", []api.PolicyLogEntry{entry(5, 2, 12), entry(5, 3, 13)})
	check("a new epoch", 5, 1, 2, 4, 11, 12, 13)
	check("another router's epoch", 6, 3, 5)

	// an older agent: no numbers, kept as they come
	h.AddPolicyLog(0, nil, "", []api.PolicyLogEntry{entry(7, 0, 1), entry(7, 0, 1)})
	check("entries without seq", 7, 1, 1)

	// bounded: the last PolicyLogSize per router, one record each
	var many []api.PolicyLogEntry
	for i := range PolicyLogSize + 10 {
		many = append(many, entry(8, uint64(i+1), i+1))
	}
	h.AddPolicyLog(0, nil, "c", many)
	h.AddPolicyLog(0, nil, "c", many)
	if l := h.PolicyLog(8); len(l) != PolicyLogSize || l[0].Order != PolicyLogSize+10 || l[len(l)-1].Order != 11 {
		t.Errorf("%d entries kept of a busy router (newest %d), want the last %d", len(l), l[0].Order, PolicyLogSize)
	}
}

// TestNewLeaderTakesTheRegistrantAsHolder: holders are leader memory, so
// a new term starts with none; until a record's holder is heard, the agent
// the record names as its last registrant holds it as if heard when the
// term began. Agent A, back from a partition after B registered in its
// place, is refused at the new leader (its heartbeat too) instead of
// being taken for the holder; its registration takes over only after B's
// silence. B goes on. Before, A's first heartbeat made it the holder, A
// never registered, and the server record kept B's VTEP.
func TestNewLeaderTakesTheRegistrantAsHolder(t *testing.T) {
	term := uint64(1)
	h := NewHeartbeats(30*time.Second, func() uint64 { return term }, func() bool { return true })
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	rec := fixed(Registrants{Server: "bbbb", Router: "bbbb"})
	// the new leader's first call: A's heartbeat
	c, _ := h.Claim(1, 2, "aaaa", rec, t0, false)
	if c == nil || c.Holder != "bbbb" || c.Silent {
		t.Fatalf("A's heartbeat at the new leader = %+v, want refused for B", c)
	}
	if _, ok := h.serverHolder[1]; ok {
		t.Error("a refused claim recorded")
	}
	// A's registration within the deadline since the term began: refused
	if c, _ := h.Claim(1, 2, "aaaa", rec, t0.Add(10*time.Second), true); c == nil || c.Holder != "bbbb" {
		t.Fatalf("A's registration 10 s into the term = %+v, want refused", c)
	}
	// state reports too
	if c := h.Held(1, 0, "aaaa", rec, t0.Add(10*time.Second)); c == nil {
		t.Error("A's state report 10 s into the term was not refused")
	}
	// B, the registrant, is taken and then holds as usual
	if c, _ := h.Claim(1, 2, "bbbb", rec, t0.Add(11*time.Second), false); c != nil {
		t.Fatalf("B's heartbeat = %+v", c)
	}
	if c, _ := h.Claim(1, 2, "aaaa", rec, t0.Add(35*time.Second), true); c == nil || c.Since != 24*time.Second {
		t.Fatalf("A's registration 24 s after B was heard = %+v, want refused", c)
	}
	// another term, and B silent past the deadline since it began: A's
	// heartbeat is still refused (register), its registration takes over
	term++
	t1 := t0.Add(time.Minute)
	if c, _ := h.Claim(1, 0, "cccc", fixed(Registrants{}), t1, false); c != nil {
		t.Fatalf("a claim of a record without a registrant = %+v", c) // the term's first call
	}
	if c, _ := h.Claim(0, 2, "aaaa", rec, t1.Add(31*time.Second), false); c == nil || !c.Silent {
		t.Fatalf("A's heartbeat after B's silence = %+v, want refused as silent", c)
	}
	c, took := h.Claim(0, 2, "aaaa", rec, t1.Add(31*time.Second), true)
	if c != nil || len(took) != 1 || took[0].From != "bbbb" {
		t.Fatalf("A's registration after B's silence = %+v, %+v, want a takeover", c, took)
	}
	// an older agent's record (no registrant) holds nothing
	term++
	if c, _ := h.Claim(3, 0, "aaaa", fixed(Registrants{}), t1.Add(2*time.Minute), false); c != nil {
		t.Errorf("no registrant: %+v", c)
	}
}

// TestClaimRegistrationUndo: a registration's claim is made before its
// write; when the write is refused, undo puts back what the claim
// replaced: the silent holder it took over from (which still holds, and
// whose heartbeat is taken), or nothing where it made a new entry (the
// record's registrant holds again). An entry heard since the claim (a
// later heartbeat) stands, and so does a fresh memory (a new term).
func TestClaimRegistrationUndo(t *testing.T) {
	term := uint64(1)
	h := NewHeartbeats(30*time.Second, func() uint64 { return term }, nil)
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if c, _ := h.Claim(1, 0, "aaaa", fixed(Registrants{}), t0, false); c != nil {
		t.Fatal(c)
	}
	// A silent past the deadline: B's registration takes over, then is refused
	c, took, undo := h.ClaimRegistration(1, 2, "bbbb", fixed(Registrants{Router: "aaaa"}), t0.Add(40*time.Second))
	if c != nil || len(took) != 2 {
		t.Fatalf("B's registration after A's silence = %+v, %+v", c, took)
	}
	undo()
	if s, ok := h.serverHolder[1]; !ok || s.agent != "aaaa" || !s.at.Equal(t0) {
		t.Errorf("server holder after the undo = %+v, %v; want A heard at t0", s, ok)
	}
	if r, ok := h.routerHolder[2]; ok {
		t.Errorf("router holder after the undo = %+v, want none (its registrant holds)", r)
	}
	if c, _ := h.Claim(1, 2, "bbbb", fixed(Registrants{Router: "aaaa"}), t0.Add(41*time.Second), false); c == nil || c.Holder != "aaaa" {
		t.Errorf("B's heartbeat after the undo = %+v, want refused for A", c)
	}
	if c, _ := h.Claim(1, 2, "aaaa", fixed(Registrants{Router: "aaaa"}), t0.Add(41*time.Second), false); c != nil {
		t.Errorf("A's heartbeat after the undo = %+v, want taken", c)
	}

	// heard since the claim: the later entry stands
	_, _, undo = h.ClaimRegistration(3, 0, "cccc", fixed(Registrants{}), t0)
	if c, _ := h.Claim(3, 0, "cccc", fixed(Registrants{}), t0.Add(time.Second), false); c != nil {
		t.Fatal(c)
	}
	undo()
	if s := h.serverHolder[3]; s.agent != "cccc" || !s.at.Equal(t0.Add(time.Second)) {
		t.Errorf("an undo after a later heartbeat removed it: %+v", s)
	}
	// a fresh memory: the undo of the old term's claim touches nothing
	_, _, undo = h.ClaimRegistration(4, 0, "dddd", fixed(Registrants{}), t0)
	term++
	if c, _ := h.Claim(4, 0, "eeee", fixed(Registrants{}), t0.Add(time.Minute), false); c != nil {
		t.Fatal(c)
	}
	undo()
	if s := h.serverHolder[4]; s.agent != "eeee" {
		t.Errorf("an undo from the previous term changed the new one: %+v", s)
	}
	// a refused claim's undo does nothing
	c, _, undo = h.ClaimRegistration(4, 0, "ffff", fixed(Registrants{}), t0.Add(time.Minute))
	if c == nil {
		t.Fatal("a claim of a live holder's server passed")
	}
	undo()
	if s := h.serverHolder[4]; s.agent != "eeee" {
		t.Errorf("a refused claim's undo changed the holder: %+v", s)
	}
}

// TestHeartbeatsForgetARestore: a snapshot restore keeps the raft term but
// replaces the records the memory is about, and may reuse their ids: the
// holders, beats, health, policy log and VPN statuses go, and the grace
// period restarts, as in a new term. Before, they survived the restore.
func TestHeartbeatsForgetARestore(t *testing.T) {
	var restores uint64
	h := NewHeartbeats(30*time.Second, func() uint64 { return 3 }, nil)
	h.Restores = func() uint64 { return restores }
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	h.Claim(1, 2, "bbbb", fixed(Registrants{}), t0, true)
	h.Beat(1, 2, t0)
	h.SetHealth(1, 2, api.AgentHealthDegraded, "disk", t0)
	h.AddPolicyLog(0, nil, "", []api.PolicyLogEntry{{VirtualRouterID: 5, Action: "allow"}})
	h.SetVPNStatus([]uint64{5}, []api.VPNStatus{{VPNID: 9, VirtualRouterID: 5, IKEState: "ESTABLISHED"}})
	if c, _ := h.Claim(1, 2, "aaaa", fixed(Registrants{Server: "aaaa", Router: "aaaa"}), t0.Add(time.Second), false); c == nil {
		t.Fatal("b does not hold before the restore")
	}
	restores++
	t1 := t0.Add(time.Minute)
	// the restored records name a: it holds as if heard at the restore
	if c, _ := h.Claim(1, 2, "bbbb", fixed(Registrants{Server: "aaaa", Router: "aaaa"}), t1, false); c == nil || c.Holder != "aaaa" || c.Since != 0 {
		t.Errorf("b's heartbeat after the restore = %+v, want refused for a", c)
	}
	if l := h.PolicyLog(5); len(l) != 0 {
		t.Errorf("policy log after a restore = %+v", l)
	}
	if _, ok := h.VPNStatus(9); ok {
		t.Error("a VPN status survived a restore")
	}
	if len(h.servers) != 0 || len(h.byServer) != 0 || len(h.health) != 0 || !h.since.Equal(t1) {
		t.Errorf("after a restore: beats %v, health %v %v, judging since %v", h.servers, h.byServer, h.health, h.since)
	}
	// the same restore count: the memory stays
	h.Beat(1, 0, t1)
	if _, ok := h.servers[1]; !ok {
		t.Error("a beat after the restore was not kept")
	}
}

// TestPolicyLogAcrossEpochs: the agent restarted (epoch a → b) while a
// call of epoch a was still on its way; the late copy of a's entries, and
// then a resend of b's, are each kept once: the marks of the last two
// epochs are kept. Before, the switch to b wiped a's mark, the late copy
// started a's count afresh (kept twice) and wiped b's, so b's resend was
// kept twice as well. A third epoch forgets the oldest.
func TestPolicyLogAcrossEpochs(t *testing.T) {
	h := NewHeartbeats(time.Minute, nil, nil)
	entry := func(seq uint64, order int) api.PolicyLogEntry {
		return api.PolicyLogEntry{VirtualRouterID: 5, Seq: seq, Order: order, Action: "allow"}
	}
	check := func(what string, want ...int) {
		t.Helper()
		var got []int
		for _, e := range h.PolicyLog(5) {
			got = append([]int{e.Order}, got...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: kept %v, want %v", what, got, want)
		}
	}
	h.AddPolicyLog(1, []uint64{5}, "a", []api.PolicyLogEntry{entry(1, 1), entry(2, 2)})
	h.AddPolicyLog(1, []uint64{5}, "b", []api.PolicyLogEntry{entry(1, 11)})
	if n := h.AddPolicyLog(1, []uint64{5}, "a", []api.PolicyLogEntry{entry(1, 1), entry(2, 2)}); n != 2 {
		t.Errorf("a late copy of epoch a: %d dropped, want 2", n)
	}
	if n := h.AddPolicyLog(1, []uint64{5}, "b", []api.PolicyLogEntry{entry(1, 11), entry(2, 12)}); n != 1 {
		t.Errorf("a resend in epoch b: %d dropped, want 1", n)
	}
	check("after a late copy and a resend", 1, 2, 11, 12)
	// a third epoch: b and c are remembered, a is not
	h.AddPolicyLog(1, []uint64{5}, "c", []api.PolicyLogEntry{entry(1, 21)})
	if n := h.AddPolicyLog(1, []uint64{5}, "b", []api.PolicyLogEntry{entry(2, 12)}); n != 1 {
		t.Errorf("a late copy of epoch b after c: %d dropped, want 1", n)
	}
	if l := h.policy[5]; len(l.marks) != policyEpochs {
		t.Errorf("marks kept: %+v, want %d", l.marks, policyEpochs)
	}
	check("after a third epoch", 1, 2, 11, 12, 21)
}

// TestPolicyLogOfAGoneRouterGoes: a router's heartbeat names its virtual
// routers that are not closed; the logs its agent reported for any other
// (closed, deleted or moved) go. Another router's logs stay, and a virtual
// router another router reported last is that router's to prune. Before,
// a closed virtual router's log was kept for the whole term.
func TestPolicyLogOfAGoneRouterGoes(t *testing.T) {
	h := NewHeartbeats(time.Minute, nil, nil)
	e := func(vr uint64) []api.PolicyLogEntry {
		return []api.PolicyLogEntry{{VirtualRouterID: vr, Action: "allow"}}
	}
	h.AddPolicyLog(1, []uint64{5, 6, 7}, "", append(e(5), e(6)...))
	h.AddPolicyLog(1, []uint64{5, 6, 7}, "", e(7))
	h.AddPolicyLog(2, []uint64{8}, "", e(8))
	for _, vr := range []uint64{5, 6, 7, 8} {
		if len(h.PolicyLog(vr)) != 1 {
			t.Fatalf("virtual router %d: %v", vr, h.PolicyLog(vr))
		}
	}
	// 6 closed, 7 moved to router 2 (whose agent reports it now)
	h.AddPolicyLog(2, []uint64{7, 8}, "", e(7))
	h.AddPolicyLog(1, []uint64{5}, "", nil)
	if l := h.PolicyLog(6); len(l) != 0 {
		t.Errorf("the closed virtual router's log stays: %v", l)
	}
	if _, ok := h.policy[6]; ok {
		t.Error("the closed virtual router's record stays")
	}
	for vr, want := range map[uint64]int{5: 1, 7: 2, 8: 1} {
		if l := h.PolicyLog(vr); len(l) != want {
			t.Errorf("virtual router %d: %d entries, want %d", vr, len(l), want)
		}
	}
	// no network role: nothing pruned
	h.AddPolicyLog(0, nil, "", nil)
	if len(h.policy) != 3 {
		t.Errorf("a heartbeat without a router pruned: %d logs left", len(h.policy))
	}
}

// TestConflictOfARegistrantNotHeard: a holder taken from the record (its
// last registrant, never heard by this leader) is refused for in words
// that say so, not as "last heard Ns ago" (N counts from the leader's
// start, not from anything the agent did); a holder heard says when.
func TestConflictOfARegistrantNotHeard(t *testing.T) {
	h := NewHeartbeats(30*time.Second, nil, nil)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	h.Beat(9, 0, t0) // the memory begins
	rec := fixed(Registrants{Server: "aaaaaaaaaaaa"})
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{
		{5 * time.Second, "Server 1 (hv1) is held by another agent (agent id aaaaaaaa…, which registered it last; not heard since this controller took the lead or restored a snapshot 5s ago): two hosts"},
		{40 * time.Second, "Server 1 (hv1) was held by another agent (agent id aaaaaaaa…, which registered it last; not heard since this controller took the lead or restored a snapshot 40s ago): register again to take it over"},
	} {
		c := h.Held(1, 0, "bbbb", rec, t0.Add(tc.at))
		if c == nil || !c.Registrant {
			t.Fatalf("%s: %+v", tc.at, c)
		}
		if d := c.Err("hv1", 30*time.Second).Detail; !strings.HasPrefix(d, tc.want) {
			t.Errorf("%s: %q, want it to begin %q", tc.at, d, tc.want)
		}
	}
	h.Claim(1, 0, "aaaaaaaaaaaa", rec, t0.Add(50*time.Second), false)
	for at, want := range map[time.Duration]string{
		52 * time.Second: "Server 1 (hv1) is held by another agent (agent id aaaaaaaa…, last heard 2s ago): two hosts",
		90 * time.Second: "Server 1 (hv1) was held by another agent (agent id aaaaaaaa…), silent for 40s: register again",
	} {
		c := h.Held(1, 0, "bbbb", rec, t0.Add(at))
		if c == nil || c.Registrant {
			t.Fatalf("%s: %+v", at, c)
		}
		if d := c.Err("hv1", 30*time.Second).Detail; !strings.HasPrefix(d, want) {
			t.Errorf("%s: %q, want it to begin %q", at, d, want)
		}
	}
}

// TestRegistrantsOwnCallsDuringItsWrite: agent B's registration took over
// from A, silent past the deadline, and its write is under way when one
// of B's heartbeats (or work fetches, or state reports) arrives. The
// claim is pending: B's call is judged against A, as if B had not
// registered, so it is refused (A silent: register) and records nothing;
// a refused write's undo then puts A back. Another instance is refused
// for B meanwhile, as before. Once the write is taken (the registration's
// Claim after it), B holds and its calls are taken. Before, B's heartbeat
// was taken as the holder's and recorded a new entry, the undo left it
// alone, and the refused registrant kept the hold while the records
// carried A's VTEP.
func TestRegistrantsOwnCallsDuringItsWrite(t *testing.T) {
	h := NewHeartbeats(30*time.Second, func() uint64 { return 1 }, nil)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	rec := fixed(Registrants{Server: "aaaa", Router: "aaaa"})
	if c, _ := h.Claim(1, 2, "aaaa", rec, t0, false); c != nil {
		t.Fatal(c)
	}
	at := t0.Add(40 * time.Second)
	c, took, undo := h.ClaimRegistration(1, 2, "bbbb", rec, at)
	if c != nil || len(took) != 2 {
		t.Fatalf("B's registration after A's silence = %+v, %+v", c, took)
	}
	// during the write: B's own calls are judged against A
	if c, _ := h.Claim(1, 2, "bbbb", rec, at.Add(time.Second), false); c == nil || c.Holder != "aaaa" || !c.Silent {
		t.Errorf("B's heartbeat during its registration's write = %+v, want refused for A, silent", c)
	}
	if c := h.Held(1, 0, "bbbb", rec, at.Add(time.Second)); c == nil || c.Holder != "aaaa" {
		t.Errorf("B's state report during its registration's write = %+v, want refused for A", c)
	}
	// another instance: refused for B, as before
	if c, _ := h.Claim(1, 2, "cccc", rec, at.Add(time.Second), false); c == nil || c.Holder != "bbbb" || c.Silent {
		t.Errorf("C's heartbeat during B's registration's write = %+v, want refused for B", c)
	}
	// the write is refused: A holds again, B is refused
	undo()
	for _, m := range []map[uint64]holder{h.serverHolder, h.routerHolder} {
		for id, e := range m {
			if e.agent != "aaaa" || !e.at.Equal(t0) {
				t.Errorf("holder of %d after the undo = %+v, want A heard at t0", id, e)
			}
		}
	}
	if c, _ := h.Claim(1, 2, "bbbb", rec, at.Add(2*time.Second), false); c == nil || c.Holder != "aaaa" {
		t.Errorf("B's heartbeat after its refused registration = %+v, want refused for A", c)
	}
	if c, _ := h.Claim(1, 2, "aaaa", rec, at.Add(2*time.Second), false); c != nil {
		t.Errorf("A's heartbeat after B's refused registration = %+v, want taken", c)
	}

	// the write taken: the registration's Claim after it ends the pending
	// claim, and B's calls are taken
	at = at.Add(time.Minute)
	if c, _, _ := h.ClaimRegistration(1, 2, "bbbb", rec, at); c != nil {
		t.Fatal(c)
	}
	if c, _ := h.Claim(1, 2, "bbbb", fixed(Registrants{}), at.Add(time.Second), true); c != nil {
		t.Fatalf("the registration's claim after its write = %+v", c)
	}
	if c, _ := h.Claim(1, 2, "bbbb", rec, at.Add(2*time.Second), false); c != nil {
		t.Errorf("B's heartbeat after its registration was taken = %+v", c)
	}
	if c, _ := h.Claim(1, 2, "aaaa", rec, at.Add(2*time.Second), false); c == nil || c.Holder != "bbbb" {
		t.Errorf("A's heartbeat after B's registration was taken = %+v, want refused for B", c)
	}

	// a registration with no holder before it (a new record): its own
	// calls meanwhile are taken, as they would be without it
	_, _, undo = h.ClaimRegistration(3, 0, "dddd", fixed(Registrants{}), at)
	if c, _ := h.Claim(3, 0, "dddd", fixed(Registrants{}), at.Add(time.Second), false); c != nil {
		t.Errorf("D's heartbeat during its first registration's write = %+v", c)
	}
	undo()
	if e := h.serverHolder[3]; e.agent != "dddd" || !e.at.Equal(at.Add(time.Second)) {
		t.Errorf("holder of 3 after the undo = %+v, want D's heartbeat", e)
	}
}

// fixed is a reader of registrants that do not change.
func fixed(r Registrants) func() Registrants { return func() Registrants { return r } }

// TestRegistrantsReadAfterARestore: a snapshot restore completes just
// after a heartbeat's call began. The registrants are read under the
// memory's lock, after it was renewed for the restore, never before: B,
// the registrant before the restore (and its holder), is judged by the
// memory it held in, and the first call after the restore starts a fresh
// memory judged by the restored records, whose registrant A then holds:
// A is taken, B is refused. Before, the registrants were read before the
// lock: the restore in between made a fresh memory seeded with B, the
// records' registrant no more, which took B's heartbeat and recorded it
// as the holder, and A was refused.
func TestRegistrantsReadAfterARestore(t *testing.T) {
	var restores uint64
	h := NewHeartbeats(30*time.Second, func() uint64 { return 3 }, nil)
	h.Restores = func() uint64 { return restores }
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	// the store: its records' registrant, changed by a restore at once
	registrant := "bbbb"
	current := func() Registrants { return Registrants{Server: registrant} }
	if c, _ := h.Claim(1, 0, "bbbb", current, t0, false); c != nil {
		t.Fatal(c)
	}
	// B's heartbeat: the restore (to records naming A) completes just
	// after the registrants are read
	restoreAfterRead := func() Registrants {
		r := current()
		registrant, restores = "aaaa", restores+1
		return r
	}
	h.Claim(1, 0, "bbbb", restoreAfterRead, t0.Add(time.Second), false)
	if c, _ := h.Claim(1, 0, "aaaa", current, t0.Add(2*time.Second), false); c != nil {
		t.Errorf("A's heartbeat after the restore to records it registered = %+v, want taken", c)
	}
	if c, _ := h.Claim(1, 0, "bbbb", current, t0.Add(3*time.Second), false); c == nil || c.Holder != "aaaa" {
		t.Errorf("B's heartbeat after the restore = %+v, want refused for A", c)
	}
}

// TestRegistrantsOwnCallsAfterAnUnknownWrite: agent B's registration
// took over from A, silent past the deadline, and its write was applied
// but its commit timed out (5xx): the claim is kept (no undo) and the
// registration's Claim after the write never came. The records name B
// now: B's heartbeats, work fetches and state reports are its own (the
// first heartbeat ends the pending state), and B, heard, stays live, so a
// returning A is refused for B and cannot take over. Before, B's calls
// were judged against A for ever: refused and not recorded, B's time
// never refreshed, and A's registration took over from a live B.
func TestRegistrantsOwnCallsAfterAnUnknownWrite(t *testing.T) {
	h := NewHeartbeats(30*time.Second, func() uint64 { return 1 }, nil)
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	registrant := "aaaa"
	rec := func() Registrants { return Registrants{Server: registrant, Router: registrant} }
	if c, _ := h.Claim(1, 2, "aaaa", rec, t0, false); c != nil {
		t.Fatal(c)
	}
	at := t0.Add(40 * time.Second)
	if c, took, _ := h.ClaimRegistration(1, 2, "bbbb", rec, at); c != nil || len(took) != 2 {
		t.Fatalf("B's registration after A's silence = %+v, %+v", c, took)
	}
	registrant = "bbbb" // the write applied; its commit timed out
	if c := h.Held(1, 2, "bbbb", rec, at.Add(time.Second)); c != nil {
		t.Errorf("B's state report once the records name it = %+v", c)
	}
	for i := 1; i <= 4; i++ { // past the deadline from the claim
		if c, _ := h.Claim(1, 2, "bbbb", rec, at.Add(time.Duration(i)*20*time.Second), false); c != nil {
			t.Fatalf("B's heartbeat %d once the records name it = %+v", i, c)
		}
	}
	for id, e := range map[string]holder{"server": h.serverHolder[1], "router": h.routerHolder[2]} {
		if e.agent != "bbbb" || e.pending || !e.at.Equal(at.Add(80*time.Second)) {
			t.Errorf("%s holder = %+v, want B heard at its last heartbeat, not pending", id, e)
		}
	}
	back := at.Add(90 * time.Second)
	if c, _ := h.Claim(1, 2, "aaaa", rec, back, false); c == nil || c.Holder != "bbbb" || c.Silent {
		t.Errorf("A's heartbeat on its return = %+v, want refused for B, live", c)
	}
	if c, _, _ := h.ClaimRegistration(1, 2, "aaaa", rec, back); c == nil || c.Holder != "bbbb" || c.Silent {
		t.Errorf("A's registration on its return = %+v, want refused for B, live", c)
	}
}
