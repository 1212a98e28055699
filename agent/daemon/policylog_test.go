package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
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

func (f fakeLogs) PolicyLogEpoch() string { return "epoch-1" }

// epochLogs is a source with a given epoch (a Builder made anew restarts
// its numbers under another).
type epochLogs struct {
	fakeLogs
	epoch string
}

func (f epochLogs) PolicyLogEpoch() string { return f.epoch }

// TestHeartbeatCarriesSeqAndEpoch: each policy log entry goes with its
// sequence number and the heartbeat with the numbering's epoch, so that the
// controller keeps an entry sent again (after a heartbeat the agent could
// not see delivered) once. A source whose numbers restarted under a new
// epoch has its entries sent from its first, not held back by the old
// numbers. Before, the heartbeat carried neither, and the controller kept
// a resend twice.
func TestHeartbeatCarriesSeqAndEpoch(t *testing.T) {
	entry := policyEntry
	logs := epochLogs{fakeLogs{7: {entry(2), entry(5)}, 8: {entry(3)}}, "a1b2"}
	var c policyLogCursor
	ctx := context.Background()
	seqs := func(hb api.Heartbeat) map[uint64][]uint64 {
		out := map[uint64][]uint64{}
		for _, e := range hb.PolicyLog {
			out[e.VirtualRouterID] = append(out[e.VirtualRouterID], e.Seq)
		}
		return out
	}
	base := api.Heartbeat{RouterID: 1, Health: "ok"}
	hb, _ := c.withPolicyLog(ctx, base, logs, true) // fails: not delivered
	want := map[uint64][]uint64{7: {2, 5}, 8: {3}}
	if hb.PolicyLogEpoch != "a1b2" || fmt.Sprint(seqs(hb)) != fmt.Sprint(want) {
		t.Fatalf("heartbeat: epoch %q, seqs %v; want %q, %v", hb.PolicyLogEpoch, seqs(hb), "a1b2", want)
	}
	b, _ := json.Marshal(hb)
	if !strings.Contains(string(b), `"policy_log_epoch":"a1b2"`) || !strings.Contains(string(b), `"seq":5`) {
		t.Errorf("the heartbeat's JSON carries no epoch or seq: %s", b)
	}
	// sent again, as they were: the controller drops those it kept
	logs.fakeLogs[7] = append(logs.fakeLogs[7], entry(6))
	hb, delivered := c.withPolicyLog(ctx, base, logs, true)
	want = map[uint64][]uint64{7: {2, 5, 6}, 8: {3}}
	if hb.PolicyLogEpoch != "a1b2" || fmt.Sprint(seqs(hb)) != fmt.Sprint(want) {
		t.Fatalf("after a failed heartbeat: epoch %q, seqs %v; want %q, %v", hb.PolicyLogEpoch, seqs(hb), "a1b2", want)
	}
	delivered()
	if hb, _ := c.withPolicyLog(ctx, base, logs, true); len(hb.PolicyLog) != 0 || hb.PolicyLogEpoch != "" {
		t.Fatalf("after delivery: %+v, want no entries and so no epoch", hb)
	}

	// the numbers restart under a new epoch: its entries go from the first
	logs = epochLogs{fakeLogs{7: {entry(1), entry(2)}}, "c3d4"}
	hb, delivered = c.withPolicyLog(ctx, base, logs, true)
	want = map[uint64][]uint64{7: {1, 2}}
	if hb.PolicyLogEpoch != "c3d4" || fmt.Sprint(seqs(hb)) != fmt.Sprint(want) {
		t.Fatalf("a new epoch: epoch %q, seqs %v; want %q, %v", hb.PolicyLogEpoch, seqs(hb), "c3d4", want)
	}
	delivered()
	if hb, _ := c.withPolicyLog(ctx, base, logs, true); len(hb.PolicyLog) != 0 {
		t.Fatalf("after delivery in the new epoch: %+v", hb.PolicyLog)
	}

	// a controller whose registration answer did not say it takes them
	// (older: it refuses unknown fields): the entries go without numbers
	// and the heartbeat without the epoch
	logs.fakeLogs[7] = append(logs.fakeLogs[7], entry(3))
	hb, _ = c.withPolicyLog(ctx, base, logs, false)
	if b, _ := json.Marshal(hb); len(hb.PolicyLog) != 1 || strings.Contains(string(b), `"seq"`) || strings.Contains(string(b), "policy_log_epoch") {
		t.Fatalf("to an older controller: %s", b)
	}

	// no network role: no entries, no epoch
	if hb, _ := c.withPolicyLog(ctx, base, nil, true); hb.PolicyLog != nil || hb.PolicyLogEpoch != "" {
		t.Errorf("no network role: %+v", hb)
	}
}

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
	got, _ := c.newEntries(ctx, logs, 100, heartbeatBudget) // the heartbeat fails: not delivered
	if len(got) != 2 {
		t.Fatalf("first heartbeat: %d entries", len(got))
	}
	got, delivered := c.newEntries(ctx, logs, 100, heartbeatBudget)
	if len(got) != 2 {
		t.Fatalf("after a failed heartbeat: %d entries, want the same 2 again", len(got))
	}
	delivered()
	if got, _ := c.newEntries(ctx, logs, 100, heartbeatBudget); len(got) != 0 {
		t.Fatalf("after delivery: %d entries sent again", len(got))
	}
	logs[7] = append(logs[7], entry(3))
	if got, _ := c.newEntries(ctx, logs, 100, heartbeatBudget); len(got) != 1 || got[0].Time != t0.Add(3*time.Second).Format(time.RFC3339Nano) {
		t.Fatalf("a new entry: %+v", got)
	}
	if got, _ := c.newEntries(ctx, nil, 100, heartbeatBudget); got != nil {
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
		got, delivered := c.newEntries(ctx, logs, max, heartbeatBudget)
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

// TestHeartbeatBoundedBySize: 16 busy routers (256 IPv6 entries each, the
// builder's default log size) and 64 VPN statuses make heartbeats that
// each stay under the controller's 1 MiB body limit, and every entry goes
// once over the beats that follow. Before, a heartbeat took up to 4096
// entries whatever their size: over 1 MiB it was refused (413), never
// marked delivered, and sent again as large for ever.
func TestHeartbeatBoundedBySize(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 123456789, time.UTC)
	logs := fakeLogs{}
	for r := uint64(0); r < 16; r++ {
		for s := uint64(1); s <= 256; s++ {
			logs[900000001+r] = append(logs[900000001+r], netrouter.PolicyLogEntry{Seq: s, Time: t0.Add(time.Duration(s)),
				Direction: "out", Order: 1000, Action: "block", Protocol: "tcp",
				Source: netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:1"), Destination: netip.MustParseAddr("2001:db8:eeee:eeee:eeee:eeee:eeee:2"),
				SourcePort: 65000, DestinationPort: 65001})
		}
	}
	base := api.Heartbeat{ServerID: 1, Health: "ok"}
	for i := range 64 {
		base.VPNStatus = append(base.VPNStatus, api.VPNStatus{VPNID: uint64(i), IKEState: api.VPNStateDown,
			Error: strings.Repeat("x", 200), Children: []api.VPNChildStatus{}})
	}
	var c policyLogCursor
	ctx := context.Background()
	seen := map[string]bool{}
	for beat := 0; ; beat++ {
		hb, delivered := c.withPolicyLog(ctx, base, logs, true)
		b, err := json.Marshal(hb)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > heartbeatBudget || len(b) >= 1<<20 {
			t.Fatalf("heartbeat %d: %d bytes of JSON with %d entries (budget %d, controller limit %d)", beat, len(b), len(hb.PolicyLog), heartbeatBudget, 1<<20)
		}
		if len(hb.VPNStatus) != 64 {
			t.Fatalf("heartbeat %d: %d VPN statuses", beat, len(hb.VPNStatus))
		}
		if len(hb.PolicyLog) == 0 {
			break
		}
		for _, e := range hb.PolicyLog {
			k := fmt.Sprint(e.VirtualRouterID, " ", e.Time)
			if seen[k] {
				t.Fatalf("heartbeat %d: entry %s sent again", beat, k)
			}
			seen[k] = true
		}
		delivered()
		if beat > 10 {
			t.Fatal("entries do not run out")
		}
	}
	if len(seen) != 16*256 {
		t.Fatalf("%d entries delivered, want %d", len(seen), 16*256)
	}
}

