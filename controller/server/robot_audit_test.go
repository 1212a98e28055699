package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestStateChangeIfMatch: If-Match makes a state change compare-and-swap
// on modified_index (docs/api.md, DESIGN §5: "expected_state, or If-Match
// with the modified index"), for users and robots, on VMs, virtual routers
// and snapshots: a stale index is 409 …_update_002 and changes nothing; a
// robot that sends If-Match needs no expected_state.
func TestStateChangeIfMatch(t *testing.T) {
	_, f, x := computeSetup(t)
	c := f.c.For(t)
	admin := f.r.Token(apitest.MemberAdmin)
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("ifmatch"), f.reg, x, 1), admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, f.root).Expect(200).Content()
	vm := apitest.Path("/iaas/vm/", uint64(cloud["vms"].([]any)[0].(map[string]any)["id"].(float64)))
	vr := apitest.Path("/iaas/virtual_router/", uint64(cloud["virtual_router"].(map[string]any)["id"].(float64)))
	index := func(path string) uint64 {
		return uint64(c.Do("GET", path, nil, f.root).Expect(200).Content()["modified_index"].(float64))
	}
	patch := func(path, token string, ifMatch uint64, body map[string]any) *apitest.Response {
		h := http.Header{"X-Auth-Token": {token}}
		if ifMatch != 0 {
			h.Set("If-Match", fmt.Sprint(ifMatch))
		}
		return c.DoHeader("PATCH", path, body, h)
	}
	stale := func(path, token string, body map[string]any) {
		t.Helper()
		before := c.Do("GET", path, nil, f.root).Expect(200).Content()
		r := patch(path, token, uint64(before["modified_index"].(float64))-1, body).Expect(409)
		if code := r.ErrorCode(); code[len(code)-4:] != "_002" {
			t.Errorf("PATCH %s with a stale If-Match: error_code %q, want …_update_002", path, code)
		}
		after := c.Do("GET", path, nil, f.root).Expect(200).Content()
		if after["state"] != before["state"] || after["modified_index"] != before["modified_index"] {
			t.Errorf("PATCH %s with a stale If-Match changed it: state %v → %v", path, before["state"], after["state"])
		}
	}
	for _, p := range []string{vm, vr} {
		stale(p, x.robotR, map[string]any{"state": 2, "expected_state": 1})
		stale(p, x.robotR, map[string]any{"state": 2})
		// the robot's If-Match alone is its compare-and-swap
		if got := patch(p, x.robotR, index(p), map[string]any{"state": 2}).Expect(200).Content()["state"]; got != float64(2) {
			t.Errorf("%s: robot claim with If-Match: state %v", p, got)
		}
		// without either it is still refused
		patch(p, x.robotR, 0, map[string]any{"state": 4}).Expect(400)
		patch(p, x.robotR, index(p), map[string]any{"state": 4, "expected_state": 2, "observed_generation": 1}).Expect(200)
	}
	// a user's state change: a stale If-Match is 409, the right one works
	stale(vm, admin, map[string]any{"state": 5})
	patch(vm, admin, index(vm), map[string]any{"state": 5}).Expect(200)
	// snapshots go the same way
	patch(vm, x.robotR, 0, map[string]any{"state": 12, "expected_state": 5}).Expect(200)
	patch(vm, x.robotR, 0, map[string]any{"state": 6, "expected_state": 12}).Expect(200)
	patch(vm, admin, 0, map[string]any{"state": 7}).Expect(200)
	patch(vm, x.robotR, 0, map[string]any{"state": 13, "expected_state": 7}).Expect(200)
	patch(vm, x.robotR, 0, map[string]any{"state": 4, "expected_state": 13}).Expect(200)
	vmID := uint64(c.Do("GET", vm, nil, f.root).Expect(200).Content()["id"].(float64))
	sn := apitest.Path("/iaas/snapshot/", create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vmID, "name": "s1"}))
	stale(sn, x.robotR, map[string]any{"state": 2, "expected_state": 1})
	patch(sn, x.robotR, index(sn), map[string]any{"state": 2}).Expect(200)
}

