package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	wire "github.com/regentcloud/regent/pkg/api"
)

// Tests of the fixes of a security review (DESIGN.md §7: tokens, roles,
// another member's objects, secrets, limits).

// blocked is the outcome of a request sent from another goroutine.
type blocked struct {
	status int
	body   string
	err    error
	took   time.Duration
}

// startBlocking sends GET path with token from a goroutine (a blocking
// query) and waits until the node serves it, so that what the test does
// next happens while the query waits.
func startBlocking(t *testing.T, n *apitest.Node, path, token string) <-chan blocked {
	t.Helper()
	before := inFlight(t, n)
	out := make(chan blocked, 1)
	go func() {
		start := time.Now()
		req, _ := http.NewRequest("GET", n.URL+path, nil)
		req.Header.Set("X-Auth-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- blocked{err: err, took: time.Since(start)}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- blocked{status: resp.StatusCode, body: string(b), took: time.Since(start)}
	}()
	for deadline := time.Now().Add(20 * time.Second); inFlight(t, n) <= before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the blocking query %s never started", path)
		}
	}
	return out
}

// inFlight is regent_http_requests_in_flight, less the request that reads it.
func inFlight(t *testing.T, n *apitest.Node) int {
	t.Helper()
	return int(metricValue(t, n, "regent_http_requests_in_flight")) - 1
}

// metricValue is the value of the series name (without labels) on n's
// /metrics, read without a token as Prometheus would.
func metricValue(t testing.TB, n *apitest.Node, name string) float64 {
	t.Helper()
	return metricValueVia(t, http.DefaultClient, n.URL, name)
}

// metricValueVia is metricValue through hc (an HTTPS node's client); name
// may carry labels, as /metrics writes them: name{label="value"}.
func metricValueVia(t testing.TB, hc *http.Client, url, name string) float64 {
	t.Helper()
	resp, err := hc.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", name, v, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

func waitBlocked(t *testing.T, ch <-chan blocked, within time.Duration) blocked {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("blocking query: %v", r.err)
		}
		return r
	case <-time.After(within):
		t.Fatalf("the blocking query did not end within %s", within)
	}
	return blocked{}
}

// TestBlockingQueryRefusedOnceTokenRevoked: a blocking query authenticates
// again when it wakes, so a token revoked (or its user deleted, or its
// privileges taken) while the query waits gets 401 (403), not the data;
// and the revocation itself wakes the query, which does not wait out
// ?wait for an answer it will refuse. Before the fix the query answered
// 200 with the data at the next change, and held on otherwise.
func TestBlockingQueryRefusedOnceTokenRevoked(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	index := func(path, token string) string {
		return c.Do("GET", path, nil, token).Expect(200).Header.Get("X-Regent-Index")
	}

	t.Run("revoked, then the data changes", func(t *testing.T) {
		id, secret := c.CreateToken(f.root, f.r.AdminA)
		ch := startBlocking(t, n, "/membership/user/?index="+index("/membership/user/", secret)+"&wait=60s", secret)
		c.Do("DELETE", apitest.Path("/membership/token/", id), nil, f.root).Expect(204)
		c.CreateUser(f.root, f.r.MemberA, n.Unique("late"), false)
		if r := waitBlocked(t, ch, 30*time.Second); r.status != 401 || strings.Contains(r.body, "late") {
			t.Errorf("revoked token's blocking query: %d %s; want 401 and no data", r.status, r.body)
		}
	})
	t.Run("revoked, nothing else changes", func(t *testing.T) {
		id, secret := c.CreateToken(f.root, f.r.AdminA)
		ch := startBlocking(t, n, "/membership/user/?index="+index("/membership/user/", secret)+"&wait=120s", secret)
		c.Do("DELETE", apitest.Path("/membership/token/", id), nil, f.root).Expect(204)
		if r := waitBlocked(t, ch, 60*time.Second); r.status != 401 {
			t.Errorf("revoked token's blocking query: %d %s; want 401", r.status, r.body)
		}
	})
	t.Run("expires", func(t *testing.T) {
		exp := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
		r := c.Do("POST", "/membership/token/", map[string]any{"user_id": f.r.AdminA, "expires": exp}, f.root).Expect(201)
		secret := r.Content()["token"].(string)
		ch := startBlocking(t, n, "/membership/user/?index="+index("/membership/user/", secret)+"&wait=120s", secret)
		if r := waitBlocked(t, ch, 60*time.Second); r.status != 401 {
			t.Errorf("expired token's blocking query: %d %s; want 401", r.status, r.body)
		}
	})
	t.Run("user deleted", func(t *testing.T) {
		doomed := c.CreateUser(f.root, f.r.MemberA, n.Unique("doomed"), true)
		_, secret := c.CreateToken(f.root, doomed)
		ch := startBlocking(t, n, "/membership/member/?index="+index("/membership/member/", secret)+"&wait=120s", secret)
		c.Do("DELETE", apitest.Path("/membership/user/", doomed), nil, f.root).Expect(204)
		if r := waitBlocked(t, ch, 60*time.Second); r.status != 401 {
			t.Errorf("deleted user's blocking query: %d %s; want 401", r.status, r.body)
		}
	})
	t.Run("global user made a member user", func(t *testing.T) {
		op := c.CreateUser(f.root, 1, n.Unique("op"), false)
		c.Do("PATCH", apitest.Path("/membership/user/", op), map[string]any{"global_active": true}, f.root).Expect(200)
		_, secret := c.CreateToken(f.root, op)
		ch := startBlocking(t, n, "/membership/member/?index="+index("/membership/member/", secret)+"&wait=120s", secret)
		c.Do("PATCH", apitest.Path("/membership/user/", op), map[string]any{"global_active": false}, f.root).Expect(200)
		c.CreateMember(f.root, n.Unique("new-tenant"))
		r := waitBlocked(t, ch, 60*time.Second)
		if r.status != 200 || strings.Contains(r.body, "new-tenant") || strings.Contains(r.body, fmt.Sprintf(`"id":%d,`, f.r.MemberA)) {
			t.Errorf("demoted user's blocking member list: %d %s; want 200 with its own member only", r.status, r.body)
		}
	})
	t.Run("a change of the user that keeps its access keeps the query waiting", func(t *testing.T) {
		_, secret := c.CreateToken(f.root, f.r.AdminA)
		start := time.Now()
		ch := startBlocking(t, n, "/membership/member/?index="+index("/membership/member/", secret)+"&wait=2s", secret)
		c.Do("PATCH", apitest.Path("/membership/user/", f.r.AdminA), map[string]any{"surname": "Changed"}, f.root).Expect(200)
		r := waitBlocked(t, ch, 60*time.Second)
		if r.status != 200 || time.Since(start) < 2*time.Second {
			t.Errorf("blocking query after an unrelated change of its user: %d after %s; want 200 after the whole wait", r.status, time.Since(start))
		}
	})
}