// TestVPNStatusFitsTheHeartbeat: a network agent with 400 VPNs of 64
// IPsec SAs each (IPv6 selectors) sends heartbeats under the controller's
// 1 MiB limit with every VPN's IKE state: the SAs' selectors, then the SAs
// of the largest statuses are left out. Before, the statuses alone made
// each heartbeat about 5 MB: refused (413) for ever, and the server judged
// down. Statuses that fit are sent whole.
func TestVPNStatusFitsTheHeartbeat(t *testing.T) {
	vpnStatus := func(id uint64, children int) api.VPNStatus {
		s := api.VPNStatus{VPNID: id, VirtualRouterID: 7, IKEState: "ESTABLISHED", Children: []api.VPNChildStatus{}}
		for c := range children {
			s.Children = append(s.Children, api.VPNChildStatus{Name: fmt.Sprintf("vpn-%d-%d", id, c), State: "INSTALLED",
				LocalTS:  []string{fmt.Sprintf("2001:db8:%x:%x::/64", id, c)},
				RemoteTS: []string{fmt.Sprintf("2001:db8:ffff:%x:%x::/80", id, c)}})
		}
		return s
	}
	few := []api.VPNStatus{vpnStatus(1, 64), vpnStatus(2, 3)}
	whole := slices.Clone(few)
	if few, left := fitVPNStatus(few, vpnStatusBudget); fmt.Sprint(few) != fmt.Sprint(whole) || left != 0 {
		t.Fatal("statuses that fit were shortened")
	}

	var st []api.VPNStatus
	for i := range 400 {
		st = append(st, vpnStatus(uint64(i+1), 64))
	}
	st = append(st, vpnStatus(401, 1)) // the smallest
	before, _ := json.Marshal(st)
	st, left := fitVPNStatus(st, vpnStatusBudget)
	after, _ := json.Marshal(st)
	t.Logf("VPN statuses: %d → %d bytes of JSON", len(before), len(after))
	if len(after) > vpnStatusBudget {
		t.Fatalf("%d bytes of VPN status, budget %d", len(after), vpnStatusBudget)
	}
	if len(st) != 401 || left != 0 {
		t.Fatalf("%d statuses, %d left out", len(st), left)
	}
	for _, s := range st {
		if s.IKEState != "ESTABLISHED" || s.Children == nil {
			t.Fatalf("VPN %d lost its state: %+v", s.VPNID, s)
		}
	}
	if c := st[400].Children; len(c) != 1 || len(c[0].LocalTS) != 1 {
		t.Errorf("the smallest status was shortened: %+v", c)
	}
	hb, _ := (&policyLogCursor{}).withPolicyLog(context.Background(), api.Heartbeat{ServerID: 1, Health: "ok", VPNStatus: st}, nil, true)
	if b, _ := json.Marshal(hb); len(b) >= 1<<20 {
		t.Fatalf("heartbeat of %d bytes", len(b))
	}
}

