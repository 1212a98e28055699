package systest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// computeRegion creates, through n, a region with a robot token, a
// catalogue, a server, a phantom router with a floating subnet and a
// project with one subnet, and returns what a VM create needs.
type computeRegion struct {
	region, st, img, server, project uint64
	robot                            string
	member                           string // token of the project's member admin
}

func (c *cluster) id(r *resp, what string) uint64 {
	c.t.Helper()
	id, err := createdID(c.must(r, http.StatusCreated, what).Body)
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
	return id
}

func (c *cluster) setupCompute(n *node) *computeRegion {
	c.t.Helper()
	x := &computeRegion{}
	post := func(path string, body any) uint64 { return c.id(c.do(n, http.MethodPost, path, body), "POST "+path) }
	member := post("/membership/member/", map[string]any{"name": "wq-" + randomHex(4)})
	admin := post("/membership/user/", map[string]any{"member_id": member, "username": "wq-admin-" + randomHex(4), "administrator": true})
	r := c.must(c.do(n, http.MethodPost, "/membership/token/", map[string]any{"user_id": admin, "name": "t"}), http.StatusCreated, "member token")
	x.member = tokenSecret(c.t, r.Body)
	x.region = post("/membership/region/", map[string]any{"name": "wq-" + randomHex(4), "customers": []uint64{member}})
	r = c.must(c.do(n, http.MethodPost, "/membership/token/", map[string]any{"kind": "robot", "region_id": x.region, "name": "robot"}), http.StatusCreated, "robot token")
	x.robot = tokenSecret(c.t, r.Body)
	x.st = post("/iaas/storage_type/", map[string]any{"name": "SSD-" + randomHex(3)})
	x.img = post("/iaas/image/", map[string]any{"display_name": "Ubuntu", "server_type_id": 2, "cloud_init": true, "filename": "noble.qcow2"})
	post("/iaas/region_image/", map[string]any{"region_id": x.region, "image_id": x.img})
	x.server = post("/iaas/server/", map[string]any{"region_id": x.region, "type_id": 2, "storage_type_id": x.st, "cores": 4096, "ram": 1 << 20, "gb": 1 << 24})
	asn := post("/iaas/asn/", map[string]any{"member_id": 1, "number": 4_200_000_000 + time.Now().UnixNano()%1_000_000})
	alloc := post("/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "100.64.0.0/16"})
	fs := post("/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "100.64.0.1/16"})
	post("/iaas/router/", map[string]any{"region_id": x.region, "phantom": true, "floating_subnet_ids": []uint64{fs}})
	body := map[string]any{"project": map[string]any{"name": "wq", "region_id": x.region},
		"subnets": []any{map[string]any{"name": "a", "address_range": "10.0.0.1/16"}}, "vms": []any{}}
	cr := c.must(c.doAs(n, x.member, http.MethodPost, "/iaas/cloud/", body), http.StatusCreated, "cloud create")
	var v struct {
		Content struct {
			Project struct {
				ID uint64 `json:"id"`
			} `json:"project"`
			ID uint64 `json:"id"`
		} `json:"content"`
	}
	json.Unmarshal(cr.Body, &v)
	x.project = v.Content.Project.ID
	if x.project == 0 {
		x.project = v.Content.ID
	}
	return x
}

func tokenSecret(t *testing.T, body []byte) string {
	t.Helper()
	var v struct {
		Content struct {
			Token string `json:"token"`
		} `json:"content"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Content.Token == "" {
		t.Fatalf("no token secret in %s", body)
	}
	return v.Content.Token
}

func (x *computeRegion) vmBody(i int) map[string]any {
	return map[string]any{"project_id": x.project, "name": fmt.Sprintf("vm-%d", i), "image_id": x.img, "storage_type_id": x.st,
		"cpu": 1, "ram": 1, "dns": "1.1.1.1", "gateway_subnet": "10.0.0.1/16",
		"storages":     []any{map[string]any{"name": "root", "gb": 10, "primary": true}},
		"ip_addresses": []any{map[string]any{"address": fmt.Sprintf("10.0.%d.%d", 1+i/250, 2+i%250), "nat": false}}}
}

// testAgent is an agent built on pkg/client: it long-polls its work over
// every node in turn (failing over on errors) and builds each requested VM
// (REQUESTED → BUILDING → RUNNING), recording when it first saw each VM and
// every successful claim.
type testAgent struct {
	clients []*client.Client
	server  uint64
	cur     atomic.Int64

	mu     sync.Mutex
	seen   map[uint64]time.Time
	claims map[uint64]int
	done   map[uint64]bool
}

func newTestAgent(urls []string, token string, server uint64) *testAgent {
	a := &testAgent{server: server, seen: map[uint64]time.Time{}, claims: map[uint64]int{}, done: map[uint64]bool{}}
	for _, u := range urls {
		a.clients = append(a.clients, client.New(u, token))
	}
	return a
}

func (a *testAgent) client() *client.Client { return a.clients[int(a.cur.Load())%len(a.clients)] }

func (a *testAgent) failover() { a.cur.Add(1) }

// transient reports errors worth trying another node for.
func transient(err error) bool {
	code := client.StatusCode(err)
	return code == 0 || code >= 500
}

func (a *testAgent) run(ctx context.Context, build bool) {
	var index uint64
	var hash string
	for ctx.Err() == nil {
		// A short wait: a report that failed during the election is
		// retried at the next answer even when nothing else changes.
		w, meta, err := a.client().Agent().Work(ctx, a.server, 0, index, 2*time.Second, hash)
		if err != nil {
			if ctx.Err() == nil {
				a.failover()
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		now := time.Now()
		index, hash = meta.LastIndex, meta.ContentHash
		for _, vm := range w.VMs {
			a.mu.Lock()
			if _, ok := a.seen[vm.ID]; !ok {
				a.seen[vm.ID] = now
			}
			a.mu.Unlock()
			if build {
				a.build(ctx, vm)
			}
		}
	}
}

// build drives one VM through its build, level-triggered by its state.
func (a *testAgent) build(ctx context.Context, vm api.VMSpec) {
	set := func(from, to int) error {
		for attempt := 0; ; attempt++ {
			gen := vm.Generation
			err := a.client().Agent().SetVMState(ctx, vm.ID, client.StateReport{State: to, Expected: from, ObservedGeneration: &gen})
			if err == nil || !transient(err) || attempt > 200 || ctx.Err() != nil {
				return err
			}
			a.failover()
			time.Sleep(50 * time.Millisecond)
		}
	}
	switch vm.State {
	case api.StateRequested:
		if err := set(api.StateRequested, api.StateBuilding); err != nil {
			return // 409: claimed by someone else, or state moved on
		}
		a.mu.Lock()
		a.claims[vm.ID]++
		a.mu.Unlock()
		fallthrough
	case api.StateBuilding:
		if err := set(api.StateBuilding, api.StateRunning); err == nil {
			a.mu.Lock()
			a.done[vm.ID] = true
			a.mu.Unlock()
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// TestWorkQueue_Latency: a test agent long-polls its work; 100 VM creates,
// one after the other; it must see every one. The time from each create's
// response to the agent seeing the VM is reported (issue goal p99 ≤ 100 ms;
// measured, not asserted: scripts/bench/workqueue prints it too).
func TestWorkQueue_Latency(t *testing.T) {
	c := startCluster(t, 1)
	n := c.nodes[0]
	x := c.setupCompute(n)
	a := newTestAgent([]string{n.URL()}, x.robot, x.server)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.run(ctx, false)
	time.Sleep(200 * time.Millisecond)
	const total = 100
	var lat []time.Duration
	for i := 0; i < total; i++ {
		r := c.must(c.doAs(n, x.member, http.MethodPost, "/iaas/vm/", x.vmBody(i)), http.StatusCreated, "vm create")
		created := time.Now()
		id, _ := createdID(r.Body)
		deadline := time.Now().Add(30 * time.Second)
		for {
			a.mu.Lock()
			at, ok := a.seen[id]
			a.mu.Unlock()
			if ok {
				lat = append(lat, max(at.Sub(created), 0))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the agent did not see VM %d within 30 s", id)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	t.Logf("work-queue latency over %d creates: p50 %s, p90 %s, p99 %s, max %s", total,
		percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 0.99), percentile(lat, 1))
}

// TestWorkQueue_LeaderFailover: a test agent builds VMs while they are
// created through the followers; the leader of the 3-node cluster is killed
// half way. Every VM ends RUNNING and was claimed exactly once.
func TestWorkQueue_LeaderFailover(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.leader(30 * time.Second)
	x := c.setupCompute(leader)
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, n.URL())
	}
	a := newTestAgent(urls, x.robot, x.server)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.run(ctx, true)

	const total = 40
	var ids []uint64
	alive := func() []*node {
		var out []*node
		for _, n := range c.nodes {
			if n.running() {
				out = append(out, n)
			}
		}
		return out
	}
	for i := 0; i < total; i++ {
		if i == total/2 {
			t.Logf("killing the leader %s", leader.name)
			leader.kill()
		}
		var id uint64
		for attempt := 0; ; attempt++ {
			nodes := alive()
			n := nodes[attempt%len(nodes)]
			r := c.doAs(n, x.member, http.MethodPost, "/iaas/vm/", x.vmBody(i))
			if r.Err == nil && r.Status == http.StatusCreated {
				id, _ = createdID(r.Body)
				break
			}
			if r.Err == nil && r.Status == http.StatusBadRequest && attempt > 0 {
				// a create whose answer was lost may have committed: the name is taken
				id = c.vmByName(alive()[0], x, fmt.Sprintf("vm-%d", i))
				if id != 0 {
					break
				}
			}
			if attempt > 100 {
				t.Fatalf("create %d: %s", i, r)
			}
			time.Sleep(100 * time.Millisecond)
		}
		ids = append(ids, id)
	}
	// Every VM ends RUNNING, as the cluster says. (The agent's own record
	// can miss a report whose answer was lost with the leader: the retry
	// then gets 409 because the state already moved.)
	vmState := func(id uint64) int {
		r := c.do(alive()[0], http.MethodGet, "/iaas/vm/"+itoa(id)+"/", nil)
		var v struct {
			Content struct {
				State int `json:"state"`
			} `json:"content"`
		}
		if r.Err != nil || r.Status != http.StatusOK || json.Unmarshal(r.Body, &v) != nil {
			return -1
		}
		return v.Content.State
	}
	if err := waitFor(60*time.Second, func() error {
		for _, id := range ids {
			if s := vmState(id); s != api.StateRunning {
				a.mu.Lock()
				claims, seen := a.claims[id], !a.seen[id].IsZero()
				a.mu.Unlock()
				return fmt.Errorf("VM %d in state %d (agent saw it: %v, claims: %d)", id, s, seen, claims)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Exactly one claim per VM committed: the history has one BUILDING row
	// per VM. (The agent's own count can be 0 for a VM whose claim
	// committed but whose answer was lost with the leader; it then finds
	// the VM BUILDING and finishes it.)
	a.mu.Lock()
	for _, id := range ids {
		if a.claims[id] > 1 {
			t.Errorf("VM %d claimed %d times by the agent", id, a.claims[id])
		}
	}
	a.mu.Unlock()
	for _, id := range ids {
		rows, err := c.listCollection(alive()[0], c.token, "/iaas/vm_history/", "search[vm_id]="+itoa(id)+"&search[state]=2")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("VM %d went to BUILDING %d times (history), want once", id, len(rows))
		}
	}
}

func (c *cluster) vmByName(n *node, x *computeRegion, name string) uint64 {
	items, err := c.listCollection(n, c.token, "/iaas/vm/", "search[name]="+name+"&search[project_id]="+itoa(x.project))
	if err != nil || len(items) != 1 {
		return 0
	}
	var v struct {
		ID uint64 `json:"id"`
	}
	if json.Unmarshal(items[0], &v) != nil {
		return 0
	}
	return v.ID
}
