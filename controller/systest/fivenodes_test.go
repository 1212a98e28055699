package systest

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestFiveNodes runs the largest supported cluster through three failures.
// Five voters tolerate two failures: the test kills the leader and a follower,
// keeps writing through the survivors, and waits until the new leader's dead
// server cleanup has removed both dead voters. Three voters are then left,
// which tolerate one more failure, so killing the new leader as well still
// leaves a working cluster of two. A removed node that comes back with its
// old data dir must not disturb the survivors. Every acknowledged create is
// readable from both final survivors, and their listings are identical.
func TestFiveNodes(t *testing.T) {
	c := startClusterWith(t, 5, func(int) []string { return []string{"-dead-server-cleanup", "3s"} })
	var acked []uint64
	write := func(n *node, name string) {
		acked = append(acked, c.create(n, "member", map[string]any{"name": name}))
	}
	for i, n := range c.nodes {
		write(n, fmt.Sprintf("five-before-%d", i))
	}

	// Two failures: the leader and one follower.
	leader := c.leader(30 * time.Second)
	dead := []*node{leader, c.others(leader)[0]}
	killed := time.Now()
	for _, n := range dead {
		n.kill()
	}
	survivors := c.others()
	took := c.firstWrite(survivors[0], "five-after-two", 30*time.Second, &acked)
	t.Logf("2 of 5 killed (%s, %s): first write accepted through %s %s after the kill",
		dead[0].name, dead[1].name, survivors[0].name, took.Round(time.Millisecond))
	for i, n := range survivors {
		write(n, fmt.Sprintf("five-two-down-%d", i))
	}

	// The new leader removes both dead voters: 3 voters are left.
	leader2 := c.leader(30 * time.Second)
	want := []string{survivors[0].name, survivors[1].name, survivors[2].name}
	slices.Sort(want)
	removed := waitFor(30*time.Second, func() error {
		ms, err := c.members(leader2)
		if err != nil {
			return err
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			return fmt.Errorf("members %v, want %v", ids, want)
		}
		return nil
	})
	if removed != nil {
		t.Fatalf("dead servers not removed: %v", removed)
	}
	t.Logf("dead voters removed %s after the kill", time.Since(killed).Round(time.Millisecond))

	// A third failure, the new leader: 2 of the 3 remaining voters are a
	// quorum.
	leader2.kill()
	final := c.others()
	took = c.firstWrite(final[0], "five-after-three", 30*time.Second, &acked)
	t.Logf("3rd failure (%s): first write accepted through %s %s after the kill", leader2.name, final[0].name, took.Round(time.Millisecond))

	// A removed node restarts with its old data. It was dead when it was
	// removed, so its configuration still names five voters: it finds no
	// leader (the survivors reject its pre-votes), is not healthy, and can
	// neither take over nor stop the survivors' writes.
	back := dead[1]
	back.start()
	time.Sleep(3 * time.Second)
	if h := c.do(back, http.MethodGet, "/healthz", nil); h.Err == nil && h.Status == http.StatusOK {
		t.Errorf("removed node %s restarted: /healthz 200, want not healthy: %s", back.name, h)
	} else {
		t.Logf("removed node %s restarted: /healthz %s", back.name, h)
	}
	for i := range 5 {
		write(final[i%2], fmt.Sprintf("five-removed-back-%d", i))
		time.Sleep(200 * time.Millisecond)
	}
	if l := c.leader(30 * time.Second); l == back {
		t.Fatalf("removed node %s became leader", back.name)
	}

	// Nothing acknowledged is lost, and both survivors agree.
	for _, n := range final {
		for _, id := range acked {
			if err := c.waitMember(n, id, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	l := c.leader(30 * time.Second)
	wantListings := c.listings(l, c.token, "")
	for _, n := range final {
		var got map[string]string
		err := waitFor(30*time.Second, func() error {
			got = c.listings(n, c.token, "stale=true")
			for _, svc := range listedServices {
				if got[svc] != wantListings[svc] {
					return fmt.Errorf("%s listing differs", svc)
				}
			}
			return nil
		})
		if err != nil {
			c.sameListings(n.name+" (stale) vs the leader", wantListings, got)
		}
	}
	t.Logf("%d acknowledged creates readable on %s and %s", len(acked), final[0].name, final[1].name)
}

// others returns the running nodes, except the ones given.
func (c *cluster) others(except ...*node) []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.running() && !slices.Contains(except, n) {
			out = append(out, n)
		}
	}
	return out
}

// firstWrite creates members through n until one is acknowledged (each try
// with a new name: an unanswered or "outcome unknown" try may have been
// applied) and returns how long that took. The acknowledged id is appended to
// acked.
func (c *cluster) firstWrite(n *node, prefix string, timeout time.Duration, acked *[]uint64) time.Duration {
	c.t.Helper()
	start := time.Now()
	for i := 0; ; i++ {
		r := c.do(n, http.MethodPost, "/membership/member/", map[string]any{"name": fmt.Sprintf("%s-%d", prefix, i)})
		if r.Err == nil && r.Status == http.StatusCreated {
			id, err := createdID(r.Body)
			if err != nil {
				c.t.Fatalf("create through %s: %v in %s", n.name, err, r.Body)
			}
			*acked = append(*acked, id)
			return time.Since(start)
		}
		if r.Err == nil && r.Status != http.StatusServiceUnavailable {
			c.t.Fatalf("write through %s during the election: want 201 or 503, got %s", n.name, r)
		}
		if time.Since(start) > timeout {
			c.t.Fatalf("no write accepted through %s within %s; last: %s", n.name, timeout, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
