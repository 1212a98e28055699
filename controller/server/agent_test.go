package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// agentEnv is a region with a catalogue, one server and one router, both
// known to an agent "hv1" that registered with the region's robot token.
type agentEnv struct {
	c        *apitest.Client
	f        *fixture
	x        *computeFixture
	robot    string
	stName   string
	server   uint64
	router   uint64
	register map[string]any
}

// newAgentEnv is a node whose agents are marked down only after a minute
// of silence: a test that reads a server's status or health after a
// heartbeat must not see it flip because a loaded machine took a moment.
// Tests of the silence itself use newAgentEnvBeating with a deadline of
// their own and poll for its effect.
func newAgentEnv(t testing.TB) *agentEnv { return newAgentEnvWith(t, func(*server.Config) {}) }

// newAgentEnvBeating is newAgentEnv with the controller's agent heartbeat
// interval and down-after time.
// as is the header of a call with the env's robot token as agent
// instance id (none when id is "").
func (e *agentEnv) as(id string) http.Header {
	h := http.Header{}
	h.Set("X-Auth-Token", e.robot)
	if id != "" {
		h.Set(wire.HeaderAgentID, id)
	}
	return h
}

func newAgentEnvBeating(t testing.TB, heartbeat, downAfter server.Duration) *agentEnv {
	return newAgentEnvWith(t, func(c *server.Config) { c.AgentHeartbeat, c.AgentDownAfter = heartbeat, downAfter })
}

// newAgentEnvWith is newAgentEnv on a node configure changes.
func newAgentEnvWith(t testing.TB, configure func(*server.Config)) *agentEnv {
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) {
		c.AgentHeartbeat, c.AgentDownAfter = "100ms", "1m"
		configure(c)
	}})
	c := n.Client(t)
	f := newFixture(t, n)
	x := newComputeRegion(c, f.root, f.reg)
	e := &agentEnv{c: c, f: f, x: x, robot: x.robotR}
	e.stName = c.Do("GET", apitest.Path("/iaas/storage_type/", x.st), nil, f.root).Expect(200).Content()["name"].(string)
	c.Do("PATCH", apitest.Path("/iaas/server/", x.srv), map[string]any{"asset_tag": "hv1"}, f.root).Expect(200)
	c.Do("PATCH", apitest.Path("/iaas/router/", x.rt), map[string]any{"asset_tag": "hv1"}, f.root).Expect(200)
	e.register = map[string]any{"hostname": "hv1", "roles": []string{"hypervisor", "network"}, "vtep": "192.0.2.10", "version": "test",
		"capacity": map[string]any{"cpu_cores": 64, "ram_mb": 2048 * 1024,
			"storage": []any{map[string]any{"type": e.stName, "total_gb": 100000, "free_gb": 90000}}},
		"interfaces": []any{map[string]any{"name": "eth0", "mac_address": "52:54:00:00:00:01", "ip_addresses": []string{"192.0.2.10/24"}, "up": true}}}
	reg := c.Do("POST", "/v1/agent/register", e.register, e.robot).Expect(200).Content()
	e.server, e.router = uint64(reg["server_id"].(float64)), uint64(reg["router_id"].(float64))
	if e.server != x.srv || e.router != x.rt {
		t.Fatalf("registration matched server %d router %d, want %d and %d (by asset tag)", e.server, e.router, x.srv, x.rt)
	}
	return e
}

