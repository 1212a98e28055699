package systest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var listedServices = []string{"member", "user", "token", "region"}

// listings returns the canonical JSON of every list in listedServices.
func (c *cluster) listings(n *node, token, query string) map[string]string {
	c.t.Helper()
	out := map[string]string{}
	for _, svc := range listedServices {
		all, err := c.listAll(n, token, svc, query)
		if err != nil {
			c.t.Fatalf("listing %s on %s: %v", svc, n.name, err)
		}
		out[svc] = canonical(all)
	}
	return out
}

func (c *cluster) sameListings(what string, want, got map[string]string) {
	c.t.Helper()
	for _, svc := range listedServices {
		if want[svc] != got[svc] {
			c.t.Errorf("%s: /membership/%s/ differs:\nwant %s\n got %s", what, svc, want[svc], got[svc])
		}
	}
}

// TestSnapshotSaveRestore saves a snapshot of a populated 3-node cluster,
// restores it into a fresh single node and compares the listings; then it
// checks that corrupt snapshots are refused with a 4xx and change nothing.
func TestSnapshotSaveRestore(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.leader(30 * time.Second)
	follower := c.followers(leader)[0]

	// Populate, through every node.
	var memberIDs, userIDs []uint64
	for i := range 6 {
		memberIDs = append(memberIDs, c.create(c.nodes[i%3], "member", map[string]any{"name": fmt.Sprintf("snap-member-%d", i), "self_managed": i%2 == 0}))
	}
	for i := range 6 {
		userIDs = append(userIDs, c.create(c.nodes[i%3], "user", map[string]any{
			"username": fmt.Sprintf("snap-user-%d", i), "member_id": memberIDs[i%len(memberIDs)],
			"email": fmt.Sprintf("u%d@example.com", i), "first_name": "First", "surname": "Last", "administrator": i%3 == 0}))
	}
	for i := range 4 {
		c.create(c.nodes[i%3], "token", map[string]any{"name": fmt.Sprintf("snap-token-%d", i), "user_id": userIDs[i]})
	}
	regionID := c.create(follower, "region", map[string]any{"name": "snap-region-1", "customers": []uint64{memberIDs[0], memberIDs[1]}})
	c.create(leader, "region", map[string]any{"name": "snap-region-2"})
	// An update and a delete, so that indexes and ids are not just a sequence.
	c.must(c.do(follower, http.MethodPatch, "/membership/region/"+itoa(regionID)+"/", map[string]any{"customers": []uint64{memberIDs[2]}}), http.StatusOK, "patch region")
	c.must(c.do(follower, http.MethodDelete, "/membership/user/"+itoa(userIDs[5])+"/", nil), http.StatusNoContent, "delete user")

	want := c.listings(leader, c.token, "")

	// Save through a follower (forwarded to the leader).
	r := c.must(c.do(follower, http.MethodGet, "/v1/operator/snapshot", nil), http.StatusOK, "snapshot save")
	snap := r.Body
	snapPath := filepath.Join(t.TempDir(), "regent.snap")
	if err := os.WriteFile(snapPath, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(snap, []byte("REGENT-SNAPSHOT ")) {
		t.Fatalf("snapshot does not start with the header: %.80q", snap)
	}
	t.Logf("snapshot: %d bytes", len(snap))

	// A fresh single node, restored with its own root token.
	fresh, freshToken := c.startSingle("restore1")
	file, err := os.ReadFile(snapPath)
	if err != nil {
		t.Fatal(err)
	}
	r = c.doAs(fresh, freshToken, http.MethodPut, "/v1/operator/snapshot", file)
	c.must(r, http.StatusOK, "snapshot restore")
	t.Logf("restore: %s", bytes.TrimSpace(r.Body))

	// The token table was replaced: the fresh node's token is gone, the
	// original cluster's root token works.
	if r := c.doAs(fresh, freshToken, http.MethodGet, "/membership/member/", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("fresh node's own root token after restore: want 401, got %s", r)
	}
	got := c.listings(fresh, c.token, "")
	c.sameListings("restored node vs original cluster", want, got)

	// Corrupt snapshots are refused with a 4xx carrying error_code, and
	// change nothing.
	mid := len(file) / 2
	flipped := bytes.Clone(file)
	flipped[mid] ^= 0x01
	garbage := make([]byte, 64<<10)
	rand.Read(garbage)
	cases := []struct {
		name string
		body []byte
	}{
		{"truncated", file[:mid]},
		{"truncated before the trailer", file[:bytes.LastIndexByte(file[:len(file)-1], '\n')+1]},
		{"flipped byte in the middle", flipped},
		{"random garbage", garbage},
		{"empty body", []byte{}},
	}
	before := c.listings(fresh, c.token, "")
	for _, tc := range cases {
		r := c.do(fresh, http.MethodPut, "/v1/operator/snapshot", tc.body)
		if r.Err != nil || r.Status < 400 || r.Status > 499 {
			t.Errorf("%s snapshot: want a 4xx, got %s", tc.name, r)
		} else if r.errorCode() == "" {
			t.Errorf("%s snapshot: no error_code in %s", tc.name, r)
		} else {
			t.Logf("%s snapshot refused: %s", tc.name, r)
		}
		c.sameListings("after the "+tc.name+" snapshot", before, c.listings(fresh, c.token, ""))
		if h := c.do(fresh, http.MethodGet, "/healthz", nil); h.Err != nil || h.Status != http.StatusOK {
			t.Errorf("after the %s snapshot: healthz %s", tc.name, h)
		}
	}

	// The node keeps serving writes, above the restored indexes.
	r = c.must(c.do(fresh, http.MethodPost, "/membership/member/", map[string]any{"name": "after-restore"}), http.StatusCreated, "write after restore")
	idx, _ := strconv.ParseUint(r.Header.Get("X-Regent-Index"), 10, 64)
	var maxRestored uint64
	for _, svc := range listedServices {
		if v := maxIndex(want[svc]); v > maxRestored {
			maxRestored = v
		}
	}
	if idx <= maxRestored {
		t.Errorf("write after restore got raft index %d, not above the restored objects' %d", idx, maxRestored)
	}

	// A snapshot larger than a request body (1 MiB, as a real cluster's
	// is) restores through a follower too: the follower spools it to a
	// file and forwards it to the leader.
	// A leader starved on a loaded 2-core machine may step down during
	// the bulk: its 503s (with Retry-After) are retried, as a client
	// does; the listings are compared after the bulk, so a create whose
	// outcome was unknown and that is retried changes nothing here.
	var wg sync.WaitGroup
	var failed, retried atomic.Int32
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 450 {
				for attempt := 0; ; attempt++ {
					r := c.do(c.nodes[g%3], http.MethodPost, "/membership/member/", map[string]any{"name": fmt.Sprintf("bulk-%d-%d", g, i)})
					if r.Err == nil && r.Status == http.StatusServiceUnavailable && attempt < 20 {
						retried.Add(1)
						time.Sleep(250 * time.Millisecond)
						continue
					}
					if r.Err != nil || r.Status != http.StatusCreated {
						failed.Add(1)
						t.Logf("bulk create: %s", r)
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d bulk creates failed", n)
	}
	t.Logf("bulk: 7,200 creates, %d answers 503 retried", retried.Load())
	big := c.must(c.do(leader, http.MethodGet, "/v1/operator/snapshot", nil), http.StatusOK, "big snapshot save").Body
	if len(big) <= 1<<20 {
		t.Fatalf("the bulk snapshot is only %d bytes: the check proves nothing", len(big))
	}
	before = c.listings(leader, c.token, "")
	r = c.do(follower, http.MethodPut, "/v1/operator/snapshot", big)
	c.must(r, http.StatusOK, "restore of a big snapshot through a follower")
	t.Logf("a %d-byte snapshot restored through a follower: %s", len(big), bytes.TrimSpace(r.Body))
	c.sameListings("after the big restore", before, c.listings(leader, c.token, ""))
}
