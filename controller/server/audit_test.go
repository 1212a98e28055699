package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
)

// auditLines waits until the audit file at path holds at least n lines and
// returns them.
func auditLines(t *testing.T, path string, n int) []api.AuditRecord {
	t.Helper()
	var out []api.AuditRecord
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		out = out[:0]
		for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			var r api.AuditRecord
			if err := json.Unmarshal(l, &r); err != nil {
				t.Fatalf("audit line %q: %v", l, err)
			}
			out = append(out, r)
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
	}
}

// TestAuditTrail: with audit_log set, every request that may change
// something gets one JSON line on the node that serves it — who (the
// token's role, token, user and member; "none" for a request without a
// valid token), what (method, path without the query, route), the status
// and the raft index of the answer — and so does a snapshot download; a
// read does not. A write sent to a follower is recorded by the leader,
// naming the follower, and not by the follower; the follower's join is
// recorded too. Reload reopens the file, so logrotate can move it away,
// also when the reload fails for another reason.
func TestAuditTrail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	var given server.Config
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) {
		c.AuditLog = path
		given = *c
	}})
	c := n.Client(t)
	root := n.RootToken

	created := c.Do("POST", "/membership/member/?x=secret-filter", map[string]any{"name": n.Unique("audited")}, root).Expect(201)
	id := created.ID()
	c.Do("GET", "/membership/member/", nil, root).Expect(200)
	c.Do("POST", "/membership/member/", map[string]any{"name": "nobody"}, "").Expect(401)
	c.Do("POST", "/membership/member/", map[string]any{"name": "wrong"}, "not-a-token").Expect(401)
	c.Do("POST", "/membership/member/", map[string]any{"name": 7}, root).Expect(400)
	c.Do("DELETE", apitest.Path("/membership/member/", id), nil, root).Expect(204)
	req, _ := http.NewRequest("GET", n.URL+"/v1/operator/snapshot", nil)
	req.Header.Set("X-Auth-Token", root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// The Melange dialect authenticates on its own path: its writes name
	// their caller too.
	c.Do("POST", melangeBlocks(1), map[string]any{"ip_block": map[string]any{"cidr": "10.77.0.0/24", "type": "private"}}, root).Expect(201)
	recs := auditLines(t, path, 7)
	if len(recs) != 7 {
		t.Fatalf("%d audit lines, want 7 (6 writes and a snapshot download; no read): %+v", len(recs), recs)
	}
	if m := recs[6]; m.Path != "/v0.1/ipam/tenants/1/ip_blocks" || m.Status != 201 || m.Role != "global admin" || m.TokenID == 0 {
		t.Errorf("the Melange write's line: %+v", m)
	}
	recs = recs[:6]
	first := recs[0]
	wantIndex, _ := strconv.ParseUint(created.Header.Get("X-Regent-Index"), 10, 64)
	if first.Method != "POST" || first.Path != "/membership/member/" || first.Route != "/membership/member/{$}" || first.Status != 201 ||
		first.Role != "global admin" || first.UserID == 0 || first.TokenID == 0 || first.MemberID != 1 || first.Index != wantIndex ||
		first.Node != "test" || first.Remote == "" || first.Time.IsZero() {
		t.Errorf("the create's line: %+v (index want %d)", first, wantIndex)
	}
	for i, want := range []struct {
		method string
		status int
		role   string
	}{{"POST", 401, "none"}, {"POST", 401, "none"}, {"POST", 400, "global admin"}, {"DELETE", 204, "global admin"}, {"GET", 200, "global admin"}} {
		if r := recs[i+1]; r.Method != want.method || r.Status != want.status || r.Role != want.role {
			t.Errorf("line %d: %s %s %d %s, want %s %d %s", i+2, r.Method, r.Path, r.Status, r.Role, want.method, want.status, want.role)
		}
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "secret-filter") || strings.Contains(string(b), root) {
		t.Error("the audit trail holds the query or the token")
	}

	// A write through a follower: the leader records it.
	followerLog := filepath.Join(dir, "follower-audit.log")
	follower := startFollower(t, n, func(c *server.Config) { c.AuditLog = followerLog })
	fr, err := http.NewRequest("POST", follower.URL()+"/membership/member/", strings.NewReader(`{"name":"via-follower"}`))
	if err != nil {
		t.Fatal(err)
	}
	fr.Header.Set("X-Auth-Token", root)
	fr.Header.Set("Content-Type", "application/json")
	fresp, err := http.DefaultClient.Do(fr)
	if err != nil {
		t.Fatal(err)
	}
	fresp.Body.Close()
	if fresp.StatusCode != 201 {
		t.Fatalf("write through the follower: %d", fresp.StatusCode)
	}
	// Two more lines: the follower's join (by cluster token: no role),
	// and the write it forwarded.
	recs = auditLines(t, path, 9)
	if len(recs) != 9 || recs[7].Path != "/v1/operator/join" || recs[7].Role != "none" || recs[7].Status != 200 ||
		recs[8].ForwardedBy != "follower" || recs[8].Status != 201 || recs[8].Role != "global admin" ||
		!strings.HasPrefix(recs[8].Client, "127.0.0.1:") || recs[8].Client == recs[8].Remote {
		t.Errorf("the leader's lines for the join and the forwarded write: %+v", recs[7:])
	}
	// The follower writes nothing for it: a line would be in its file a
	// few milliseconds after the answer.
	time.Sleep(300 * time.Millisecond)
	if b, _ := os.ReadFile(followerLog); len(bytes.TrimSpace(b)) > 0 {
		t.Errorf("the follower recorded a request it forwarded:\n%s", b)
	}

	// Rotation: the file moved away, Reload opens a new one.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := n.Server.Reload(func() (server.Config, error) { return given, nil }); err != nil {
		t.Fatal(err)
	}
	c.Do("POST", "/membership/member/", map[string]any{"name": n.Unique("rotated")}, root).Expect(201)
	if recs := auditLines(t, path, 1); len(recs) != 1 || recs[0].Status != 201 {
		t.Errorf("after the rotation the new file holds %+v", recs)
	}
	// A reload that fails (here: a bad log level) still starts a new file,
	// or logrotate's next run would delete the file being written.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	bad := given
	bad.LogLevel = "loud"
	if err := n.Server.Reload(func() (server.Config, error) { return bad, nil }); err == nil {
		t.Fatal("a reload with log_level \"loud\" succeeded")
	}
	c.Do("POST", "/membership/member/", map[string]any{"name": n.Unique("rotated-again")}, root).Expect(201)
	if recs := auditLines(t, path, 1); len(recs) != 1 || recs[0].Status != 201 {
		t.Errorf("after a failed reload the new file holds %+v", recs)
	}

	// The count follows the file by a moment.
	written := `regent_audit_lines_total{result="written"}`
	for deadline := time.Now().Add(5 * time.Second); metricValue(t, n, written) != 11 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := metricValue(t, n, written); got != 11 {
		t.Errorf("%s = %v, want 11", written, got)
	}
}