func (e *agentEnv) work(t *testing.T, query string) (wire.Work, string) {
	t.Helper()
	r := e.c.For(t).Do("GET", fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d%s", e.server, e.router, query), nil, e.robot).Expect(200)
	var w wire.Item[wire.Work]
	r.JSON(&w)
	return w.Content, r.Header.Get("X-Regent-Index")
}

// vmWork is the work of the server alone (the hypervisor role).
func (e *agentEnv) vmWork(t *testing.T, query string) (wire.Work, string) {
	t.Helper()
	r := e.c.For(t).Do("GET", fmt.Sprintf("/v1/agent/work?server_id=%d%s", e.server, query), nil, e.robot).Expect(200)
	var w wire.Item[wire.Work]
	r.JSON(&w)
	return w.Content, r.Header.Get("X-Regent-Index")
}

func TestAgent_RegisterIsIdempotentAndRecordsTheHost(t *testing.T) {
	e := newAgentEnv(t)
	again := e.c.Do("POST", "/v1/agent/register", e.register, e.robot).Expect(200).Content()
	// A 100 ms interval: in milliseconds, and in whole seconds rounded up
	// for older agents (it was 0 s, which agents read as their 10 s default
	// while the controller judged them down after 300 ms); the down-after
	// deadline (1 m) in milliseconds, past which the agent holds its work.
	if uint64(again["server_id"].(float64)) != e.server || again["heartbeat_interval"] != float64(1) || again["heartbeat_interval_ms"] != float64(100) ||
		again["agent_down_after_ms"] != float64(60000) || again["policy_log_seq"] != true {
		t.Errorf("second registration = %v", again)
	}
	s := e.c.Do("GET", apitest.Path("/iaas/server/", e.server), nil, e.f.root).Expect(200).Content()
	if s["hostname"] != "hv1" || s["vtep"] != "192.0.2.10" || s["status"] != "up" || s["cores"] != float64(64) {
		t.Errorf("server after registration: %v", s)
	}
	ifs := e.c.Do("GET", fmt.Sprintf("/iaas/interface/?search[server_id]=%d", e.server), nil, e.f.root).Expect(200).List()
	if len(ifs.Content) != 1 || ifs.Content[0]["mac_address"] != "52:54:00:00:00:01" {
		t.Errorf("interfaces = %v (the reported ones replace the server's)", ifs.Content)
	}
	// bad input: 400 with a code, nothing created
	for _, body := range []map[string]any{
		{"roles": []string{"hypervisor"}},
		{"hostname": "x", "roles": []string{"chef"}},
		{"hostname": "x", "roles": []string{"network"}, "vtep": "not-an-ip"},
		{"hostname": "new-hv", "roles": []string{"hypervisor"}, "capacity": map[string]any{"cpu_cores": 4, "ram_mb": 8192,
			"storage": []any{map[string]any{"type": "NO-SUCH-TYPE", "total_gb": 100, "free_gb": 50}}}},
		{"hostname": "new-hv", "roles": []string{"hypervisor"}},
	} {
		r := e.c.Do("POST", "/v1/agent/register", body, e.robot).Expect(400)
		if r.ErrorCode() == "" && len(r.Err().Errors) == 0 {
			t.Errorf("%v: no error code in %s", body, r)
		}
	}
	if l := e.c.Do("GET", "/iaas/server/?search[hostname]=new-hv", nil, e.f.root).Expect(200).List(); len(l.Content) != 0 {
		t.Errorf("a refused registration created a server: %v", l.Content)
	}
	// another region's robot cannot name this server
	_, other := e.c.CreateRobotToken(e.f.root, e.c.CreateRegion(e.f.root, e.f.n.Unique("other-region")))
	e.c.Do("POST", "/v1/agent/heartbeat", map[string]any{"server_id": e.server}, other).Expect(400)
	e.c.Do("GET", fmt.Sprintf("/v1/agent/work?server_id=%d", e.server), nil, other).Expect(400)
}

func TestAgent_WorkIsCompleteAndBlocks(t *testing.T) {
	e := newAgentEnv(t)
	c, f, x := e.c, e.f, e.x
	w, idx := e.work(t, "")
	if len(w.VMs) != 0 || len(w.Routers) != 0 {
		t.Fatalf("work before any cloud: %+v", w)
	}
	// a blocking query wakes when a cloud is created
	done := make(chan wire.Work, 1)
	go func() {
		w, _ := e.work(t, "&index="+idx+"&wait=60s")
		done <- w
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	project := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 2), f.r.Token(apitest.MemberAdmin)).Expect(201))
	var got wire.Work
	select {
	case got = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the blocking work query did not return after a cloud create")
	}
	t.Logf("blocking work query returned %s after the cloud create", time.Since(start).Round(time.Millisecond))
	if len(got.VMs) != 2 || len(got.Routers) != 1 {
		t.Fatalf("work after cloud create: %d VMs, %d routers", len(got.VMs), len(got.Routers))
	}
	vm := got.VMs[0]
	if vm.State != wire.StateRequested || vm.ProjectID != project || vm.CPU != 2 || vm.RAMMB != 4096 || vm.StorageType != e.stName ||
		len(vm.Storages) != 1 || !vm.Storages[0].Primary || vm.Image.Filename != "noble.qcow2" ||
		vm.Image.Source != "https://cloud-images.example/noble.qcow2" || vm.Image.SHA256 != testImageSHA256 {
		t.Errorf("vm spec = %+v", vm)
	}
	if len(vm.NICs) == 0 || vm.NICs[0].MAC == "" || vm.NICs[0].VNI == 0 || vm.NICs[0].Gateway != "10.0.0.1" ||
		len(vm.NICs[0].Addresses) == 0 || vm.NICs[0].Addresses[0] != "10.0.0.10/24" {
		t.Errorf("vm NICs = %+v", vm.NICs)
	}
	if vm.Metadata.InstanceID != fmt.Sprintf("%d_%d", project, vm.ID) || vm.Metadata.Address != "10.0.0.10" || len(vm.Metadata.PublicKeys) != 1 {
		t.Errorf("vm metadata = %+v", vm.Metadata)
	}
	rt := got.Routers[0]
	if rt.ProjectID != project || rt.PublicIP == "" || rt.PublicGateway == "" || len(rt.Subnets) != 2 || len(rt.FirewallRules) != 2 ||
		len(rt.NAT) != 1 || rt.NAT[0].Private != "10.0.0.10" || len(rt.Metadata) != 2 {
		t.Errorf("router spec = %+v", rt)
	}
	// A NAT address carries its own floating subnet's prefix length (here
	// the router's: one floating subnet).
	if pub, err := netip.ParsePrefix(rt.PublicIP); err != nil || len(rt.NAT) != 1 || rt.NAT[0].PublicPrefixLength != pub.Bits() {
		t.Errorf("NAT %+v: public_prefix_length is not the floating subnet's (%s)", rt.NAT, rt.PublicIP)
	}
	dhcp := 0
	for _, s := range rt.Subnets {
		dhcp += len(s.DHCP)
		if s.VNI == 0 || s.AddressRange == "" {
			t.Errorf("subnet spec %+v", s)
		}
	}
	if dhcp != 2 {
		t.Errorf("router DHCP bindings = %d, want one per VM", dhcp)
	}
	// run_robot lists the same work in CloudCIX's shape
	rr := c.Do("GET", "/iaas/run_robot/", nil, e.robot).Expect(200).Content()
	vms := rr["vms"].(map[string]any)["build"].([]any)
	if len(vms) != 2 || len(rr["project_ids"].([]any)) != 1 || len(rr["virtual_routers"].(map[string]any)["build"].([]any)) != 1 {
		t.Errorf("run_robot = %v", rr)
	}
	// racing claims: exactly one robot wins the build, the other gets 409
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = c.Do("PATCH", apitest.Path("/iaas/vm/", vm.ID), map[string]any{"state": wire.StateBuilding, "expected_state": wire.StateRequested}, e.robot).Status
		}()
	}
	wg.Wait()
	if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
		t.Errorf("racing claims answered %v, want one 200 and one 409", codes)
	}
	c.Do("PATCH", apitest.Path("/iaas/vm/", vm.ID), map[string]any{"state": wire.StateRunning, "expected_state": wire.StateBuilding, "observed_generation": vm.Generation}, e.robot).Expect(200)
	// a spec change bumps the generation, and the agent sees it
	c.Do("PATCH", apitest.Path("/iaas/vm/", vm.ID), map[string]any{"cpu": 4}, f.r.Token(apitest.MemberAdmin)).Expect(200)
	w, _ = e.work(t, "")
	for _, v := range w.VMs {
		if v.ID == vm.ID && (v.Generation <= vm.Generation || v.CPU != 4 || v.State != wire.StateRunningUpdate) {
			t.Errorf("after the spec change: %+v (generation was %d)", v, vm.Generation)
		}
	}
}

// TestAgent_WorkHashWaitsForOwnChanges: with ?hash (the
// X-Regent-Content-Hash of the work it holds) an agent's blocking work
// query answers when its own work changes, not at each of the region's
// writes to the tables a work is built from. Without it, every Melange
// block created anywhere woke every agent, which fetched and synced its
// unchanged work again.
func TestAgent_WorkHashWaitsForOwnChanges(t *testing.T) {
	e := newAgentEnv(t)
	c, f, x := e.c, e.f, e.x
	admin := f.r.Token(apitest.MemberAdmin)
	cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), admin).Expect(201))
	get := func(query string) (wire.Work, uint64, string) {
		t.Helper()
		r := c.For(t).Do("GET", fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d%s", e.server, e.router, query), nil, e.robot).Expect(200)
		var w wire.Item[wire.Work]
		r.JSON(&w)
		idx, err := strconv.ParseUint(r.Header.Get("X-Regent-Index"), 10, 64)
		if err != nil {
			t.Fatalf("X-Regent-Index %q", r.Header.Get("X-Regent-Index"))
		}
		return w.Content, idx, r.Header.Get("X-Regent-Content-Hash")
	}
	w1, idx1, hash1 := get("")
	if len(w1.VMs) != 1 || len(hash1) != 32 {
		t.Fatalf("work %d VMs, hash %q", len(w1.VMs), hash1)
	}
	if _, _, again := get(""); again != hash1 {
		t.Fatalf("the same work hashes to %s and then %s", hash1, again)
	}
	block := 0
	unrelated := func() {
		t.Helper()
		block++
		c.For(t).Do("POST", melangeBlocks(f.r.MemberA), map[string]any{"ip_block": map[string]any{"cidr": fmt.Sprintf("10.231.%d.0/24", block), "type": "private"}}, f.root).Expect(201)
	}

	// Without a hash an unrelated write answers the query, unchanged.
	type answer struct {
		w     wire.Work
		index uint64
		hash  string
		took  time.Duration
	}
	poll := func(query string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			start := time.Now()
			w, idx, h := get(query)
			ch <- answer{w, idx, h, time.Since(start)}
		}()
		return ch
	}
	ch := poll(fmt.Sprintf("&index=%d&wait=60s", idx1))
	time.Sleep(50 * time.Millisecond)
	unrelated()
	a := <-ch
	if a.hash != hash1 || a.index <= idx1 {
		t.Fatalf("after an unrelated write: hash %s (was %s), index %d (was %d)", a.hash, hash1, a.index, idx1)
	}

	unchangedTotal := func() float64 { return metricValue(t, f.n, "regent_http_blocking_unchanged_total") }
	before := unchangedTotal()

	// With it, twenty unrelated writes do not: the query answers at the end
	// of its wait, with the index the tables are at by then.
	const wait = 3 * time.Second
	ch = poll(fmt.Sprintf("&index=%d&wait=%s&hash=%s", a.index, wait, hash1))
	var last uint64
	for range 20 {
		unrelated()
		time.Sleep(2 * api.RecheckEvery) // each could be looked at on its own
	}
	_, last, _ = get("")
	a = <-ch
	if a.took < wait || a.hash != hash1 || a.index < last || len(a.w.VMs) != 1 {
		t.Errorf("with the hash, 20 unrelated writes: answered after %s (wait %s), hash %s, index %d (last write %d), %d VMs",
			a.took.Round(time.Millisecond), wait, a.hash, a.index, last, len(a.w.VMs))
	}
	// A wake-up that finds the work unchanged is counted. The first write
	// wakes the query (its tables moved past the index); from then on it
	// waits on what its work was read from (state.Watch), which these
	// writes do not touch. (Not always none: a lookup that finds nothing is
	// watched through the nearest part of memdb's radix tree, which a write
	// near it in the index changes.) Before, each write woke it.
	unchanged := unchangedTotal() - before
	t.Logf("20 unrelated writes, %v wake-ups that found the work unchanged", unchanged)
	if unchanged < 1 || unchanged > 3 {
		t.Errorf("regent_http_blocking_unchanged_total grew by %v with 20 unrelated writes, want 1 to 3", unchanged)
	}
	if broad := metricValue(t, f.n, "regent_http_blocking_broad_total"); broad != 0 {
		t.Errorf("regent_http_blocking_broad_total %v: a work read from a few rows could not be watched", broad)
	}
	// An index behind the state, content the same: it still waits.
	ch = poll(fmt.Sprintf("&index=%d&wait=60s&hash=%s", idx1, hash1))
	time.Sleep(50 * time.Millisecond)
	// A change to the agent's own work answers at once, with a new hash.
	vm := w1.VMs[0]
	c.Do("PATCH", apitest.Path("/iaas/vm/", vm.ID), map[string]any{"state": wire.StateBuilding, "expected_state": wire.StateRequested}, e.robot).Expect(200)
	select {
	case a = <-ch:
	case <-time.After(50 * time.Second):
		t.Fatal("a blocking work query with the hash did not answer the agent's own VM's change")
	}
	if a.hash == hash1 || len(a.w.VMs) != 1 || a.w.VMs[0].State != wire.StateBuilding {
		t.Errorf("after the VM's change: hash %s (was %s), work %+v", a.hash, hash1, a.w.VMs)
	}
	// A hash the agent already holds for newer work does not wait.
	if _, _, h := get(fmt.Sprintf("&index=%d&wait=60s&hash=%s", idx1, hash1)); h != a.hash {
		t.Errorf("a stale hash: answered %s, want %s at once", h, a.hash)
	}
	// bad input
	for _, h := range []string{"xyz", strings.Repeat("g", 32), hash1 + "0"} {
		r := c.Do("GET", fmt.Sprintf("/v1/agent/work?server_id=%d&index=1&hash=%s", e.server, h), nil, e.robot).Expect(400)
		if r.ErrorCode() != "agent_work_102" {
			t.Errorf("hash %q: %s", h, r)
		}
	}
}

