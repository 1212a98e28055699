package server_test

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	wire "github.com/regentcloud/regent/pkg/api"
)

// TestAgent_TwoAgentsCannotActAsOneServer: two agents with one hostname
// (hosts cloned from one image) register with different instance ids. The
// second is refused with 409 agent_conflict_001 while the first is heard,
// and changes nothing (the server keeps the first's VTEP); its heartbeats
// and work fetches are refused too. Once the first has been silent past
// the down-after deadline the second registers and holds the server, and
// the first is the one refused. Agents that send no id are never refused.
func TestAgent_TwoAgentsCannotActAsOneServer(t *testing.T) {
	e := newAgentEnvBeating(t, "100ms", "2s")
	const a, b = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	as := e.as
	regB := maps.Clone(e.register)
	regB["vtep"] = "192.0.2.99"
	vtep := func() any {
		return e.c.Do("GET", apitest.Path("/iaas/server/", e.server), nil, e.f.root).Expect(200).Content()["vtep"]
	}
	// the record names its last registrant (a new leader's holder)
	registrant := func() any {
		return e.c.Do("GET", apitest.Path("/iaas/server/", e.server), nil, e.f.root).Expect(200).Content()["agent_id"]
	}
	beat := map[string]any{"server_id": e.server, "router_id": e.router, "health": "ok"}
	workPath := fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d", e.server, e.router)
	conflict := func(r *apitest.Response, what string) {
		t.Helper()
		r.Expect(409)
		if code := r.ErrorCode(); code != wire.ErrAgentConflict {
			t.Errorf("%s: error_code %q, want %s", what, code, wire.ErrAgentConflict)
		}
		if d := r.Err().Detail; !strings.Contains(d, "aaaaaaaa…") || !strings.Contains(d, "(hv1) is held by another agent") || !strings.Contains(d, "data_dir") {
			t.Errorf("%s: detail %q", what, d)
		}
	}

	e.c.DoHeader("POST", "/v1/agent/register", e.register, as(a)).Expect(200)
	if r := registrant(); r != a {
		t.Errorf("the server's agent_id after a's registration = %v", r)
	}
	conflict(e.c.DoHeader("POST", "/v1/agent/register", regB, as(b)), "second registration")
	if v := vtep(); v != "192.0.2.10" {
		t.Errorf("a refused registration changed the server: vtep %v", v)
	}
	conflict(e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(b)), "foreign heartbeat")
	conflict(e.c.DoHeader("GET", workPath, nil, as(b)), "foreign work fetch")
	// the holder goes on; an agent without an id is not refused (rolling upgrade)
	e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(a)).Expect(204)
	e.c.DoHeader("GET", workPath, nil, as(a)).Expect(200)
	e.c.DoHeader("POST", "/v1/agent/register", e.register, as("")).Expect(200)
	e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as("")).Expect(204)
	e.c.DoHeader("GET", workPath, nil, as("")).Expect(200)
	// a malformed id is 400
	if r := e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as("not an id")).Expect(400); r.ErrorCode() != "agent_conflict_002" {
		t.Errorf("malformed id: %s", r.ErrorCode())
	}

	// the first falls silent: refused until the deadline, then taken over
	var r *apitest.Response
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r = e.c.Unchecked().DoHeader("POST", "/v1/agent/register", regB, as(b))
		if r.Status == 200 {
			break
		}
		if r.Status != 409 || time.Now().After(deadline) {
			t.Fatalf("registration after the holder fell silent: %s", r)
		}
	}
	if v := vtep(); v != "192.0.2.99" {
		t.Errorf("vtep after the takeover = %v", v)
	}
	if r := registrant(); r != b {
		t.Errorf("the server's agent_id after b's takeover = %v", r)
	}
	e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(b)).Expect(204)
	r = e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(a)).Expect(409)
	if !strings.Contains(r.Err().Detail, "bbbbbbbb…") {
		t.Errorf("the old holder's heartbeat: %s", r)
	}

	// b falls silent in turn: a's heartbeats and work fetches are still
	// refused, telling it to register, and change nothing; its
	// registration takes the server back with its own VTEP. Before, a
	// heartbeat took over, a never registered again, and the other hosts
	// were given b's VTEP for a's VMs.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r = e.c.Unchecked().DoHeader("POST", "/v1/agent/heartbeat", beat, as(a)).Expect(409)
		if strings.Contains(r.Err().Detail, "register again") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's heartbeat after b's silence: %s", r)
		}
	}
	r = e.c.DoHeader("GET", workPath, nil, as(a)).Expect(409)
	if !strings.Contains(r.Err().Detail, "register again") {
		t.Errorf("a's work fetch after b's silence: %s", r)
	}
	if v := vtep(); v != "192.0.2.99" {
		t.Errorf("a refused heartbeat changed the server: vtep %v", v)
	}
	e.c.DoHeader("POST", "/v1/agent/register", e.register, as(a)).Expect(200)
	if v := vtep(); v != "192.0.2.10" {
		t.Errorf("vtep after a registered again = %v", v)
	}
	e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(a)).Expect(204)
	e.c.DoHeader("GET", workPath, nil, as(a)).Expect(200)
}