// TestRobotTokenBoundToServerActsForItsServerOnly: a robot token bound to
// a server writes that server's records only (docs/api.md, Roles), so it
// cannot act for a router either: registering the network role, a
// heartbeat or work query naming a router and a virtual router's state
// change are 403 …_204 and change nothing (the router keeps its VTEP, the
// virtual router its state). Its own server's registration, heartbeat and
// work go on.
func TestRobotTokenBoundToServerActsForItsServerOnly(t *testing.T) {
	e := newAgentEnv(t)
	c := e.c.For(t)
	bound := c.Do("POST", "/membership/token/", map[string]any{"kind": "robot", "region_id": e.f.reg, "server_id": e.server,
		"name": e.f.n.Unique("bound")}, e.f.root).Expect(201).Content()["token"].(string)
	project := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(e.f.n.Unique("bound"), e.f.reg, e.x, 1), e.f.r.Token(apitest.MemberAdmin)).Expect(201))
	vr := apitest.Path("/iaas/virtual_router/", uint64(c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, e.f.root).Expect(200).
		Content()["virtual_router"].(map[string]any)["id"].(float64)))
	want204 := func(r *apitest.Response, code string) {
		t.Helper()
		if r.Expect(403); r.ErrorCode() != code {
			t.Errorf("%s: error_code %q, want %q", r, r.ErrorCode(), code)
		}
	}
	hijack := map[string]any{"hostname": "hv1", "roles": []string{"network"}, "vtep": "192.0.2.66", "version": "evil"}
	want204(c.Do("POST", "/v1/agent/register", hijack, bound), "agent_register_204")
	both := map[string]any{}
	for k, v := range e.register {
		both[k] = v
	}
	both["vtep"] = "192.0.2.67"
	want204(c.Do("POST", "/v1/agent/register", both, bound), "agent_register_204")
	want204(c.Do("POST", "/v1/agent/heartbeat", map[string]any{"server_id": e.server, "router_id": e.router}, bound), "agent_heartbeat_204")
	want204(c.Do("GET", fmt.Sprintf("/v1/agent/work?router_id=%d", e.router), nil, bound), "agent_work_204")
	want204(c.Do("GET", fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d", e.server, e.router), nil, bound), "agent_work_204")
	want204(c.Do("PATCH", vr, map[string]any{"state": 2, "expected_state": 1}, bound), "iaas_virtual_router_update_204")
	rt := c.Do("GET", apitest.Path("/iaas/router/", e.router), nil, e.f.root).Expect(200).Content()
	if rt["vtep"] != "192.0.2.10" || rt["agent_version"] != "test" {
		t.Errorf("router after the bound token's refused registrations: vtep %v, agent_version %v", rt["vtep"], rt["agent_version"])
	}
	if s := c.Do("GET", vr, nil, e.f.root).Expect(200).Content()["state"]; s != float64(1) {
		t.Errorf("virtual router state %v after the bound token's refused claim, want 1", s)
	}
	// its own server: registration, heartbeat and work
	hv := map[string]any{}
	for k, v := range e.register {
		hv[k] = v
	}
	hv["roles"] = []string{"hypervisor"}
	if got := c.Do("POST", "/v1/agent/register", hv, bound).Expect(200).Content()["server_id"]; got != float64(e.server) {
		t.Errorf("bound registration: server_id %v, want %d", got, e.server)
	}
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"server_id": e.server}, bound).Expect(204)
	c.Do("GET", fmt.Sprintf("/v1/agent/work?server_id=%d", e.server), nil, bound).Expect(200)
	// the region's token still drives the router
	c.Do("PATCH", vr, map[string]any{"state": 2, "expected_state": 1}, e.robot).Expect(200)
}

// TestRunRobotAckBadBody: POST /iaas/run_robot/ without project_ids is the
// validation error every other service answers (cloudcix-facts §4.6:
// detail "Bad request.", errors by field), and changes nothing.
func TestRunRobotAckBadBody(t *testing.T) {
	e := newAgentEnv(t)
	c := e.c.For(t)
	before := c.Do("GET", "/iaas/run_robot/", nil, e.robot).Expect(200).Header.Get("X-Regent-Index")
	for _, body := range []any{map[string]any{}, map[string]any{"project_ids": nil}} {
		r := c.Do("POST", "/iaas/run_robot/", body, e.robot).Expect(400)
		if d := r.Err().Detail; d != "Bad request." || r.FieldCode("project_ids") != "iaas_run_robot_create_101" {
			t.Errorf("%v: detail %q, project_ids %q; want \"Bad request.\" and iaas_run_robot_create_101", body, d, r.FieldCode("project_ids"))
		}
	}
	c.Do("POST", "/iaas/run_robot/", map[string]any{"project_ids": []int{}}, e.robot).Expect(200)
	if after := c.Do("GET", "/iaas/run_robot/", nil, e.robot).Expect(200).Header.Get("X-Regent-Index"); after != before {
		t.Errorf("acknowledgements moved the run_robot index %s → %s", before, after)
	}
}