// TestFailingVPNStatusesFitTheHeartbeat: a network agent whose charon
// fails for every router reports 1,000 VPNs, each with a 1 KiB error (the
// most a status may carry): 1 MB of JSON, which the SAs' removal does not
// shorten. Their errors are cut to vpnErrorShort bytes (as many as it
// takes), each VPN keeping its state and the start of its error; 4,096 such VPNs (the controller's bound on their number, more
// than fit even then) are sent up to the budget, the rest left out and
// counted. Before, the statuses stayed over
// the controller's 1 MiB: every heartbeat refused (413), the server judged
// down.
func TestFailingVPNStatusesFitTheHeartbeat(t *testing.T) {
	failing := func(n int) []api.VPNStatus {
		var st []api.VPNStatus
		for i := range n {
			st = append(st, api.VPNStatus{VPNID: uint64(i + 1), VirtualRouterID: 7, IKEState: "UNKNOWN", Children: []api.VPNChildStatus{},
				Error: strings.Repeat("charon: connection refused; ", 40)[:api.VPNStatusMaxError]})
		}
		return st
	}
	st, left := fitVPNStatus(failing(1000), vpnStatusBudget)
	b, _ := json.Marshal(st)
	if len(b) > vpnStatusBudget || len(st) != 1000 || left != 0 {
		t.Fatalf("1,000 failing VPNs: %d bytes, %d statuses, %d left out", len(b), len(st), left)
	}
	cut := 0
	for _, s := range st {
		if s.IKEState != "UNKNOWN" || len(s.Error) < vpnErrorShort {
			t.Fatalf("VPN %d: state %q, error of %d bytes", s.VPNID, s.IKEState, len(s.Error))
		}
		if len(s.Error) == vpnErrorShort {
			cut++
		}
	}
	t.Logf("1,000 failing VPNs: %d bytes, %d errors cut to %d bytes", len(b), cut, vpnErrorShort)
	st, left = fitVPNStatus(failing(4096), vpnStatusBudget)
	b, _ = json.Marshal(st)
	if len(b) > vpnStatusBudget || left == 0 || len(st)+left != 4096 || st[0].VPNID != 1 {
		t.Fatalf("4,096 failing VPNs: %d bytes, %d statuses, %d left out", len(b), len(st), left)
	}
	t.Logf("4,096 failing VPNs: %d sent in %d bytes, %d left out", len(st), len(b), left)
}