// TestAgent_StateReportsOfAnotherAgentAreRefused: while agent A holds the
// server and router, agent B's state reports (the claim of a VM's build
// and of a virtual router's) are refused with 409 agent_conflict_001 and
// change nothing; A's go through, and so do reports without an id (an
// older agent).
func TestAgent_StateReportsOfAnotherAgentAreRefused(t *testing.T) {
	e := newAgentEnv(t)
	const a, b = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	as := e.as
	e.c.DoHeader("POST", "/v1/agent/register", e.register, as(a)).Expect(200)
	e.c.Do("POST", "/iaas/cloud/", cloudBody(e.f.n.Unique("p"), e.f.reg, e.x, 2), e.f.r.Token(apitest.MemberAdmin)).Expect(201)
	w, _ := e.work(t, "")
	if len(w.VMs) != 2 || len(w.Routers) != 1 {
		t.Fatalf("work: %d VMs, %d routers", len(w.VMs), len(w.Routers))
	}
	claim := map[string]any{"state": wire.StateBuilding, "expected_state": wire.StateRequested}
	for _, path := range []string{apitest.Path("/iaas/vm/", w.VMs[0].ID), apitest.Path("/iaas/virtual_router/", w.Routers[0].ID)} {
		r := e.c.DoHeader("PATCH", path, claim, as(b)).Expect(409)
		if r.ErrorCode() != wire.ErrAgentConflict || !strings.Contains(r.Err().Detail, "(hv1) is held by another agent") {
			t.Errorf("PATCH %s by another agent: %s", path, r)
		}
		if st := e.c.Do("GET", path, nil, e.f.root).Expect(200).Content()["state"]; st != float64(wire.StateRequested) {
			t.Errorf("%s: state %v after a refused report", path, st)
		}
	}
	e.c.DoHeader("PATCH", apitest.Path("/iaas/vm/", w.VMs[0].ID), claim, as(a)).Expect(200)
	e.c.DoHeader("PATCH", apitest.Path("/iaas/virtual_router/", w.Routers[0].ID), claim, as("")).Expect(200)
	e.c.DoHeader("PATCH", apitest.Path("/iaas/vm/", w.VMs[1].ID), claim, as("")).Expect(200)
}