// TestBlockingWorkRefusedOnceRobotTokenRevoked: an agent's long poll of its
// work (which carries VPN pre-shared keys) is refused once its robot token
// is revoked, at the revocation.
func TestBlockingWorkRefusedOnceRobotTokenRevoked(t *testing.T) {
	e := newAgentEnv(t)
	c := e.c.For(t)
	id, robot := c.CreateRobotToken(e.f.root, e.f.reg)
	path := fmt.Sprintf("/v1/agent/work?router_id=%d", e.router)
	idx := c.Do("GET", path, nil, robot).Expect(200).Header.Get("X-Regent-Index")
	ch := startBlocking(t, e.f.n, path+"&index="+idx+"&wait=120s", robot)
	c.Do("DELETE", apitest.Path("/membership/token/", id), nil, e.f.root).Expect(204)
	if r := waitBlocked(t, ch, 60*time.Second); r.status != 401 {
		t.Errorf("revoked robot token's work poll: %d %s; want 401", r.status, r.body)
	}
}

// startFollower joins a second node to n (mod adjusts its config) and
// waits until it is a follower that has caught up with the root token.
func startFollower(t *testing.T, n *apitest.Node, mod ...func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Defaults()
	cfg.NodeID, cfg.DataDir = "follower", t.TempDir()
	cfg.HTTPAddr, cfg.RaftAddr, cfg.DNSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Join, cfg.ClusterToken, cfg.LogLevel = n.URL, n.ClusterToken, "error"
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = "200ms", "200ms", "100ms"
	for _, m := range mod {
		m(&cfg)
	}
	follower, err := server.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		follower.Shutdown(ctx)
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("GET", follower.URL()+"/membership/member/?stale=true", nil)
		req.Header.Set("X-Auth-Token", n.RootToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && !follower.Cluster().IsLeader() {
				return follower
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower never caught up")
		}
	}
}

// countingZeros is a body of n zero bytes that counts what was read of it.
type countingZeros struct {
	n    int64
	read atomic.Int64
}

func (z *countingZeros) Read(p []byte) (int, error) {
	left := z.n - z.read.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	clear(p)
	z.read.Add(int64(len(p)))
	return len(p), nil
}

