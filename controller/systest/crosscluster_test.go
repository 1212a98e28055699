package systest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrossClusterRestore restores a snapshot of cluster A into cluster B,
// whose nodes have the same ids (node1..node3) but other addresses. The
// snapshot carries A's node table; B must keep its own, so that its
// followers forward writes to B's leader, never to A's nodes: writes through
// B's followers land in B, the members listing shows B's addresses, and B
// keeps serving writes once A is gone.
func TestCrossClusterRestore(t *testing.T) {
	a := startCluster(t, 3)
	b := startCluster(t, 3)
	for i := range a.nodes {
		if a.nodes[i].name != b.nodes[i].name {
			t.Fatalf("node ids differ: A %s, B %s", a.nodes[i].name, b.nodes[i].name)
		}
		if a.nodes[i].URL() == b.nodes[i].URL() {
			t.Fatalf("A and B share the address %s", a.nodes[i].URL())
		}
	}
	aLeader := a.leader(30 * time.Second)
	a.create(aLeader, "member", map[string]any{"name": "from-a"})
	snap := a.must(a.do(aLeader, http.MethodGet, "/v1/operator/snapshot", nil), http.StatusOK, "snapshot of A").Body

	bLeader := b.leader(30 * time.Second)
	// While the restore happens and right after it, write through B's
	// followers with A's root token (valid on B once the restore is done):
	// each write lands in B or fails, but never reaches A, even while a
	// follower still holds the restored (A's) node table.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var raced sync.Map // name -> true, for writes that were accepted
	for _, f := range b.followers(bLeader) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("race-via-%s-%d", f.name, i)
				if r := doHTTP(ctx, b.hc, f.URL(), a.token, http.MethodPost, "/membership/member/", map[string]any{"name": name}); r.Err == nil && r.Status == http.StatusCreated {
					raced.Store(name, true)
				}
			}
		}()
	}
	r := b.do(bLeader, http.MethodPut, "/v1/operator/snapshot", snap)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	b.must(r, http.StatusOK, "restore A's snapshot into B")
	t.Logf("restore into B: %s", strings.TrimSpace(string(r.Body)))
	// The token table is A's now: A's root token is B's root token too.
	b.token = a.token

	// aNames returns the names of A's members.
	aNames := func() map[string]bool {
		t.Helper()
		all, err := a.listAll(a.leader(30*time.Second), a.token, "member", "")
		if err != nil {
			t.Fatalf("listing A's members: %v", err)
		}
		out := map[string]bool{}
		for _, raw := range all {
			var m struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(raw, &m) == nil {
				out[m.Name] = true
			}
		}
		return out
	}
	// writeThrough creates a member through n, at most within limit (0: no
	// limit), and checks it is in B (on B's leader) and not in A.
	writeThrough := func(n *node, name string, limit time.Duration, checkA bool) {
		t.Helper()
		start := time.Now()
		r := b.do(n, http.MethodPost, "/membership/member/", map[string]any{"name": name})
		took := time.Since(start)
		if r.Err != nil || r.Status != http.StatusCreated {
			t.Fatalf("write %q through B's %s (after %s): want 201, got %s", name, n.name, took.Round(time.Millisecond), r)
		}
		if limit > 0 && took > limit {
			t.Errorf("write %q through B's %s took %s, want < %s", name, n.name, took.Round(time.Millisecond), limit)
		}
		id, err := createdID(r.Body)
		if err != nil {
			t.Fatalf("write %q: %v in %s", name, err, r.Body)
		}
		g := b.do(bLeader, http.MethodGet, "/membership/member/"+itoa(id)+"/", nil)
		var v struct {
			Content struct {
				Name string `json:"name"`
			} `json:"content"`
		}
		if g.Err != nil || g.Status != http.StatusOK || json.Unmarshal(g.Body, &v) != nil || v.Content.Name != name {
			t.Errorf("write %q through B's %s (id %d) is not on B's leader: %s", name, n.name, id, g)
		}
		if checkA && aNames()[name] {
			t.Errorf("write %q through B's %s landed in cluster A", name, n.name)
		}
	}

	accepted, inA := 0, aNames()
	raced.Range(func(k, _ any) bool {
		accepted++
		if inA[k.(string)] {
			t.Errorf("write %q through one of B's followers, racing the restore, landed in cluster A", k)
		}
		return true
	})
	t.Logf("%d writes racing the restore were accepted", accepted)
	for _, f := range b.followers(bLeader) {
		writeThrough(f, "b-after-restore-via-"+f.name, 0, true)
	}

	// B's members listing shows B's addresses, not A's.
	ms, err := b.members(bLeader)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(b.nodes) {
		t.Errorf("B's members: want %d, got %+v", len(b.nodes), ms)
	}
	for _, m := range ms {
		n := b.byName(m.ID)
		if n == nil {
			t.Errorf("B's members list an unknown node %+v", m)
			continue
		}
		if m.HTTPAddr != n.URL() {
			t.Errorf("B's member %s: http_addr %q, want B's %q (A's is %q)", m.ID, m.HTTPAddr, n.URL(), a.byName(m.ID).URL())
		}
	}

	// With A gone entirely, B's followers still forward writes promptly.
	for _, n := range a.nodes {
		n.kill()
	}
	for _, f := range b.followers(bLeader) {
		for i := range 2 {
			writeThrough(f, fmt.Sprintf("b-without-a-via-%s-%d", f.name, i), 2*time.Second, false)
		}
	}
}