// TestNumberedPolicyLogRefusedGoesUnnumbered: the registration answer
// said policy_log_seq, but the controller now answering refuses the
// numbered entries' fields (400 regent_request_003: a rollback, or
// leadership moved to a node not yet upgraded). The agent sends the
// entries again without seq and policy_log_epoch, the controller takes
// them, and they are delivered (not sent again); its next registration
// decides the numbering again. Before, every heartbeat carried the
// numbered entries and was refused for ever: none was delivered, the
// router was judged down and the agent's silence held every step, while
// work fetches went on and the agent never registered again.
func TestNumberedPolicyLogRefusedGoesUnnumbered(t *testing.T) {
	var mu sync.Mutex
	var refused, taken int
	var entries [][]api.PolicyLogEntry // the entries of each heartbeat taken
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			fmt.Fprint(w, `{"content":{"server_id":5,"router_id":3,"heartbeat_interval":1,"heartbeat_interval_ms":100,"policy_log_seq":true}}`)
		case "/v1/agent/heartbeat":
			// an older controller: fields it does not know are refused
			var raw map[string]json.RawMessage
			body, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(body, &raw)
			var hb api.Heartbeat
			_ = json.Unmarshal(body, &hb)
			mu.Lock()
			defer mu.Unlock()
			if _, ok := raw["policy_log_epoch"]; ok || strings.Contains(string(body), `"seq"`) {
				refused++
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"detail":"Bad request.","errors":{"policy_log_epoch":{"detail":"Unknown field \"policy_log_epoch\".","error_code":"regent_request_003"}}}`)
				return
			}
			taken++
			entries = append(entries, hb.PolicyLog)
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d := newTestDaemon(t, failureLogs(t), func(c *Config) { c.Token = "t" }, srv.URL)
	entry := policyEntry
	d.policyLogs = fakeLogs{7: {entry(1), entry(2)}}
	ctx, stop := runAgent(t, d, nil, d.heartbeatLoop)
	defer stop()
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		n, r := taken, refused
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats taken, %d refused in 3 s (a heartbeat every 100 ms)", n, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if refused != 1 {
		t.Errorf("%d heartbeats refused, want the first alone", refused)
	}
	if len(entries[0]) != 2 {
		t.Errorf("the first heartbeat taken carried %d entries, want the 2 the refused one had", len(entries[0]))
	}
	for i, e := range entries[1:] {
		if len(e) != 0 {
			t.Errorf("heartbeat %d taken carried %d entries again: not marked delivered", i+2, len(e))
		}
	}
	if d.registration().PolicyLogSeq {
		t.Error("still numbering after the refusal")
	}
	// the next registration decides again
	if !d.register(ctx) || !d.registration().PolicyLogSeq {
		t.Error("a registration answering policy_log_seq does not number the entries again")
	}
}

// TestOtherBadHeartbeatKeepsTheNumbering: the controller refuses a
// heartbeat carrying numbered policy log entries with a 400 that has
// nothing to do with the numbering (agent_heartbeat_105, a bound on the
// VPN statuses, from a controller that knows the fields). The agent
// keeps numbering: the next heartbeat taken carries the entries with
// their seq and policy_log_epoch. Before, any 400 to a numbered heartbeat
// turned the numbering off until the next registration, and with it the
// controller's de-duplication of resent entries. Only the unknown-field
// refusal of the numbering's fields (TestNumberedPolicyLogRefusedGoesUnnumbered)
// turns it off.
func TestOtherBadHeartbeatKeepsTheNumbering(t *testing.T) {
	var mu sync.Mutex
	var refused int
	var taken []api.Heartbeat
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			fmt.Fprint(w, `{"content":{"server_id":5,"router_id":3,"heartbeat_interval":1,"heartbeat_interval_ms":100,"policy_log_seq":true}}`)
		case "/v1/agent/heartbeat":
			var hb api.Heartbeat
			body, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(body, &hb)
			mu.Lock()
			defer mu.Unlock()
			if refused == 0 {
				refused++
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"detail":"VPN status of VPN 9: ike_state is required, strings are at most 256 bytes and at most 64 child SAs or selectors are listed.","error_code":"agent_heartbeat_105"}`)
				return
			}
			taken = append(taken, hb)
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d := newTestDaemon(t, failureLogs(t), func(c *Config) { c.Token = "t" }, srv.URL)
	entry := policyEntry
	d.policyLogs = fakeLogs{7: {entry(1), entry(2)}}
	_, stop := runAgent(t, d, nil, d.heartbeatLoop)
	defer stop()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(taken)
		mu.Unlock()
		if n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat taken in 3 s (a heartbeat every 100 ms)")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hb := taken[0]; len(hb.PolicyLog) != 2 || hb.PolicyLogEpoch == "" || hb.PolicyLog[0].Seq == 0 {
		t.Errorf("the heartbeat taken after the refusal: epoch %q, entries %+v; want the 2 entries numbered", hb.PolicyLogEpoch, hb.PolicyLog)
	}
	if !d.registration().PolicyLogSeq {
		t.Error("numbering turned off by a refusal that has nothing to do with it")
	}
}