// TestAgent_RefusedRegistrationTakesNothingOver: agent A registers and
// falls silent past the down-after deadline; agent B's registration as
// the same host is refused by the state machine (a storage type that does
// not exist, 400). A refused registration changes nothing: A still holds
// the server and router (its heartbeat is 204), B's heartbeat is refused
// (409), and the records keep A's VTEP and agent_id. Before, the claim
// made before the write stayed: B held the server while its record kept
// A's VTEP, and A was refused.
func TestAgent_RefusedRegistrationTakesNothingOver(t *testing.T) {
	e := newAgentEnvBeating(t, "100ms", "2s")
	const a, b = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	as := e.as
	e.c.DoHeader("POST", "/v1/agent/register", e.register, as(a)).Expect(200)
	regB := maps.Clone(e.register)
	regB["vtep"] = "192.0.2.99"
	regB["capacity"] = map[string]any{"cpu_cores": 64, "ram_mb": 2048 * 1024,
		"storage": []any{map[string]any{"type": "NO-SUCH-TYPE", "total_gb": 100000, "free_gb": 90000}}}
	// 409 while a is heard; once a has been silent past the deadline the
	// claim passes and the state machine refuses the storage type
	var r *apitest.Response
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r = e.c.Unchecked().DoHeader("POST", "/v1/agent/register", regB, as(b))
		if r.Status == 400 {
			break
		}
		if r.Status != 409 || time.Now().After(deadline) {
			t.Fatalf("b's registration with an unknown storage type after a's silence: %s", r)
		}
	}
	if code := r.FieldCode("capacity"); code != "agent_register_104" {
		t.Errorf("b's registration: %s, want agent_register_104 on capacity", r)
	}
	beat := map[string]any{"server_id": e.server, "router_id": e.router, "health": "ok"}
	r = e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(b)).Expect(409)
	if r.ErrorCode() != wire.ErrAgentConflict || !strings.Contains(r.Err().Detail, "aaaaaaaa…") {
		t.Errorf("b's heartbeat after its refused registration: %s", r)
	}
	e.c.DoHeader("GET", fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d", e.server, e.router), nil, as(b)).Expect(409)
	e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(a)).Expect(204)
	for _, p := range []string{apitest.Path("/iaas/server/", e.server), apitest.Path("/iaas/router/", e.router)} {
		if rec := e.c.Do("GET", p, nil, e.f.root).Expect(200).Content(); rec["vtep"] != "192.0.2.10" || rec["agent_id"] != a {
			t.Errorf("%s after b's refused registration: vtep %v, agent_id %v", p, rec["vtep"], rec["agent_id"])
		}
	}
	// a goes on, and holds: b's registration is refused while a is heard
	e.c.DoHeader("POST", "/v1/agent/register", e.register, as(a)).Expect(200)
	e.c.DoHeader("POST", "/v1/agent/register", maps.Clone(e.register), as(b)).Expect(409)
}