// TestAgent_WorkPollAnswersARestore: a work poll waiting with its hash on
// what its work was read from answers when a snapshot restore replaces the
// state, even one taken before the agent's VM existed (its table indexes
// are then behind the poll's index).
func TestAgent_WorkPollAnswersARestore(t *testing.T) {
	e := newAgentEnv(t)
	c, f, x := e.c, e.f, e.x
	before := c.Do("GET", "/v1/operator/snapshot", nil, f.root).Expect(200).Body
	cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), f.r.Token(apitest.MemberAdmin)).Expect(201))
	url := fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d", e.server, e.router)
	r := c.Do("GET", url, nil, e.robot).Expect(200)
	hash, index := r.Header.Get("X-Regent-Content-Hash"), r.Header.Get("X-Regent-Index")
	// The poll waits on what it read once a write has woken it and found
	// its work the same.
	done := make(chan *apitest.Response, 1)
	go func() {
		done <- c.Unchecked().Do("GET", url+"&wait=60s&index="+index+"&hash="+hash, nil, e.robot)
	}()
	time.Sleep(50 * time.Millisecond)
	c.Do("POST", melangeBlocks(f.r.MemberA), map[string]any{"ip_block": map[string]any{"cidr": "10.232.0.0/24", "type": "private"}}, f.root).Expect(201)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	c.DoHeader("PUT", "/v1/operator/snapshot", before, http.Header{
		"X-Auth-Token": {f.root}, "Content-Type": {"application/octet-stream"}}).Expect(200)
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the work poll did not answer the restore")
	}
	var w wire.Item[wire.Work]
	r.Expect(200).JSON(&w)
	t.Logf("answered %s after the restore with %d VMs", time.Since(start).Round(time.Millisecond), len(w.Content.VMs))
	if len(w.Content.VMs) != 0 || r.Header.Get("X-Regent-Content-Hash") == hash {
		t.Errorf("after restoring a state without the cloud: %d VMs, hash %s (was %s)", len(w.Content.VMs), r.Header.Get("X-Regent-Content-Hash"), hash)
	}
}

func TestAgent_HeartbeatsAndDeadline(t *testing.T) {
	// 3 s: beats 100 ms apart keep it up however slow a request is.
	e := newAgentEnvBeating(t, "100ms", "3s")
	status := func() string {
		return e.c.Do("GET", apitest.Path("/iaas/server/", e.server), nil, e.f.root).Expect(200).Content()["status"].(string)
	}
	// heartbeats keep it up; silence marks it down; a heartbeat brings it back
	beat := map[string]any{"server_id": e.server, "router_id": e.router, "health": "ok"}
	for i := 0; i < 10; i++ {
		e.c.Do("POST", "/v1/agent/heartbeat", beat, e.robot).Expect(204)
		time.Sleep(100 * time.Millisecond)
	}
	if s := status(); s != "up" {
		t.Fatalf("status while beating = %q", s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for status() != "down" {
		if time.Now().After(deadline) {
			t.Fatal("a silent agent was not marked down")
		}
		time.Sleep(100 * time.Millisecond)
	}
	rt := e.c.Do("GET", apitest.Path("/iaas/router/", e.router), nil, e.f.root).Expect(200).Content()
	if rt["status"] != "down" {
		t.Errorf("router status = %v", rt["status"])
	}
	e.c.Do("POST", "/v1/agent/heartbeat", beat, e.robot).Expect(204)
	if s := status(); s != "up" {
		t.Errorf("status after a heartbeat = %q", s)
	}
	// a material capacity change is written; bad heartbeats are 400
	beat["capacity"] = map[string]any{"cpu_cores": 32, "ram_mb": 2048 * 1024, "storage": []any{map[string]any{"type": e.stName, "total_gb": 100000, "free_gb": 1}}}
	e.c.Do("POST", "/v1/agent/heartbeat", beat, e.robot).Expect(204)
	if s := e.c.Do("GET", apitest.Path("/iaas/server/", e.server), nil, e.f.root).Expect(200).Content(); s["cores"] != float64(32) {
		t.Errorf("cores after the capacity change = %v", s["cores"])
	}
	e.c.Do("POST", "/v1/agent/heartbeat", map[string]any{}, e.robot).Expect(400)
	e.c.Do("POST", "/v1/agent/heartbeat", map[string]any{"server_id": e.server, "health": "bad"}, e.robot).Expect(400)
}

func TestAgent_PolicyLog(t *testing.T) {
	e := newAgentEnv(t)
	c, f, x := e.c, e.f, e.x
	project := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), f.r.Token(apitest.MemberAdmin)).Expect(201))
	vr := uint64(c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, f.root).Expect(200).Content()["virtual_router"].(map[string]any)["id"].(float64))
	entry := func(i int, router uint64) map[string]any {
		return map[string]any{"time": fmt.Sprintf("2026-11-22T10:00:%02dZ", i), "virtual_router_id": router, "direction": "in",
			"order": 1, "action": "allow", "protocol": "tcp", "source": "203.0.113.9", "destination": "10.0.0.10", "destination_port": 22}
	}
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router, "policy_log": []any{entry(1, vr), entry(2, vr), entry(3, 999999)}}, e.robot).Expect(204)
	l := c.Do("GET", apitest.Path("/iaas/policy_log/", project), nil, f.r.Token(apitest.MemberUser)).Expect(200).List()
	if len(l.Content) != 2 || l.Content[0]["time"] != "2026-11-22T10:00:02Z" {
		t.Errorf("policy log = %v, want the two entries of the project's router, newest first", l.Content)
	}
	c.Do("GET", apitest.Path("/iaas/policy_log/", project), nil, f.r.Token(apitest.OtherMember)).Expect(404)

	// A refused heartbeat keeps none of its entries (an agent sends them
	// again with the next): here a VPN status without ike_state, and an
	// entry with a string over the bound (the leader keeps entries in
	// memory).
	long := entry(4, vr)
	long["source"] = strings.Repeat("x", wire.PolicyLogMaxString+1)
	for what, beat := range map[string]map[string]any{
		"bad VPN status": {"router_id": e.router, "policy_log": []any{entry(5, vr)}, "vpn_status": []any{map[string]any{"vpn_id": 1, "virtual_router_id": vr}}},
		"long string":    {"router_id": e.router, "policy_log": []any{entry(6, vr), long}},
	} {
		r := c.Do("POST", "/v1/agent/heartbeat", beat, e.robot).Expect(400)
		if what == "long string" && r.ErrorCode() != "agent_heartbeat_107" {
			t.Errorf("%s: %s", what, r)
		}
		if l := c.Do("GET", apitest.Path("/iaas/policy_log/", project), nil, f.root).Expect(200).List(); len(l.Content) != 2 {
			t.Errorf("%s: the refused heartbeat's entries were kept: %v", what, l.Content)
		}
	}
}