// TestNumberingRefused: which refusals name the numbering's fields as
// unknown, as a controller older than the numbering answers them.
func TestNumberingRefused(t *testing.T) {
	unknown := func(field string) error {
		return &api.Error{Status: http.StatusBadRequest, Detail: "Bad request.",
			Errors: map[string]api.FieldError{field: {ErrorCode: api.CodeUnknownField, Detail: "Unknown field."}}}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{unknown("policy_log_epoch"), true},
		{unknown("policy_log[3].seq"), true},
		{unknown("seq"), true}, // a controller before list items were named
		{unknown("vpn_status"), false},
		{unknown("policy_log[3].rule"), false},
		{&api.Error{Status: http.StatusBadRequest, Errors: map[string]api.FieldError{"policy_log_epoch": {ErrorCode: api.CodeWrongType}}}, false},
		{api.Errorf(http.StatusBadRequest, "agent_heartbeat_105", "VPN status"), false},
		{api.Errorf(http.StatusBadRequest, "agent_heartbeat_101", "Server 5 is not a server of this robot token's region"), false},
		{&api.Error{Status: http.StatusConflict, Errors: map[string]api.FieldError{"policy_log_epoch": {ErrorCode: api.CodeUnknownField}}}, false},
		{nil, false},
	} {
		if got := numberingRefused(tc.err); got != tc.want {
			t.Errorf("numberingRefused(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// policyEntry is a policy log entry numbered seq, seq seconds after a
// fixed time.
func policyEntry(seq uint64) netrouter.PolicyLogEntry {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	return netrouter.PolicyLogEntry{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Direction: "in", Action: "block",
		Protocol: "tcp", Source: netip.MustParseAddr("192.0.2.1"), Destination: netip.MustParseAddr("10.0.0.5")}
}