// TestAgent_RestoreForgetsHolders: the leader's memory of who holds a
// server belongs to the state it is about. A registers; a snapshot is
// taken; A falls silent and B registers in its place; the operator
// restores the snapshot, whose records name A (its VTEP, its agent_id)
// again. The restore keeps the raft term, but the memory starts afresh:
// the records' registrant A holds, as for a new leader, so B's heartbeat
// and work fetch are refused, A's heartbeat is taken, and B's
// registration takes over only once A has been silent past the deadline.
// Before, the memory kept B: B acted on records holding A's VTEP, and A
// was refused for ever.
func TestAgent_RestoreForgetsHolders(t *testing.T) {
	e := newAgentEnvBeating(t, "100ms", "2s")
	const a, b = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	as := e.as
	server := func() map[string]any {
		return e.c.Do("GET", apitest.Path("/iaas/server/", e.server), nil, e.f.root).Expect(200).Content()
	}
	regB := maps.Clone(e.register)
	regB["vtep"] = "192.0.2.99"
	beat := map[string]any{"server_id": e.server, "router_id": e.router, "health": "ok"}
	workPath := fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d", e.server, e.router)
	takeOver := func(what string) time.Duration {
		t.Helper()
		start := time.Now()
		for deadline := start.Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			r := e.c.Unchecked().DoHeader("POST", "/v1/agent/register", regB, as(b))
			if r.Status == 200 {
				return time.Since(start)
			}
			if r.Status != 409 || time.Now().After(deadline) {
				t.Fatalf("%s: b's registration: %s", what, r)
			}
		}
	}

	e.c.DoHeader("POST", "/v1/agent/register", e.register, as(a)).Expect(200)
	snap := e.c.Do("GET", "/v1/operator/snapshot", nil, e.f.root).Expect(200).Body
	takeOver("after a's silence")
	if s := server(); s["agent_id"] != b || s["vtep"] != "192.0.2.99" {
		t.Fatalf("server after b's takeover: agent_id %v, vtep %v", s["agent_id"], s["vtep"])
	}
	e.c.DoHeader("PUT", "/v1/operator/snapshot", snap, http.Header{
		"X-Auth-Token": {e.f.root}, "Content-Type": {"application/octet-stream"}}).Expect(200)
	if s := server(); s["agent_id"] != a || s["vtep"] != "192.0.2.10" {
		t.Fatalf("server after the restore: agent_id %v, vtep %v", s["agent_id"], s["vtep"])
	}
	restored := time.Now()
	for _, r := range []*apitest.Response{
		e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(b)),
		e.c.DoHeader("GET", workPath, nil, as(b)),
	} {
		if r.Expect(409); r.ErrorCode() != wire.ErrAgentConflict || !strings.Contains(r.Err().Detail, "aaaaaaaa…") {
			t.Errorf("b after the restore: %s", r)
		}
	}
	heard := time.Now() // a is heard after this
	e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(a)).Expect(204)
	takeOver("after the restore")
	if since := time.Since(heard); since < 2*time.Second {
		t.Errorf("b took over %s after a was last heard (restored %s ago), before the 2s deadline", since, time.Since(restored))
	}
	if s := server(); s["agent_id"] != b || s["vtep"] != "192.0.2.99" {
		t.Errorf("server after b's second takeover: agent_id %v, vtep %v", s["agent_id"], s["vtep"])
	}
	e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(b)).Expect(204)
	e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(a)).Expect(409)
}

// TestAgent_NewLeaderTakesTheRegistrantAsHolder: a new leader starts with
// an empty memory of holders; until it hears a record's holder, the agent
// the record names as its last registrant (agent_id) holds it as if heard
// when the leader took over. A registers; leadership moves to another node
// (a new term, an empty memory); then B's state report, heartbeat and work
// fetch, arriving first, are refused (409 agent_conflict_001), and A's
// heartbeat and work fetch are taken. Without the seeding B's first call
// made it the holder of a record with A's VTEP.
func TestAgent_NewLeaderTakesTheRegistrantAsHolder(t *testing.T) {
	e := newAgentEnv(t)
	const a, b = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	as := e.as
	e.c.DoHeader("POST", "/v1/agent/register", e.register, as(a)).Expect(200)
	e.c.Do("POST", "/iaas/cloud/", cloudBody(e.f.n.Unique("p"), e.f.reg, e.x, 1), e.f.r.Token(apitest.MemberAdmin)).Expect(201)
	w, _ := e.work(t, "")
	if len(w.VMs) != 1 || len(w.Routers) != 1 {
		t.Fatalf("work: %d VMs, %d routers", len(w.VMs), len(w.Routers))
	}

	follower := startFollower(t, e.f.n, func(cfg *server.Config) { cfg.AgentHeartbeat, cfg.AgentDownAfter = "100ms", "1m" })
	to := e.c.Do("POST", "/v1/operator/leader/transfer", map[string]any{"id": "follower"}, e.f.root).Expect(200).Content()
	if to["id"] != "follower" {
		t.Fatalf("leadership did not move: %v", to)
	}
	for deadline := time.Now().Add(10 * time.Second); !follower.Cluster().IsLeader(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node leadership was handed to does not lead")
		}
	}
	// the old leader forwards every call to the new one; the refusal
	// says that A registered the record and was not heard by this leader
	// (not "last heard Ns ago", N counting from the leader's start)
	held := func(r *apitest.Response, what string) {
		t.Helper()
		r.Expect(409)
		if d := r.Err().Detail; r.ErrorCode() != wire.ErrAgentConflict || !strings.Contains(d, "aaaaaaaa…, which registered it last; not heard since this controller took the lead") ||
			strings.Contains(d, "last heard") {
			t.Errorf("%s of b at the new leader: %s", what, r)
		}
	}
	vmPath, vrPath := apitest.Path("/iaas/vm/", w.VMs[0].ID), apitest.Path("/iaas/virtual_router/", w.Routers[0].ID)
	claim := map[string]any{"state": wire.StateBuilding, "expected_state": wire.StateRequested}
	held(e.c.DoHeader("PATCH", vmPath, claim, as(b)), "a VM's state report")
	held(e.c.DoHeader("PATCH", vrPath, claim, as(b)), "a virtual router's state report")
	beat := map[string]any{"server_id": e.server, "router_id": e.router, "health": "ok"}
	held(e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(b)), "the heartbeat")
	workPath := fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d", e.server, e.router)
	held(e.c.DoHeader("GET", workPath, nil, as(b)), "the work fetch")
	held(e.c.DoHeader("POST", "/v1/agent/register", e.register, as(b)), "the registration")
	for _, p := range []string{vmPath, vrPath} {
		if st := e.c.Do("GET", p, nil, e.f.root).Expect(200).Content()["state"]; st != float64(wire.StateRequested) {
			t.Errorf("%s: state %v after b's refused report", p, st)
		}
	}
	e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(a)).Expect(204)
	e.c.DoHeader("GET", workPath, nil, as(a)).Expect(200)
	e.c.DoHeader("PATCH", vmPath, claim, as(a)).Expect(200)
	// heard now: b's refusal says when
	if r := e.c.DoHeader("POST", "/v1/agent/heartbeat", beat, as(b)).Expect(409); !strings.Contains(r.Err().Detail, "(agent id aaaaaaaa…, last heard ") ||
		strings.Contains(r.Err().Detail, "registered it last") {
		t.Errorf("b's heartbeat once a was heard: %s", r)
	}
}