// TestFollowerRefusesLargeUploadOfAnUnauthorisedCaller: a follower keeps a
// snapshot restore's body (up to 4 GiB) in a temporary file before it
// forwards it to the leader, which authenticates. It takes it from a caller
// it authenticates as allowed to restore only: without a token, or with
// one that may not restore, it answers at once without reading the body.
// Before the fix anyone could make a follower write 4 GiB to its disk per
// request.
func TestFollowerRefusesLargeUploadOfAnUnauthorisedCaller(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	follower := startFollower(t, n)
	const size = 128 << 20
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", 401},
		{"bad token", "rgt_nonsense", 401},
		{"member admin", f.r.Token(apitest.MemberAdmin), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &countingZeros{n: size}
			req, _ := http.NewRequest("PUT", follower.URL()+"/v1/operator/snapshot", body)
			req.ContentLength = size
			req.Header.Set("Content-Type", "application/octet-stream")
			if tc.token != "" {
				req.Header.Set("X-Auth-Token", tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// the node may close the connection while the body is sent
				t.Logf("PUT: %v (read %d bytes)", err, body.read.Load())
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("PUT snapshot on a follower: %d %s; want %d", resp.StatusCode, b, tc.want)
				}
			}
			if got := body.read.Load(); got > size/4 {
				t.Errorf("the follower took %d of %d bytes of an unauthorised upload", got, size)
			}
		})
	}
	t.Run("global user", func(t *testing.T) {
		// still forwarded: the leader refuses a body that is no snapshot
		req, _ := http.NewRequest("PUT", follower.URL()+"/v1/operator/snapshot", strings.NewReader(strings.Repeat("x", 2<<20)))
		req.Header.Set("X-Auth-Token", f.root)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "regent_operator_snapshot_101") || resp.Header.Get("X-Regent-Forwarded-To") == "" {
			t.Errorf("global user's restore through a follower: %d %s (forwarded to %q); want the leader's 400", resp.StatusCode, b, resp.Header.Get("X-Regent-Forwarded-To"))
		}
	})
}

// TestReverseZonesAreTheRegions: a reverse zone, made by the first PTR
// record of its /24 (or /48) and owned by the global member, holds the PTR
// records of every member: it is the region's, seen and deleted by global
// users only. Before the fix any user of the global member that is not
// global (an administrator of member 1, or a plain user) listed it (with
// the id of the last member user who wrote a PTR in it) and could delete
// it, and with it the PTR records of other members.
func TestReverseZonesAreTheRegions(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	adminB := f.r.Token(apitest.OtherMember)
	asn := c.Do("POST", "/iaas/asn/", map[string]any{"member_id": f.r.MemberB, "number": 64600}, f.root).Expect(201).ID()
	alloc := c.Do("POST", "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "198.51.100.0/24", "type": "public", "name": "b"}, f.root).Expect(201).ID()
	subnet := c.Do("POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "198.51.100.1/26", "name": "b"}, adminB).Expect(201).ID()
	c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": subnet, "address": "198.51.100.5", "name": "b"}, adminB).Expect(201)
	ptr := c.Do("POST", "/iaas/ptr_record/", map[string]any{"ip_address": "198.51.100.5", "content": "www.b.example"}, adminB).Expect(201).Content()
	zone := uint64(ptr["domain_id"].(float64))

	for _, admin := range []bool{true, false} {
		u := c.CreateUser(f.root, 1, n.Unique("cix-staff"), admin)
		_, tok := c.CreateToken(f.root, u)
		for _, d := range c.Do("GET", "/iaas/domain/?limit=100", nil, tok).Expect(200).List().Content {
			if d["name"] == "100.51.198.in-addr.arpa" {
				t.Errorf("a non-global user of member 1 (admin %v) lists the reverse zone: %v", admin, d)
			}
		}
		c.Do("GET", apitest.Path("/iaas/domain/", zone), nil, tok).Expect(404)
		c.Do("DELETE", apitest.Path("/iaas/domain/", zone), nil, tok).Expect(404)
		r := c.Do("POST", "/iaas/record/", map[string]any{"domain_id": zone, "name": "6.100.51.198.in-addr.arpa", "type": "A", "content": "192.0.2.1"}, tok).Expect(400)
		if got := r.FieldCode("domain_id"); got != "iaas_record_create_103" {
			t.Errorf("a record in the reverse zone by a non-global user of member 1: domain_id error %q, want iaas_record_create_103 (no such domain)", got)
		}
	}
	c.Do("GET", apitest.Path("/iaas/ptr_record/", uint64(ptr["id"].(float64))), nil, adminB).Expect(200)
	c.Do("GET", apitest.Path("/iaas/domain/", zone), nil, f.root).Expect(200)
	c.Do("GET", apitest.Path("/iaas/domain/", zone), nil, adminB).Expect(404)
}

// TestVPNStatusOfAnotherRegionIsHidden: a robot token sees the VPNs of its
// region only, their live status included. Before the fix the status route
// also showed a robot the VPNs of its token's member (robot tokens are made
// by global users, so: every VPN of member 1) in every region, while the
// VPN itself was 404 to it.
func TestVPNStatusOfAnotherRegionIsHidden(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := newComputeRegion(c, f.root, f.reg)
	project := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(n.Unique("p"), f.reg, x, 0), f.root).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, f.root).Expect(200).Content()
	vr := uint64(cloud["virtual_router"].(map[string]any)["id"].(float64))
	subnet := cloud["subnets"].([]any)[0].(map[string]any)
	vpn := create(c, f.root, "/iaas/vpn/", map[string]any{"virtual_router_id": vr, "ike_gateway_value": "203.0.113.7",
		"ike_pre_shared_key": testPSK, "routes": []any{map[string]any{"local_subnet_id": subnet["id"], "remote_subnet": "198.18.7.0/24"}}})
	other := f.r.Token(apitest.Robot) // a robot of another region, made by root
	c.Do("GET", apitest.Path("/iaas/vpn/", vpn), nil, other).Expect(404)
	c.Do("GET", apitest.Path("/iaas/vpn_status/", vpn), nil, other).Expect(404)
	c.Do("GET", apitest.Path("/iaas/vpn_status/", vpn), nil, x.robotR).Expect(200)
	c.Do("GET", apitest.Path("/iaas/vpn_status/", vpn), nil, f.r.Token(apitest.MemberAdmin)).Expect(404)
	c.Do("GET", apitest.Path("/iaas/vpn_status/", vpn), nil, f.root).Expect(200)
}