// TestAgent_PolicyLogOfAClosedRouterGoes: the leader keeps a virtual
// router's policy log in memory; once the virtual router is closed, its
// router's next heartbeat drops it (the project's listing is then empty),
// while another project's on the same router stays. Before, the log of a
// closed virtual router was kept for the whole raft term.
func TestAgent_PolicyLogOfAClosedRouterGoes(t *testing.T) {
	e := newAgentEnv(t)
	c, f, x := e.c, e.f, e.x
	admin := f.r.Token(apitest.MemberAdmin)
	cloud := func(name string) (project, vr uint64) {
		body := cloudBody(f.n.Unique(name), f.reg, x, 0)
		body["project"].(map[string]any)["grace_period"] = 0
		project = cloudID(c.Do("POST", "/iaas/cloud/", body, admin).Expect(201))
		return project, uint64(c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, f.root).Expect(200).Content()["virtual_router"].(map[string]any)["id"].(float64))
	}
	p1, vr1 := cloud("closing")
	p2, vr2 := cloud("staying")
	entry := func(vr uint64) map[string]any {
		return map[string]any{"time": "2026-11-22T10:00:01Z", "virtual_router_id": vr, "direction": "in",
			"order": 1, "action": "allow", "protocol": "tcp", "source": "203.0.113.9", "destination": "10.0.0.10", "destination_port": 22}
	}
	logOf := func(project uint64) int {
		return len(c.Do("GET", apitest.Path("/iaas/policy_log/", project), nil, f.root).Expect(200).List().Content)
	}
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router, "policy_log": []any{entry(vr1), entry(vr2)}}, e.robot).Expect(204)
	if logOf(p1) != 1 || logOf(p2) != 1 {
		t.Fatalf("policy logs: %d and %d entries, want 1 each", logOf(p1), logOf(p2))
	}
	path := apitest.Path("/iaas/virtual_router/", vr1)
	for _, st := range [][2]int{{1, 2}, {2, 4}} {
		c.Do("PATCH", path, map[string]any{"state": st[1], "expected_state": st[0]}, x.robotR).Expect(200)
	}
	c.Do("PATCH", path, map[string]any{"state": 8}, admin).Expect(200)
	for _, st := range [][2]int{{8, 14}, {14, 9}, {9, 17}} {
		c.Do("PATCH", path, map[string]any{"state": st[1], "expected_state": st[0]}, x.robotR).Expect(200)
	}
	// still being scrubbed: its log stays
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router}, e.robot).Expect(204)
	if logOf(p1) != 1 {
		t.Errorf("the log of a virtual router being scrubbed went")
	}
	c.Do("PATCH", path, map[string]any{"state": 99, "expected_state": 17}, x.robotR).Expect(200)
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router}, e.robot).Expect(204)
	if n := logOf(p1); n != 0 {
		t.Errorf("the closed virtual router's policy log: %d entries, want none", n)
	}
	if n := logOf(p2); n != 1 {
		t.Errorf("the other project's policy log: %d entries, want 1", n)
	}
}

// TestAgent_PolicyLogSentAgain: an agent sends a heartbeat's entries
// again when it could not tell that the heartbeat was taken (its call was
// cancelled or failed over while the leader took it; before, too, when
// the leader kept the entries and then failed the heartbeat's raft
// write); each entry carries its sequence
// number and the heartbeat its epoch, and the tenant sees each entry
// once. A new epoch (the agent restarted) with its numbers from 1 again is
// kept; entries without seq (an older agent) are kept as before. Before,
// the resend was kept twice.
func TestAgent_PolicyLogSentAgain(t *testing.T) {
	e := newAgentEnv(t)
	c, f, x := e.c, e.f, e.x
	project := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), f.r.Token(apitest.MemberAdmin)).Expect(201))
	vr := uint64(c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, f.root).Expect(200).Content()["virtual_router"].(map[string]any)["id"].(float64))
	entry := func(i int, seq uint64) map[string]any {
		m := map[string]any{"time": fmt.Sprintf("2026-11-22T10:00:%02dZ", i), "virtual_router_id": vr, "direction": "in",
			"order": 1, "action": "allow", "protocol": "tcp", "source": "203.0.113.9", "destination": "10.0.0.10", "destination_port": 22}
		if seq != 0 {
			m["seq"] = seq
		}
		return m
	}
	beat := func(epoch string, entries ...any) {
		t.Helper()
		c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router, "policy_log_epoch": epoch, "policy_log": entries}, e.robot).Expect(204)
	}
	times := func() []string {
		t.Helper()
		var out []string
		for _, m := range c.Do("GET", apitest.Path("/iaas/policy_log/", project), nil, f.r.Token(apitest.MemberUser)).Expect(200).List().Content {
			if _, ok := m["seq"]; ok {
				t.Errorf("the listing shows the agent's seq: %v", m)
			}
			out = append(out, m["time"].(string)[17:19]) // seconds
		}
		slices.Reverse(out) // oldest first
		return out
	}
	check := func(what string, want ...string) {
		t.Helper()
		if got := times(); !slices.Equal(got, want) {
			t.Errorf("%s: policy log (seconds, oldest first) = %v, want %v", what, got, want)
		}
	}

	beat("e1", entry(1, 1), entry(2, 2))
	beat("e1", entry(1, 1), entry(2, 2), entry(3, 3)) // the first again, and a new one
	check("after a resend", "01", "02", "03")
	beat("e1", entry(2, 2)) // a late copy of the first call
	check("after a late copy", "01", "02", "03")

	// the agent restarted: a new epoch, numbers from 1 again
	beat("e2", entry(4, 1), entry(5, 2))
	beat("e2", entry(5, 2), entry(6, 3))
	check("a new epoch", "01", "02", "03", "04", "05", "06")

	// an older agent: no seq, no epoch, kept as they come
	beat("", entry(7, 0))
	beat("", entry(7, 0))
	check("entries without seq", "01", "02", "03", "04", "05", "06", "07", "07")

	// a seq without its epoch, or an epoch over 64 bytes, is refused and
	// nothing of the heartbeat is kept
	for what, body := range map[string]map[string]any{
		"seq without epoch": {"router_id": e.router, "policy_log": []any{entry(8, 9)}},
		"long epoch":        {"router_id": e.router, "policy_log_epoch": strings.Repeat("e", wire.PolicyLogMaxString+1), "policy_log": []any{entry(8, 9)}},
	} {
		if r := c.Do("POST", "/v1/agent/heartbeat", body, e.robot).Expect(400); r.ErrorCode() != "agent_heartbeat_108" {
			t.Errorf("%s: %s", what, r)
		}
	}
	check("after refused heartbeats", "01", "02", "03", "04", "05", "06", "07", "07")
}