// TestAgentCapacityBounds: a registration or heartbeat whose capacity is
// out of bounds (cores, RAM or disk beyond any host, where the server's
// figures overflowed: total_gb 2^64-1 became gb 1) is 400 with a code and
// leaves the server as it was; the agent's real figures are taken.
func TestAgentCapacityBounds(t *testing.T) {
	e := newAgentEnv(t)
	c := e.c.For(t)
	server := apitest.Path("/iaas/server/", e.server)
	before := c.Do("GET", server, nil, e.f.root).Expect(200).Content()
	storage := func(total, free uint64) []any {
		return []any{map[string]any{"type": e.stName, "total_gb": total, "free_gb": free}}
	}
	for _, capacity := range []map[string]any{
		{"cpu_cores": 1 << 62, "ram_mb": 4096, "storage": storage(100, 50)},
		{"cpu_cores": 4, "ram_mb": uint64(1<<64 - 1), "storage": storage(100, 50)},
		{"cpu_cores": 4, "ram_mb": 4096, "storage": storage(1<<64-1, 1)},
		{"cpu_cores": 4, "ram_mb": 4096, "storage": storage(1<<41, 1)},
	} {
		reg := map[string]any{}
		for k, v := range e.register {
			reg[k] = v
		}
		reg["capacity"] = capacity
		if code := c.Do("POST", "/v1/agent/register", reg, e.robot).Expect(400).FieldCode("capacity"); code != "agent_register_108" {
			t.Errorf("register with %v: capacity code %q, want agent_register_108", capacity, code)
		}
		if code := c.Do("POST", "/v1/agent/heartbeat", map[string]any{"server_id": e.server, "capacity": capacity}, e.robot).Expect(400).ErrorCode(); code != "agent_heartbeat_106" {
			t.Errorf("heartbeat with %v: code %q, want agent_heartbeat_106", capacity, code)
		}
	}
	after := c.Do("GET", server, nil, e.f.root).Expect(200).Content()
	for _, k := range []string{"cores", "ram", "gb", "modified_index"} {
		if after[k] != before[k] {
			t.Errorf("server %s %v → %v after refused reports", k, before[k], after[k])
		}
	}
	// a real host's figures are taken
	c.Do("POST", "/v1/agent/heartbeat", map[string]any{"server_id": e.server,
		"capacity": map[string]any{"cpu_cores": 96, "ram_mb": 1 << 20, "storage": storage(20000, 10000)}}, e.robot).Expect(204)
	if got := c.Do("GET", server, nil, e.f.root).Expect(200).Content(); got["cores"] != float64(96) || got["gb"] != float64(20000) {
		t.Errorf("server after a good heartbeat: cores %v gb %v, want 96 and 20000", got["cores"], got["gb"])
	}
}

// TestWorkMetadataCarriesEachVMsDNS: what a VM is told about itself (its
// work spec's metadata, and the router's metadata for it) names its own
// DNS servers, so the seed and the metadata service can configure them,
// even when another VM of the subnet has others.
func TestWorkMetadataCarriesEachVMsDNS(t *testing.T) {
	e := newAgentEnv(t)
	c := e.c.For(t)
	body := cloudBody(e.f.n.Unique("dns"), e.f.reg, e.x, 2)
	body["vms"].([]any)[1].(map[string]any)["dns"] = "9.9.9.9"
	c.Do("POST", "/iaas/cloud/", body, e.f.r.Token(apitest.MemberAdmin)).Expect(201)
	w, _ := e.work(t, "")
	want := map[string]string{"vm-0": "1.1.1.1,8.8.8.8", "vm-1": "9.9.9.9"}
	byAddr := map[string]string{}
	for _, vm := range w.VMs {
		if got := strings.Join(vm.Metadata.DNS, ","); got != want[vm.Name] {
			t.Errorf("VM %s: metadata dns %q, want %q", vm.Name, got, want[vm.Name])
		}
		byAddr[vm.Metadata.Address] = want[vm.Name]
	}
	n := 0
	for _, r := range w.Routers {
		for _, md := range r.Metadata {
			if exp, ok := byAddr[md.Address]; ok {
				n++
				if got := strings.Join(md.DNS, ","); got != exp {
					t.Errorf("router metadata of %s: dns %q, want %q", md.Address, got, exp)
				}
			}
		}
	}
	if len(w.VMs) != 2 || n != 2 {
		t.Fatalf("work has %d VMs and router metadata for %d of them, want 2 and 2", len(w.VMs), n)
	}
}