// trickle sends a request with a body of size bytes one byte every step on
// a raw connection, for at most total, and reports whether the node ended
// it (answered or closed the connection) and after how long.
func trickle(t *testing.T, addr, head string, size int, step, total time.Duration) (ended bool, after time.Duration, answer string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "%sContent-Length: %d\r\n\r\n", head, size); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(conn) // until the node closes the connection
		got <- string(b)
	}()
	for sent := 0; time.Since(start) < total; sent++ {
		select {
		case a := <-got:
			return true, time.Since(start), a
		case <-time.After(step):
		}
		if sent < size {
			conn.Write([]byte{' '})
		}
	}
	return false, time.Since(start), ""
}

// TestSlowRequestBodyIsCutOff: a client must send a request body within
// the body timeout (30s; 1s here): a connection that trickles its body,
// with or without a token, is answered and closed then, instead of being
// held for as long as the client likes (the node has no ReadTimeout, which
// would also end blocking queries). An authorised snapshot upload, which
// may be large, only has to keep moving. Before the fix the trickling
// connections were still open after 20s.
func TestSlowRequestBodyIsCutOff(t *testing.T) {
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) { c.BodyTimeout = time.Second }})
	c := n.Client(t)
	addr := strings.TrimPrefix(n.URL, "http://")
	for _, tc := range []struct{ name, head string }{
		{"no token", "POST /iaas/vm/ HTTP/1.1\r\nHost: x\r\n"},
		{"root token", "POST /membership/member/ HTTP/1.1\r\nHost: x\r\nX-Auth-Token: " + n.RootToken + "\r\n"},
		{"snapshot upload without a token", "PUT /v1/operator/snapshot HTTP/1.1\r\nHost: x\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ended, after, answer := trickle(t, addr, tc.head, 100000, 200*time.Millisecond, 20*time.Second)
			if !ended {
				t.Fatalf("a body trickled for %s was still being taken", after)
			}
			t.Logf("ended after %s: %.80q", after, answer)
		})
	}
	t.Run("a body sent in time is taken", func(t *testing.T) {
		c.Do("POST", "/membership/member/", map[string]any{"name": n.Unique("m")}, n.RootToken).Expect(201)
	})
	t.Run("an authorised snapshot upload that keeps moving is taken", func(t *testing.T) {
		snap := c.Do("GET", "/v1/operator/snapshot", nil, n.RootToken).Expect(200).Body
		body := &slowReader{data: snap, chunk: max(len(snap)/8, 1), pause: 300 * time.Millisecond}
		start := time.Now()
		r := c.DoHeader("PUT", "/v1/operator/snapshot", body, http.Header{"X-Auth-Token": {n.RootToken}, "Content-Type": {"application/octet-stream"}})
		if r.Status != 200 || time.Since(start) < 2*time.Second {
			t.Errorf("a slow authorised restore: %d after %s: %s", r.Status, time.Since(start), r.Body)
		}
	})
}

// slowReader hands out data chunk bytes at a time, pausing before each.
type slowReader struct {
	data  []byte
	chunk int
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p[:min(len(p), s.chunk)], s.data)
	s.data = s.data[n:]
	return n, nil
}