// TestAuditForwardingHeadersCannotBeForged: a client that sends
// X-Regent-Forwarded-By and X-Regent-Client-Addr (and a made-up proof) to a
// follower of a 3-node cluster does not choose what the leader's audit
// line says: the follower drops the address and names the real client,
// and the unproven hop shows as "?" (it still counts towards the hop
// limit); sent to the leader itself they are dropped the same way.
func TestAuditForwardingHeadersCannotBeForged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) { c.AuditLog = path }})
	follower := startFollower(t, n)
	startFollower(t, n, func(c *server.Config) { c.NodeID = "follower-2" })
	spoofed := http.Header{"X-Auth-Token": {n.RootToken}, "Content-Type": {"application/json"},
		"X-Regent-Forwarded-By": {"c9"}, "X-Regent-Client-Addr": {"203.0.113.66:1234"}, "X-Regent-Forward-Proof": {"00"}}
	for _, base := range []string{follower.URL(), n.URL} {
		req, err := http.NewRequest("POST", base+"/membership/member/", strings.NewReader(`{"name":"`+n.Unique("spoofed")+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = spoofed.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("POST through %s: %d", base, resp.StatusCode)
		}
	}
	var via, direct *api.AuditRecord
	for _, r := range auditLines(t, path, 4) {
		if r.Path == "/membership/member/" && r.Method == "POST" {
			if via == nil {
				via = &r
			} else {
				direct = &r
			}
		}
	}
	if via == nil || direct == nil {
		t.Fatalf("the leader's audit lines of the two writes are missing")
	}
	if via.ForwardedBy != "?,follower" || !strings.HasPrefix(via.Client, "127.0.0.1:") || via.Client == via.Remote {
		t.Errorf("the line of the write sent to the follower names forwarded_by %q, client %q (remote %q); want ?,follower and the real client",
			via.ForwardedBy, via.Client, via.Remote)
	}
	if direct.ForwardedBy != "?" || direct.Client != "" || !strings.HasPrefix(direct.Remote, "127.0.0.1:") {
		t.Errorf("the line of the write sent to the leader names forwarded_by %q, client %q; want ? and none", direct.ForwardedBy, direct.Client)
	}
}