// What agents report in a leader's first seconds stays: the leader's
// heartbeat loop (here ticking every 3 s) once forgot everything on its
// first tick as leader, after the node had already taken reports.
func TestAgent_ReportsBeforeTheFirstJudgingTickAreKept(t *testing.T) {
	start := time.Now()
	e := newAgentEnvBeating(t, "3s", "9s")
	c, f, x := e.c, e.f, e.x
	project := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), f.r.Token(apitest.MemberAdmin)).Expect(201))
	vr := uint64(c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, f.root).Expect(200).Content()["virtual_router"].(map[string]any)["id"].(float64))
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router, "policy_log": []any{map[string]any{
		"time": "2026-11-22T10:00:01Z", "virtual_router_id": vr, "direction": "in", "order": 1, "action": "allow",
		"protocol": "tcp", "source": "203.0.113.9", "destination": "10.0.0.10", "destination_port": 22}}}, e.robot).Expect(204)
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Logf("set-up took %v: the report may have come after the loop's first tick", d)
	}
	time.Sleep(time.Until(start.Add(3500 * time.Millisecond))) // past the loop's first tick
	if l := c.Do("GET", apitest.Path("/iaas/policy_log/", project), nil, f.root).Expect(200).List(); len(l.Content) != 1 {
		t.Errorf("policy log after the leader's first judging tick = %v, want the one entry reported before it", l.Content)
	}
}

func TestAgent_VPNsInWorkAndVPNStatus(t *testing.T) {
	e := newAgentEnv(t)
	c, f, x := e.c, e.f, e.x
	admin := f.r.Token(apitest.MemberAdmin)
	project := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, f.root).Expect(200).Content()
	vr := uint64(cloud["virtual_router"].(map[string]any)["id"].(float64))
	subnet := cloud["subnets"].([]any)[0].(map[string]any)
	vpn := create(c, admin, "/iaas/vpn/", map[string]any{"virtual_router_id": vr, "ike_gateway_value": "203.0.113.7",
		"ike_pre_shared_key": testPSK, "ike_encryption": "aes-128-cbc,aes-256-cbc",
		"routes": []any{map[string]any{"local_subnet_id": subnet["id"], "remote_subnet": "198.18.7.0/24"}}})

	// the work spec of the router carries the VPN, key included (robots of
	// the region only), with the local subnet as a CIDR
	w, _ := e.work(t, "")
	var spec *wire.VPNSpec
	for _, r := range w.Routers {
		if r.ID == vr && len(r.VPNs) == 1 {
			spec = &r.VPNs[0]
		}
	}
	if spec == nil {
		t.Fatalf("the router spec of VR %d has no VPN: %+v", vr, w.Routers)
	}
	if spec.ID != vpn || spec.PreSharedKey != testPSK || spec.IKEGatewayValue != "203.0.113.7" || spec.IKEEncryption != "aes-128-cbc,aes-256-cbc" ||
		spec.IKELifetime != wire.VPNDefaultIKELifetime || spec.STIFNumber < 10000 ||
		len(spec.Routes) != 1 || spec.Routes[0].LocalSubnet != "10.0.0.0/24" || spec.Routes[0].RemoteSubnet != "198.18.7.0/24" {
		t.Errorf("VPN spec = %+v", *spec)
	}
	// a robot of another region cannot ask for this router's work (nor its keys)
	_, otherRobot := c.CreateRobotToken(f.root, c.CreateRegion(f.root, f.n.Unique("elsewhere")))
	if r := c.Do("GET", fmt.Sprintf("/v1/agent/work?router_id=%d", e.router), nil, otherRobot).Expect(400); strings.Contains(string(r.Body), testPSK) {
		t.Errorf("the refusal carries the key: %s", r.Body)
	}

	status := func(token string) wire.VPNStatus {
		var st wire.Item[wire.VPNStatus]
		c.Do("GET", apitest.Path("/iaas/vpn_status/", vpn), nil, token).Expect(200).JSON(&st)
		return st.Content
	}
	if st := status(admin); st.IKEState != wire.VPNStateUnknown || st.VirtualRouterID != vr || st.Children == nil {
		t.Errorf("status before any report = %+v, want UNKNOWN", st)
	}
	// an agent's report: its own VPN is kept, a VPN of another router is not
	report := []any{
		map[string]any{"vpn_id": vpn, "virtual_router_id": vr, "time": "2026-11-22T10:00:00Z", "ike_state": "ESTABLISHED", "ike_version": 2,
			"local_host": "192.0.2.50", "remote_host": "203.0.113.7", "established_seconds": 42,
			"children": []any{map[string]any{"name": "x-1", "state": "INSTALLED", "local_ts": []string{"10.0.0.0/24"}, "remote_ts": []string{"198.18.7.0/24"},
				"bytes_in": 840, "bytes_out": 840, "packets_in": 10, "packets_out": 10}}},
		map[string]any{"vpn_id": 999999, "virtual_router_id": vr, "ike_state": "ESTABLISHED"},
	}
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router, "vpn_status": report}, e.robot).Expect(204)
	st := status(f.r.Token(apitest.MemberUser))
	if st.IKEState != "ESTABLISHED" || st.Established != 42 || len(st.Children) != 1 || st.Children[0].State != "INSTALLED" || st.Children[0].PacketsIn != 10 {
		t.Errorf("status after the report = %+v", st)
	}
	c.Do("GET", apitest.Path("/iaas/vpn_status/", vpn), nil, f.r.Token(apitest.OtherMember)).Expect(404)
	c.Do("GET", "/iaas/vpn_status/999999/", nil, f.root).Expect(404)
	c.Do("GET", "/iaas/vpn_status/x/", nil, f.root).Expect(404)
	for _, body := range []string{string(c.Do("GET", apitest.Path("/iaas/vpn/", vpn), nil, admin).Expect(200).Body),
		string(c.Do("GET", apitest.Path("/iaas/vpn_status/", vpn), nil, admin).Expect(200).Body)} {
		if strings.Contains(body, testPSK) {
			t.Errorf("a tenant response carries the pre-shared key: %s", body)
		}
	}

	// a report without the VPN means it is gone from the router
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router, "vpn_status": []any{}}, e.robot).Expect(204)
	if st := status(admin); st.IKEState != wire.VPNStateUnknown {
		t.Errorf("status after a report without the VPN = %+v, want UNKNOWN", st)
	}
	// bad reports are 400 and change nothing
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router, "vpn_status": report[:1]}, e.robot).Expect(204)
	bad := c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router,
		"vpn_status": []any{map[string]any{"vpn_id": vpn, "virtual_router_id": vr}}}, e.robot).Expect(400)
	if code := bad.ErrorCode(); code != "agent_heartbeat_105" {
		t.Errorf("error code of a status without ike_state = %q", code)
	}
	if st := status(admin); st.IKEState != "ESTABLISHED" {
		t.Errorf("a refused report changed the status: %+v", st)
	}

	// a VPN with traffic selectors and many routes has a child SA per
	// route: its full report is a heartbeat like any other
	var routes []any
	for i := range 40 {
		routes = append(routes, map[string]any{"local_subnet_id": subnet["id"], "remote_subnet": fmt.Sprintf("198.19.%d.0/24", i)})
	}
	many := create(c, admin, "/iaas/vpn/", map[string]any{"virtual_router_id": vr, "ike_gateway_value": "203.0.113.8",
		"ike_pre_shared_key": testPSK, "traffic_selector": true, "routes": routes})
	var children []any
	for i := range 80 { // each route's child, twice while they rekey
		children = append(children, map[string]any{"name": fmt.Sprintf("c-%d", i), "state": "INSTALLED",
			"local_ts": []string{"10.0.0.0/24"}, "remote_ts": []string{fmt.Sprintf("198.19.%d.0/24", i/2)}})
	}
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"router_id": e.router, "vpn_status": []any{
		map[string]any{"vpn_id": many, "virtual_router_id": vr, "ike_state": "ESTABLISHED", "children": children}}}, e.robot).Expect(204)
}