// TestMetricsShowTenantsOnlyToTheRegion: /metrics needs no token, as
// Nomad's (Prometheus scrapes it as it is), but the series that name
// tenants' networks (regent_ipam_block_*{cidr}: every member's
// allocations and Melange blocks) are only in the answer to a token of a
// global user or a robot (Consul asks agent:read for all of it). A token
// that may not see them is 403, a bad one 401. Before the fix anyone who
// reached the API port read every tenant's address blocks and their use.
func TestMetricsShowTenantsOnlyToTheRegion(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	asn := create(c, f.root, "/iaas/asn/", map[string]any{"member_id": f.r.MemberB, "number": 64998})
	create(c, f.root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.78.0.0/24", "name": "b"})
	tenant := `cidr="10.78.0.0/24"`

	anon := string(c.Do("GET", "/metrics", nil, "").Expect(200).Body)
	if strings.Contains(anon, tenant) || strings.Contains(anon, "regent_ipam_block_") {
		t.Errorf("/metrics without a token shows tenants' blocks:\n%s", grepLines(anon, "regent_ipam_block_"))
	}
	if !strings.Contains(anon, "regent_http_requests_in_flight ") || !strings.Contains(anon, "regent_raft_leader ") {
		t.Error("/metrics without a token lacks the node's own metrics")
	}
	for _, role := range []apitest.Role{apitest.Global, apitest.Robot} {
		if m := string(c.Do("GET", "/metrics", nil, f.r.Token(role)).Expect(200).Body); !strings.Contains(m, tenant) || !strings.Contains(m, "regent_raft_leader ") {
			t.Errorf("/metrics with a %s token lacks the IPAM series or the node's own", role)
		}
	}
	// The 403 says what to do instead (before: "You do not have permission
	// to read metrics objects.", though no token at all would have been 200).
	const want = "A token on /metrics asks for the tenants' series too (regent_ipam_block_*), which only a global user's or a robot's token may read: send no token for the node's own metrics."
	for _, role := range []apitest.Role{apitest.MemberAdmin, apitest.MemberUser, apitest.OtherMember} {
		if e := c.Do("GET", "/metrics", nil, f.r.Token(role)).Expect(403).Err(); e.ErrorCode != "regent_metrics_read_201" || e.Detail != want {
			t.Errorf("/metrics with a %s token: %s %q, want regent_metrics_read_201 %q", role, e.ErrorCode, e.Detail, want)
		}
	}
	c.Do("GET", "/metrics", nil, "rgt_nonsense").Expect(401)
}

// grepLines is the lines of text that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRegionShowsTenantsOnlyThemselves: a region lists its customers, the
// members that may build in it; a member's user sees itself in that list,
// not the other customers (another member's business is 404, and so is
// the fact that it is a customer here), and cannot find them by filtering.
// Global users (and the region's robots) see them all. Before the fix
// every customer saw every other's member id.
func TestRegionShowsTenantsOnlyThemselves(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	reg := c.CreateRegion(f.root, n.Unique("shared"), f.r.MemberA, f.r.MemberB)
	customers := func(token string) []any {
		return c.Do("GET", apitest.Path("/membership/region/", reg), nil, token).Expect(200).Content()["customers"].([]any)
	}
	if got := customers(f.r.Token(apitest.MemberUser)); len(got) != 1 || uint64(got[0].(float64)) != f.r.MemberA {
		t.Errorf("member A's user sees customers %v, want [%d]", got, f.r.MemberA)
	}
	if got := customers(f.r.Token(apitest.OtherMember)); len(got) != 1 || uint64(got[0].(float64)) != f.r.MemberB {
		t.Errorf("member B's admin sees customers %v, want [%d]", got, f.r.MemberB)
	}
	if got := customers(f.root); len(got) != 2 {
		t.Errorf("a global user sees customers %v, want both", got)
	}
	l := c.Do("GET", fmt.Sprintf("/membership/region/?search[customers]=%d", f.r.MemberB), nil, f.r.Token(apitest.MemberAdmin)).Expect(200).List()
	if len(l.Content) != 0 || l.Metadata.TotalRecords != 0 {
		t.Errorf("member A finds the regions of member B by filter: %v", l.IDs())
	}
	l = c.Do("GET", fmt.Sprintf("/membership/region/?search[customers]=%d", f.r.MemberA), nil, f.r.Token(apitest.MemberAdmin)).Expect(200).List()
	if !slices.Contains(l.IDs(), reg) {
		t.Errorf("member A does not find its own region by filter: %v", l.IDs())
	}
}

// syncBuffer is a bytes.Buffer for a node's log, written by its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestJoinGuessesAreLimitedAndLogged: the cluster token is the one
// credential that adds a voter (which then receives the whole state, keys
// and token hashes included). It is compared in constant time; wrong
// guesses are now also limited (a burst of 10, then one a second: 429
// with Retry-After, whatever the token, so that a guess cannot be told
// right while limited) and logged. Before the fix a dev node took 2,700
// guesses a second, and logged none.
func TestJoinGuessesAreLimitedAndLogged(t *testing.T) {
	logs := &syncBuffer{}
	n := apitest.Start(t, apitest.Options{LogLevel: "warn", LogOutput: logs})
	c := n.Client(t)
	body := map[string]any{"node_id": "intruder", "raft_addr": "127.0.0.1:1", "http_addr": "http://127.0.0.1:1"}
	start := time.Now()
	refused, limited := 0, 0
	for i := 0; i < 40; i++ {
		r := c.DoHeader("POST", "/v1/operator/join", body, http.Header{"X-Regent-Cluster-Token": {fmt.Sprintf("guess-%d", i)}})
		switch r.Status {
		case 403:
			refused++
		case 429:
			limited++
			if r.Header.Get("Retry-After") == "" || r.ErrorCode() != "regent_operator_join_202" {
				t.Errorf("a limited join: Retry-After %q, error_code %q", r.Header.Get("Retry-After"), r.ErrorCode())
			}
		default:
			t.Fatalf("a wrong guess: %d %s", r.Status, r.Body)
		}
	}
	if max := 10 + int(time.Since(start)/time.Second) + 1; limited == 0 || refused > max {
		t.Errorf("40 wrong guesses in %s: %d checked (403), %d limited (429); want at most %d checked", time.Since(start), refused, limited, max)
	}
	if !strings.Contains(logs.String(), "join refused") {
		t.Errorf("wrong cluster tokens are not logged:\n%s", logs.String())
	}
	// the right token gets through once the limit lets attempts in again
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := c.DoHeader("POST", "/v1/operator/join", body, http.Header{"X-Regent-Cluster-Token": {n.ClusterToken}})
		if r.Status != 429 {
			if r.Status == 403 {
				t.Errorf("the right cluster token refused: %s", r.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the right cluster token was limited for 30s")
		}
	}
}

// TestRouterFloatsOnTheRegionsOwnSubnets: a router's floating subnets are
// where the public addresses of virtual routers and NAT come from; they
// must be the region's own (the global member's) and not a project's.
// Before the fix a global user or a robot of the region could name any
// subnet, a member's public subnet or even a project's private one, and
// new projects then took their "public" addresses inside that member's
// address space.
func TestRouterFloatsOnTheRegionsOwnSubnets(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := newComputeRegion(c, f.root, f.reg)
	asn := create(c, f.root, "/iaas/asn/", map[string]any{"member_id": f.r.MemberA, "number": 64997})
	alloc := create(c, f.root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "198.51.100.0/24", "type": "public"})
	memberSubnet := create(c, f.r.Token(apitest.MemberAdmin), "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "198.51.100.1/25"})
	project := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(n.Unique("p"), f.reg, x, 0), f.r.Token(apitest.MemberAdmin)).Expect(201))
	projectSubnet := uint64(c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, f.root).Expect(200).Content()["subnets"].([]any)[0].(map[string]any)["id"].(float64))
	for _, tc := range []struct {
		name   string
		subnet uint64
	}{{"a member's public subnet", memberSubnet}, {"a project's subnet", projectSubnet}} {
		for _, tok := range []string{f.root, x.robotR} {
			r := c.Do("POST", "/iaas/router/", map[string]any{"region_id": f.reg, "capacity": 5, "floating_subnet_ids": []uint64{tc.subnet}}, tok).Expect(400)
			if got := r.FieldCode("floating_subnet_ids"); got != "iaas_router_create_104" {
				t.Errorf("router create on %s: %q, want iaas_router_create_104", tc.name, got)
			}
			r = c.Do("PATCH", apitest.Path("/iaas/router/", x.rt), map[string]any{"floating_subnet_ids": []uint64{x.fs, tc.subnet}}, tok).Expect(400)
			if got := r.FieldCode("floating_subnet_ids"); got != "iaas_router_update_104" {
				t.Errorf("router update on %s: %q, want iaas_router_update_104", tc.name, got)
			}
		}
	}
	c.Do("PATCH", apitest.Path("/iaas/router/", x.rt), map[string]any{"floating_subnet_ids": []uint64{x.fs}}, x.robotR).Expect(200)
}