// TestAgent_WorkPollOfAnAgentThatLostItsHold: agent A's blocking work
// query waits; A falls silent and B registers in its place, which changes
// A's work (B's VTEP) and wakes the query. A no longer holds the server:
// its query answers 409 agent_conflict_001, not work rendered from B's
// record. Before, A got that work and acted on it.
func TestAgent_WorkPollOfAnAgentThatLostItsHold(t *testing.T) {
	e := newAgentEnvBeating(t, "100ms", "2s")
	const a, b = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	as := e.as
	e.c.DoHeader("POST", "/v1/agent/register", e.register, as(a)).Expect(200)
	e.c.Do("POST", "/iaas/cloud/", cloudBody(e.f.n.Unique("p"), e.f.reg, e.x, 1), e.f.r.Token(apitest.MemberAdmin)).Expect(201)
	workPath := fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d", e.server, e.router)
	r := e.c.DoHeader("GET", workPath, nil, as(a)).Expect(200)
	hash, index := r.Header.Get("X-Regent-Content-Hash"), r.Header.Get("X-Regent-Index")
	done := make(chan *apitest.Response, 1)
	go func() {
		done <- e.c.Unchecked().DoHeader("GET", workPath+"&wait=60s&index="+index+"&hash="+hash, nil, as(a))
	}()
	r = e.takeOverWhilePolling(t, b, done)
	if r.Expect(409); r.ErrorCode() != wire.ErrAgentConflict || !strings.Contains(r.Err().Detail, "bbbbbbbb…") {
		t.Errorf("a's work poll after b's takeover: %s", r)
	}
}