// A VPN's pre-shared key reaches no log line, even at trace level, on its
// way through create, update, a refused create and the agent's work.
func TestVPNKeyIsNeverLogged(t *testing.T) {
	var logs systemtest.Buffer
	n := apitest.Start(t, apitest.Options{LogLevel: "trace", LogOutput: &logs})
	c := n.Client(t)
	f := newFixture(t, n)
	x := newComputeRegion(c, f.root, f.reg)
	admin := f.r.Token(apitest.MemberAdmin)
	id := create(c, admin, "/iaas/vpn/", vpnBody(f))
	const second = "an0therSECRETkey"
	c.Do("PATCH", apitest.Path("/iaas/vpn/", id), map[string]any{"ike_pre_shared_key": second}, admin).Expect(200)
	b := vpnBody(f)
	b["ike_pre_shared_key"] = "bad=" + testPSK
	c.Do("POST", "/iaas/vpn/", b, admin).Expect(400)
	work := c.Do("GET", "/v1/agent/work?router_id="+fmt.Sprint(x.rt), nil, x.robotR).Expect(200)
	if !strings.Contains(string(work.Body), second) {
		t.Errorf("the router's work does not carry the updated key")
	}
	out := logs.String()
	if out == "" {
		t.Fatal("no log captured: the test proves nothing")
	}
	for _, k := range []string{testPSK, second} {
		if strings.Contains(out, k) {
			t.Errorf("the log carries a pre-shared key:\n%s", out)
		}
	}
}

// TestAgent_SnapshotsAndBackupsInWork: a VM's spec carries its snapshots
// and backups that are not CLOSED (never null), a blocking work query wakes
// on them, run_robot lists them, and the region's robot moves their states
// by compare-and-swap like a VM's (409 on a mismatch, 404 for another
// region's robot).
func TestAgent_SnapshotsAndBackupsInWork(t *testing.T) {
	e := newAgentEnv(t)
	c, f, x := e.c, e.f, e.x
	admin := f.r.Token(apitest.MemberAdmin)
	cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), admin).Expect(201))
	w, _ := e.vmWork(t, "")
	if len(w.VMs) != 1 {
		t.Fatalf("work: %d VMs", len(w.VMs))
	}
	vm := w.VMs[0]
	vmPath := apitest.Path("/iaas/vm/", vm.ID)
	c.Do("PATCH", vmPath, map[string]any{"state": wire.StateBuilding, "expected_state": wire.StateRequested}, e.robot).Expect(200)
	c.Do("PATCH", vmPath, map[string]any{"state": wire.StateRunning, "expected_state": wire.StateBuilding}, e.robot).Expect(200)
	raw := c.Do("GET", fmt.Sprintf("/v1/agent/work?server_id=%d", e.server), nil, e.robot).Expect(200)
	if !strings.Contains(string(raw.Body), `"snapshots":[]`) || !strings.Contains(string(raw.Body), `"backups":[]`) {
		t.Errorf("a VM without snapshots or backups must carry empty lists, not null: %s", raw.Body)
	}

	// A blocking work query wakes on a new snapshot.
	_, idx := e.vmWork(t, "")
	done := make(chan wire.Work, 1)
	go func() {
		w, _ := e.vmWork(t, "&index="+idx+"&wait=60s")
		done <- w
	}()
	time.Sleep(50 * time.Millisecond)
	s1 := create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vm.ID, "name": "first one"})
	select {
	case w = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the blocking work query did not return after a snapshot create")
	}
	if got := w.VMs[0].Snapshots; len(got) != 1 || got[0].ID != s1 || got[0].State != wire.StateRequested || !got[0].Active ||
		got[0].Name != "first one" || got[0].Generation != 1 {
		t.Fatalf("snapshots in the spec: %+v", got)
	}
	b1 := create(c, admin, "/iaas/backup/", map[string]any{"vm_id": vm.ID, "name": "nightly", "repository": 2})

	// run_robot lists both, under the VM's driver.
	rr := c.Do("GET", "/iaas/run_robot/", nil, e.robot).Expect(200).Content()
	ids := func(m map[string]any, bucket, key string) []any { return m[bucket].(map[string]any)[key].([]any) }
	res := rr["resource"].(map[string]any)
	if s := ids(rr, "snapshots", "build"); len(s) != 1 || s[0] != float64(s1) || len(ids(res, "snapshot_kvm", "build")) != 1 {
		t.Errorf("run_robot snapshots: %v", rr["snapshots"])
	}
	if b := ids(rr, "backups", "build"); len(b) != 1 || b[0] != float64(b1) || len(ids(res, "backup_kvm", "build")) != 1 {
		t.Errorf("run_robot backups: %v", rr["backups"])
	}
	if p := rr["project_ids"].([]any); len(p) != 1 {
		t.Errorf("run_robot project_ids: %v", p)
	}

	// Compare-and-swap by the region's robot.
	sp, bp := apitest.Path("/iaas/snapshot/", s1), apitest.Path("/iaas/backup/", b1)
	c.Do("PATCH", sp, map[string]any{"state": wire.StateBuilding, "expected_state": wire.StateRequested}, e.robot).Expect(200)
	if got := c.Do("PATCH", sp, map[string]any{"state": wire.StateBuilding, "expected_state": wire.StateRequested}, e.robot).Expect(409).ErrorCode(); got != "iaas_snapshot_update_004" {
		t.Errorf("a lost claim: %q", got)
	}
	if got := c.Do("PATCH", sp, map[string]any{"state": wire.StateRunning}, e.robot).Expect(400).FieldCode("expected_state"); got != "iaas_snapshot_update_111" {
		t.Errorf("a robot change without expected_state: %q", got)
	}
	_, other := c.CreateRobotToken(f.root, c.CreateRegion(f.root, f.n.Unique("other-region")))
	c.Do("PATCH", sp, map[string]any{"state": wire.StateRunning, "expected_state": wire.StateBuilding}, other).Expect(404)
	c.Do("PATCH", bp, map[string]any{"state": wire.StateBuilding, "expected_state": wire.StateRequested}, other).Expect(404)
	gen := uint64(1)
	s := c.Do("PATCH", sp, map[string]any{"state": wire.StateRunning, "expected_state": wire.StateBuilding, "observed_generation": gen}, e.robot).Expect(200).Content()
	if s["state"] != float64(wire.StateRunning) || s["observed_generation"] != float64(1) {
		t.Errorf("snapshot after the build: %v", s)
	}
	// A failed backup keeps its error; the backup leaves the build bucket.
	c.Do("PATCH", bp, map[string]any{"state": wire.StateBuilding, "expected_state": wire.StateRequested}, e.robot).Expect(200)
	if got := c.Do("PATCH", bp, map[string]any{"state": wire.StateRunning, "expected_state": wire.StateRequested}, e.robot).Expect(409).ErrorCode(); got != "iaas_backup_update_004" {
		t.Errorf("backup CAS mismatch: %q", got)
	}
	b := c.Do("PATCH", bp, map[string]any{"state": wire.StateUnresourced, "expected_state": wire.StateBuilding,
		"error_code": "vm_backup", "error_detail": "backup dir is not writable"}, e.robot).Expect(200).Content()
	if b["state"] != float64(wire.StateUnresourced) || b["error_code"] != "vm_backup" || b["error_detail"] != "backup dir is not writable" || b["time_valid"] != "" {
		t.Errorf("backup after a failure: %v", b)
	}
	// A user cannot send the robot's fields.
	if got := c.Do("PATCH", sp, map[string]any{"state": wire.StateRunningUpdate, "error_code": "x"}, admin).Expect(403).ErrorCode(); got != "iaas_snapshot_update_203" {
		t.Errorf("a user's error_code: %q", got)
	}

	// Revert and delete go through the spec; a CLOSED snapshot leaves it.
	c.Do("PATCH", sp, map[string]any{"state": wire.StateRunningUpdate}, admin).Expect(200)
	w, _ = e.vmWork(t, "")
	if got := w.VMs[0].Snapshots; len(got) != 1 || got[0].State != wire.StateRunningUpdate || got[0].Generation != 2 {
		t.Errorf("snapshot to revert: %+v", got)
	}
	if got := w.VMs[0].Backups; len(got) != 1 || got[0].ID != b1 || got[0].State != wire.StateUnresourced || got[0].Repository != 2 {
		t.Errorf("backups in the spec: %+v", got)
	}
	for _, st := range [][2]int{{wire.StateRunningUpdating, wire.StateRunningUpdate}, {wire.StateRunning, wire.StateRunningUpdating}} {
		c.Do("PATCH", sp, map[string]any{"state": st[0], "expected_state": st[1], "observed_generation": 2}, e.robot).Expect(200)
	}
	c.Do("PATCH", sp, map[string]any{"state": wire.StateScrub, "remove_subtree": true}, admin).Expect(200)
	rr = c.Do("GET", "/iaas/run_robot/", nil, e.robot).Expect(200).Content()
	if s := ids(rr, "snapshots", "scrub"); len(s) != 1 || len(ids(rr, "snapshots", "scrubprep")) != 0 {
		t.Errorf("a snapshot to delete is listed under scrub alone: %v", rr["snapshots"])
	}
	w, _ = e.vmWork(t, "")
	if got := w.VMs[0].Snapshots; len(got) != 1 || got[0].State != wire.StateScrub || !got[0].RemoveSubtree {
		t.Errorf("snapshot to delete: %+v", got)
	}
	for _, st := range [][2]int{{wire.StateScrubbing, wire.StateScrub}, {wire.StateClosed, wire.StateScrubbing}} {
		c.Do("PATCH", sp, map[string]any{"state": st[0], "expected_state": st[1]}, e.robot).Expect(200)
	}
	w, _ = e.vmWork(t, "")
	if got := w.VMs[0].Snapshots; len(got) != 0 {
		t.Errorf("a CLOSED snapshot is still in the spec: %+v", got)
	}
}