// TestOperatorRoutesNeedGlobalAdministrator: a global user who is not an
// administrator reads the cluster's members and leader, but may not take
// or restore a snapshot (which holds every secret of the region), remove
// a member or move leadership (403 with the table's error_code), nor make
// itself the administrator that may: by setting administrator, by minting
// a token of the root user or of another administrator of the global
// member, or by changing such a user. Robot tokens are credentials of the
// cluster too. The root user (a global administrator) may do all of it.
func TestOperatorRoutesNeedGlobalAdministrator(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	r := c.Roles()
	g, root := r.Token(apitest.GlobalUser), n.RootToken

	c.Do("GET", "/v1/operator/members", nil, g).Expect(http.StatusOK)
	c.Do("GET", "/v1/operator/leader", nil, g).Expect(http.StatusOK)
	snap := c.Do("GET", "/v1/operator/snapshot", nil, root).Expect(http.StatusOK).Body
	for _, tc := range []struct {
		method, path string
		body         any
		code         string
	}{
		{"GET", "/v1/operator/snapshot", nil, "regent_operator_snapshot_read_201"},
		{"PUT", "/v1/operator/snapshot", snap, "regent_operator_snapshot_update_201"},
		{"DELETE", "/v1/operator/members/no-such-node", nil, "regent_operator_delete_201"},
		{"POST", "/v1/operator/leader/transfer", nil, "regent_operator_update_201"},
	} {
		h := http.Header{"X-Auth-Token": {g}, "Content-Type": {"application/octet-stream"}}
		resp := c.DoHeader(tc.method, tc.path, tc.body, h).Expect(http.StatusForbidden)
		if got := resp.ErrorCode(); got != tc.code {
			t.Errorf("%s %s as a global user: error_code %q, want %q", tc.method, tc.path, got, tc.code)
		}
	}

	admin1 := c.CreateUser(root, wire.GlobalMemberID, n.Unique("admin-1"), true)
	rootTok, _ := c.CreateToken(root, r.Root)
	for _, tc := range []struct {
		what, method, path string
		body               any
		code               string
	}{
		{"make itself an administrator", "PATCH", apitest.Path("/membership/user/", r.GlobalU), map[string]any{"administrator": true}, "membership_user_update_204"},
		{"create an administrator", "POST", "/membership/user/", map[string]any{"member_id": wire.GlobalMemberID, "username": n.Unique("x"), "administrator": true, "global_active": true}, "membership_user_create_204"},
		{"mint a token of the root user", "POST", "/membership/token/", map[string]any{"user_id": r.Root}, "membership_token_create_202"},
		{"mint a token of an administrator of the global member", "POST", "/membership/token/", map[string]any{"user_id": admin1}, "membership_token_create_202"},
		{"make an administrator of the global member global", "PATCH", apitest.Path("/membership/user/", admin1), map[string]any{"global_active": true}, "membership_user_update_205"},
		{"change the root user", "PATCH", apitest.Path("/membership/user/", r.Root), map[string]any{"email": "x@example.com"}, "membership_user_update_205"},
		{"delete the root user", "DELETE", apitest.Path("/membership/user/", r.Root), nil, "membership_user_delete_202"},
		{"create a robot token", "POST", "/membership/token/", map[string]any{"kind": "robot", "region_id": r.RobotRegion}, "membership_token_create_203"},
		{"revoke a token of the root user", "DELETE", apitest.Path("/membership/token/", rootTok), nil, "membership_token_delete_202"},
	} {
		resp := c.Do(tc.method, tc.path, tc.body, g)
		if resp.Status != http.StatusForbidden || resp.ErrorCode() != tc.code {
			t.Errorf("a global user may not %s: got %d %q, want 403 %q\n%s", tc.what, resp.Status, resp.ErrorCode(), tc.code, resp)
		}
	}
	// The global user still manages tenants: tokens of a member's users,
	// administrators of other members.
	c.CreateToken(g, r.UserA)
	c.CreateUser(g, r.MemberA, n.Unique("admin-a2"), true)
	c.CreateUser(g, wire.GlobalMemberID, n.Unique("cix-user"), false)
	c.Do("PATCH", apitest.Path("/membership/user/", r.UserA), map[string]any{"surname": "x"}, g).Expect(http.StatusOK)

	// The global administrator may.
	c.Do("PATCH", apitest.Path("/membership/user/", admin1), map[string]any{"global_active": true}, root).Expect(http.StatusOK)
	c.CreateToken(root, admin1)
	c.CreateRobotToken(root, r.RobotRegion)
	c.Do("DELETE", apitest.Path("/membership/token/", rootTok), nil, root).Expect(http.StatusNoContent)
	h := http.Header{"X-Auth-Token": {root}, "Content-Type": {"application/octet-stream"}}
	c.DoHeader("PUT", "/v1/operator/snapshot", snap, h).Expect(http.StatusOK)
}