// TestAgent_WorkPollWhoseNodeLostTheLead: agent A's blocking work query
// waits on the leader; leadership moves to another node, where A falls
// silent and B registers in its place (its write, replicated, changes A's
// work and wakes the query on the old leader). That node no longer leads:
// its memory of holders is not the one that counts, so the query answers
// 503 regent_cluster_001 with Retry-After (the agent asks again, the next
// controller, which forwards to the leader), not work rendered from B's
// record. Before, Held checked nothing on a node that does not lead and
// the query answered 200 with B's VTEP. A ?stale query asked for the
// node's local state, leader or not: it is answered (200) as on a
// follower, not 503 (before, led was true for it too).
func TestAgent_WorkPollWhoseNodeLostTheLead(t *testing.T) {
	e := newAgentEnvBeating(t, "100ms", "2s")
	const a, b = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	as := e.as
	e.c.DoHeader("POST", "/v1/agent/register", e.register, as(a)).Expect(200)
	e.c.Do("POST", "/iaas/cloud/", cloudBody(e.f.n.Unique("p"), e.f.reg, e.x, 1), e.f.r.Token(apitest.MemberAdmin)).Expect(201)
	follower := startFollower(t, e.f.n, func(cfg *server.Config) { cfg.AgentHeartbeat, cfg.AgentDownAfter = "100ms", "2s" })
	workPath := fmt.Sprintf("/v1/agent/work?server_id=%d&router_id=%d", e.server, e.router)
	r := e.c.DoHeader("GET", workPath, nil, as(a)).Expect(200)
	hash, index := r.Header.Get("X-Regent-Content-Hash"), r.Header.Get("X-Regent-Index")
	done, stale := make(chan *apitest.Response, 1), make(chan *apitest.Response, 1)
	go func() {
		done <- e.c.Unchecked().DoHeader("GET", workPath+"&wait=60s&index="+index+"&hash="+hash, nil, as(a))
	}()
	go func() {
		stale <- e.c.Unchecked().DoHeader("GET", workPath+"&stale=true&wait=60s&index="+index+"&hash="+hash, nil, as(a))
	}()
	time.Sleep(200 * time.Millisecond) // the queries wait
	to := e.c.Do("POST", "/v1/operator/leader/transfer", map[string]any{"id": "follower"}, e.f.root).Expect(200).Content()
	if to["id"] != "follower" {
		t.Fatalf("leadership did not move: %v", to)
	}
	for deadline := time.Now().Add(10 * time.Second); !follower.Cluster().IsLeader(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node leadership was handed to does not lead")
		}
	}
	r = e.takeOverWhilePolling(t, b, done)
	if r.Expect(503); r.ErrorCode() != wire.CodeNoLeader || r.Header.Get("Retry-After") == "" {
		t.Errorf("a's work poll on the node that lost the lead: %s (Retry-After %q)", r, r.Header.Get("Retry-After"))
	}
	// the ?stale one asked for the node's local state, leader or not: it
	// is answered as on a follower
	select {
	case r = <-stale:
	case <-time.After(30 * time.Second):
		t.Fatal("a's stale work poll did not answer b's takeover")
	}
	if r.Status != 200 || r.Header.Get("X-Regent-Content-Hash") == hash {
		t.Errorf("a's stale work poll on the node that lost the lead: %s, want 200 with the changed work", r)
	}
	// asked again, the leader refuses it: b holds
	e.c.DoHeader("GET", workPath, nil, as(a)).Expect(409)
}

// takeOverWhilePolling has agent b register (with another VTEP) once the
// holder fell silent, failing the test if the holder's blocking work
// query, which answers on done, answers before that; it returns that
// query's answer to the takeover.
func (e *agentEnv) takeOverWhilePolling(t *testing.T, b string, done <-chan *apitest.Response) *apitest.Response {
	t.Helper()
	regB := maps.Clone(e.register)
	regB["vtep"] = "192.0.2.99"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := e.c.Unchecked().DoHeader("POST", "/v1/agent/register", regB, e.as(b))
		if r.Status == 200 {
			break
		}
		if r.Status != 409 || time.Now().After(deadline) {
			t.Fatalf("b's registration after a's silence: %s", r)
		}
		select {
		case r := <-done:
			t.Fatalf("a's work poll answered before b took over: %s", r)
		default:
		}
	}
	select {
	case r := <-done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("a's work poll did not answer b's takeover")
		return nil
	}
}