// TestRunRobotOrderedByUpdated: run_robot lists projects, and the objects
// of each bucket, ordered by when they were last updated (CloudCIX's order
// by updated), not by id.
func TestRunRobotOrderedByUpdated(t *testing.T) {
	e := newAgentEnv(t)
	c, f, x := e.c, e.f, e.x
	admin := f.r.Token(apitest.MemberAdmin)
	p1 := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), admin).Expect(201))
	p2 := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), admin).Expect(201))
	ids := func(v any) []uint64 {
		var out []uint64
		for _, x := range v.([]any) {
			out = append(out, uint64(x.(float64)))
		}
		return out
	}
	vrOf := func(p uint64) uint64 {
		return num(c.Do("GET", apitest.Path("/iaas/cloud/", p), nil, admin).Expect(200).Content()["virtual_router"].(map[string]any)["id"])
	}
	// Another region's project is its robots' work, not this one's (the
	// listing reads the region's projects from the region index).
	reg2 := c.CreateRegion(f.root, f.n.Unique("region-2"), f.r.MemberA)
	x2 := newComputeRegion(c, f.root, reg2)
	c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), reg2, x2, 1), admin).Expect(201)
	rr := c.Do("GET", "/iaas/run_robot/", nil, e.robot).Expect(200).Content()
	if got := fmt.Sprint(ids(rr["project_ids"])); got != fmt.Sprint([]uint64{p1, p2}) {
		t.Fatalf("project_ids %s, want [%d %d]", got, p1, p2)
	}
	if vms := rr["vms"].(map[string]any)["build"].([]any); len(vms) != 2 {
		t.Errorf("vms to build %v, want this region's two", vms)
	}
	// p1 changes after p2: it goes last, and so does its router.
	c.Do("PATCH", apitest.Path("/iaas/project/", p1), map[string]any{"name": f.n.Unique("renamed")}, admin).Expect(200)
	c.Do("PATCH", apitest.Path("/iaas/virtual_router/", vrOf(p1)), map[string]any{"state": 2, "expected_state": 1}, e.robot).Expect(200)
	c.Do("PATCH", apitest.Path("/iaas/virtual_router/", vrOf(p1)), map[string]any{"state": 4, "expected_state": 2}, e.robot).Expect(200)
	c.Do("PATCH", apitest.Path("/iaas/virtual_router/", vrOf(p2)), map[string]any{"state": 2, "expected_state": 1}, e.robot).Expect(200)
	c.Do("PATCH", apitest.Path("/iaas/virtual_router/", vrOf(p2)), map[string]any{"state": 4, "expected_state": 2}, e.robot).Expect(200)
	c.Do("PATCH", apitest.Path("/iaas/virtual_router/", vrOf(p2)), map[string]any{"state": 10}, admin).Expect(200)
	c.Do("PATCH", apitest.Path("/iaas/virtual_router/", vrOf(p1)), map[string]any{"state": 10}, admin).Expect(200)
	rr = c.Do("GET", "/iaas/run_robot/", nil, e.robot).Expect(200).Content()
	if got := fmt.Sprint(ids(rr["project_ids"])); got != fmt.Sprint([]uint64{p2, p1}) {
		t.Errorf("project_ids after p1 changed: %s, want [%d %d]", got, p2, p1)
	}
	if got := fmt.Sprint(ids(rr["virtual_routers"].(map[string]any)["updaterunning"])); got != fmt.Sprint([]uint64{vrOf(p2), vrOf(p1)}) {
		t.Errorf("virtual_routers.updaterunning %s, want p2's router first", got)
	}
}