// TestGlobalMemberAdministratorsNeedGlobalAdministrator: an administrator
// of the global member who is not global_active is a member admin of
// member 1, and may not touch another administrator of member 1 (who is, or
// can be made, a global administrator): no token minted for it (which would
// become a global administrator's token when it is made global), no change,
// no deletion, no new administrators of member 1. Its tokens are not even
// visible, so revoking one is 404. It still manages the plain users of
// member 1, and the root user may do all of it.
func TestGlobalMemberAdministratorsNeedGlobalAdministrator(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	a := c.CreateUser(root, wire.GlobalMemberID, n.Unique("cix-admin-a"), true)
	_, ta := c.CreateToken(root, a)
	x := c.CreateUser(root, wire.GlobalMemberID, n.Unique("cix-admin-x"), true)
	xTok, _ := c.CreateToken(root, x)
	plain := c.CreateUser(root, wire.GlobalMemberID, n.Unique("cix-plain"), false)
	for _, tc := range []struct {
		what, method, path string
		body               any
		status             int
		code               string
	}{
		{"mint a token of an administrator of member 1", "POST", "/membership/token/", map[string]any{"user_id": x}, 403, "membership_token_create_202"},
		{"change an administrator of member 1", "PATCH", apitest.Path("/membership/user/", x), map[string]any{"surname": "x"}, 403, "membership_user_update_205"},
		{"delete an administrator of member 1", "DELETE", apitest.Path("/membership/user/", x), nil, 403, "membership_user_delete_202"},
		{"create an administrator of member 1", "POST", "/membership/user/", map[string]any{"member_id": wire.GlobalMemberID, "username": n.Unique("x"), "administrator": true}, 403, "membership_user_create_204"},
		{"make a user of member 1 an administrator", "PATCH", apitest.Path("/membership/user/", plain), map[string]any{"administrator": true}, 403, "membership_user_update_204"},
		{"revoke a token of an administrator of member 1", "DELETE", apitest.Path("/membership/token/", xTok), nil, 404, "membership_token_delete_001"},
	} {
		resp := c.Do(tc.method, tc.path, tc.body, ta)
		if resp.Status != tc.status || resp.ErrorCode() != tc.code {
			t.Errorf("a non-global administrator of member 1 may not %s: got %d %q, want %d %q\n%s", tc.what, resp.Status, resp.ErrorCode(), tc.status, tc.code, resp)
		}
	}
	// It still manages the plain users of member 1.
	c.CreateToken(ta, plain)
	c.Do("PATCH", apitest.Path("/membership/user/", plain), map[string]any{"surname": "x"}, ta).Expect(http.StatusOK)
	c.CreateUser(ta, wire.GlobalMemberID, n.Unique("cix-plain"), false)
	// The root user may.
	c.CreateToken(root, x)
	c.Do("PATCH", apitest.Path("/membership/user/", x), map[string]any{"surname": "x"}, root).Expect(http.StatusOK)
	c.Do("DELETE", apitest.Path("/membership/token/", xTok), nil, root).Expect(http.StatusNoContent)
	c.Do("DELETE", apitest.Path("/membership/user/", x), nil, root).Expect(http.StatusNoContent)
}

// TestTokenMintedBeforePromotion: a global user who is not an administrator
// may make a plain user of member 1 global and mint it a token; when a
// global administrator later makes that user an administrator, the token
// minted by the global user must not act as a global administrator's
// (401 regent_auth_003, naming the minter). A token minted by a global
// administrator, and one the user minted itself, do.
func TestTokenMintedBeforePromotion(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	r := c.Roles()
	g, root := r.Token(apitest.GlobalUser), n.RootToken
	u := c.CreateUser(root, wire.GlobalMemberID, n.Unique("cix-user"), false)
	_, byRoot := c.CreateToken(root, u)

	c.Do("PATCH", apitest.Path("/membership/user/", u), map[string]any{"global_active": true}, g).Expect(http.StatusOK)
	_, byG := c.CreateToken(g, u)
	_, byU := c.CreateToken(byRoot, u)
	c.Do("GET", "/membership/member/", nil, byG).Expect(http.StatusOK) // a global user's token, as before
	c.Do("PATCH", apitest.Path("/membership/user/", u), map[string]any{"administrator": true}, root).Expect(http.StatusOK)

	resp := c.Do("GET", "/v1/operator/snapshot", nil, byG).Expect(http.StatusUnauthorized)
	if resp.ErrorCode() != "regent_auth_003" || !strings.Contains(resp.String(), fmt.Sprintf("minted by user %d", r.GlobalU)) {
		t.Errorf("the global user's token of the promoted user: %s", resp)
	}
	c.Do("GET", "/membership/member/", nil, byG).Expect(http.StatusUnauthorized)
	for name, tok := range map[string]string{"minted by the root user": byRoot, "minted by the user": byU} {
		if resp := c.Do("GET", "/v1/operator/snapshot", nil, tok); resp.Status != http.StatusOK {
			t.Errorf("a token %s: %d, want 200", name, resp.Status)
		}
	}
}

// TestTokenMintedBeforeGlobal: an administrator of member 1 who is not
// global mints a token for a plain user of member 1; once a global
// administrator makes that user global, the token does not act as a global
// user's (401 regent_auth_003): its minter would hold one through it.
func TestTokenMintedBeforeGlobal(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	a := c.CreateUser(root, wire.GlobalMemberID, n.Unique("cix-admin"), true)
	_, byRootForA := c.CreateToken(root, a)
	u := c.CreateUser(root, wire.GlobalMemberID, n.Unique("cix-user"), false)
	_, byA := c.CreateToken(byRootForA, u)
	_, byRoot := c.CreateToken(root, u)
	c.Do("GET", "/membership/member/", nil, byA).Expect(http.StatusOK) // a plain user's token
	c.Do("PATCH", apitest.Path("/membership/user/", u), map[string]any{"global_active": true}, root).Expect(http.StatusOK)
	resp := c.Do("GET", "/membership/member/", nil, byA).Expect(http.StatusUnauthorized)
	if resp.ErrorCode() != "regent_auth_003" || !strings.Contains(resp.String(), fmt.Sprintf("minted by user %d before this user became a global user", a)) {
		t.Errorf("the member-1 administrator's token of the now global user: %s", resp)
	}
	c.Do("GET", "/membership/member/", nil, byRoot).Expect(http.StatusOK)
}

// TestGlobalMemberAdministratorUpdatesItself: an administrator of member 1
// who is not global may change its own user (it is protected from others
// like it, not from itself), but not raise its own flags.
func TestGlobalMemberAdministratorUpdatesItself(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	a := c.CreateUser(n.RootToken, wire.GlobalMemberID, n.Unique("cix-admin"), true)
	_, tok := c.CreateToken(n.RootToken, a)
	self := apitest.Path("/membership/user/", a)
	if got := c.Do("PATCH", self, map[string]any{"surname": "Renamed"}, tok).Expect(http.StatusOK).Content()["surname"]; got != "Renamed" {
		t.Errorf("own surname after PATCH: %v", got)
	}
	c.Do("PATCH", self, map[string]any{"global_active": true}, tok).Expect(http.StatusForbidden)
}