// TestAgent_HealthIsShown: the health an agent reports in its heartbeats
// shows on its server and router (agent_health, agent_health_detail):
// unknown from registration until its first report, degraded with the
// reason, ok again without one, and unknown once it is silent past the
// down-after deadline. A server no agent registered for shows none.
func TestAgent_HealthIsShown(t *testing.T) {
	// Down after 5 s: the reads after each heartbeat see its report
	// however slow they are; the silence is polled for below.
	e := newAgentEnvBeating(t, "100ms", "5s")
	c := e.c.For(t)
	show := func(base string, id uint64, query string) (any, any) {
		t.Helper()
		v := c.Do("GET", apitest.Path(base, id)+query, nil, e.f.root).Expect(200).Content()
		return v["agent_health"], v["agent_health_detail"]
	}
	want := func(step string, health, detail any) {
		t.Helper()
		for _, base := range []string{"/iaas/server/", "/iaas/router/"} {
			id := e.server
			if base == "/iaas/router/" {
				id = e.router
			}
			if h, d := show(base, id, ""); h != health || d != detail {
				t.Errorf("%s: %s%d shows agent_health %v, agent_health_detail %v; want %v, %v", step, base, id, h, d, health, detail)
			}
		}
	}
	want("registered, no heartbeat yet", "unknown", nil)
	beat := map[string]any{"server_id": e.server, "router_id": e.router, "health": "degraded", "detail": "libvirt: connection refused"}
	c.Do("POST", "/v1/agent/heartbeat", beat, e.robot).Expect(204)
	want("degraded", "degraded", "libvirt: connection refused")
	// a detail over 1 KiB is cut at a character boundary, not refused
	long := map[string]any{"server_id": e.server, "router_id": e.router, "health": "degraded", "detail": strings.Repeat("é", 700)}
	c.Do("POST", "/v1/agent/heartbeat", long, e.robot).Expect(204)
	if _, d := show("/iaas/server/", e.server, ""); d != strings.Repeat("é", 510)+"…" {
		t.Errorf("a 1400-byte detail is shown as %d bytes: %q", len(fmt.Sprint(d)), d)
	}
	c.Do("POST", "/v1/agent/heartbeat", beat, e.robot).Expect(204)
	// the list shows it too, and a single-node leader serves ?stale=true from its own memory
	l := c.Do("GET", fmt.Sprintf("/iaas/server/?id=%d", e.server), nil, e.f.root).Expect(200).List()
	if len(l.Content) != 1 || l.Content[0]["agent_health"] != "degraded" {
		t.Errorf("server list = %v, want the server, degraded", l.Content)
	}
	if h, _ := show("/iaas/server/", e.server, "?stale=true"); h != "degraded" {
		t.Errorf("stale read on the leader: agent_health %v, want degraded", h)
	}
	beat["health"], beat["detail"] = "ok", ""
	c.Do("POST", "/v1/agent/heartbeat", beat, e.robot).Expect(204)
	want("ok again", "ok", nil)
	// silence past the down-after deadline (5 s): its last word is not its health now
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if h, _ := show("/iaas/server/", e.server, ""); h == "unknown" || time.Now().After(deadline) {
			break // want reports a timeout
		}
	}
	want("silent", "unknown", nil)

	other := c.Do("POST", "/iaas/server/", map[string]any{"region_id": e.f.reg, "type_id": 2, "storage_type_id": e.x.st,
		"cores": 8, "ram": 64, "gb": 1000, "asset_tag": e.f.n.Unique("bare")}, e.f.root).Expect(201).ID()
	if h, d := show("/iaas/server/", other, ""); h != nil || d != nil {
		t.Errorf("a server without an agent shows agent_health %v, %v; want neither", h, d)
	}
}

// TestAgentHealthMetric: the leader's /metrics reports each registered
// agent's health as regent_agent_health{kind,id,hostname,health}, 1 on the
// series of its current health and 0 on the others.
func TestAgentHealthMetric(t *testing.T) {
	e := newAgentEnvBeating(t, "1s", "10s")
	c := e.c.For(t)
	metric := func(kind string, id uint64, health string) string {
		t.Helper()
		m := string(c.Do("GET", "/metrics", nil, "").Expect(200).Body)
		prefix := fmt.Sprintf(`regent_agent_health{health=%q,hostname="hv1",id="%d",kind=%q} `, health, id, kind)
		for _, l := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(l, prefix); ok {
				return v
			}
		}
		return "absent"
	}
	want := func(step, health string) {
		t.Helper()
		for _, k := range []struct {
			kind string
			id   uint64
		}{{"server", e.server}, {"router", e.router}} {
			for _, h := range []string{"ok", "degraded", "unknown"} {
				v := "0"
				if h == health {
					v = "1"
				}
				if got := metric(k.kind, k.id, h); got != v {
					t.Errorf("%s: regent_agent_health{kind=%q,health=%q} = %s, want %s", step, k.kind, h, got, v)
				}
			}
		}
	}
	want("registered", "unknown")
	beat := map[string]any{"server_id": e.server, "router_id": e.router, "health": "degraded", "detail": "nft: ruleset rejected"}
	c.Do("POST", "/v1/agent/heartbeat", beat, e.robot).Expect(204)
	want("degraded", "degraded")
	beat["health"], beat["detail"] = "ok", ""
	c.Do("POST", "/v1/agent/heartbeat", beat, e.robot).Expect(204)
	want("ok", "ok")
}

// TestAgent_HealthOnAFollowerIsUnknown: heartbeats are leader memory, so a
// follower serving ?stale=true shows agent_health unknown (not a guess, not
// an old term's memory) and its /metrics has no regent_agent_health series,
// while the leader shows and exports the report.
func TestAgent_HealthOnAFollowerIsUnknown(t *testing.T) {
	e := newAgentEnv(t)
	c := e.c.For(t)
	follower := startFollower(t, e.f.n, func(cfg *server.Config) {
		cfg.AgentHeartbeat, cfg.AgentDownAfter = "100ms", "1m" // as newAgentEnv: up while the follower catches up
	})
	get := func(base, path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("X-Auth-Token", e.f.root)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"server_id": e.server, "router_id": e.router, "health": "degraded", "detail": "libvirt: gone"}, e.robot).Expect(204)
	if h := c.Do("GET", apitest.Path("/iaas/server/", e.server), nil, e.f.root).Expect(200).Content()["agent_health"]; h != "degraded" {
		t.Fatalf("leader: agent_health %v, want degraded", h)
	}
	// the follower has the server once it has caught up
	path := apitest.Path("/iaas/server/", e.server) + "?stale=true"
	var v wire.Item[map[string]any]
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, b := get(follower.URL(), path)
		if code == 200 && json.Unmarshal(b, &v) == nil && v.Content["status"] == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower never served the server: %d %s", code, b)
		}
	}
	if follower.Cluster().IsLeader() {
		t.Fatal("the joined node leads")
	}
	if v.Content["agent_health"] != "unknown" || v.Content["agent_health_detail"] != nil {
		t.Errorf("follower, ?stale=true: agent_health %v, detail %v; want unknown and none", v.Content["agent_health"], v.Content["agent_health_detail"])
	}
	// without ?stale the follower forwards to the leader, which knows
	if _, b := get(follower.URL(), apitest.Path("/iaas/server/", e.server)); !strings.Contains(string(b), `"agent_health":"degraded"`) {
		t.Errorf("follower, forwarded read: %s, want the leader's degraded", b)
	}
	if _, b := get(follower.URL(), "/metrics"); strings.Contains(string(b), "regent_agent_health{") {
		t.Errorf("the follower exports regent_agent_health")
	}
	if m := string(c.Do("GET", "/metrics", nil, "").Expect(200).Body); !strings.Contains(m, `regent_agent_health{health="degraded",hostname="hv1",id="`) {
		t.Errorf("the leader does not export the degraded agent")
	}
}
