package systest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLeaderHandOver stops the leader with SIGTERM while clients write
// through both followers. A stopping leader hands leadership over first,
// and the writes that reach it meanwhile wait and go to the new leader, so
// no write fails. The node then comes back, and POST
// /v1/operator/leader/transfer (sent to a follower) gives it leadership
// again. Last, DELETE /v1/operator/members/{leader} hands over before the
// node is removed.
func TestLeaderHandOver(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.leader(30 * time.Second)
	fs := c.followers(leader)

	w := startWriters(c, fs, 4, "handover")
	time.Sleep(time.Second)
	stopping := time.Now()
	leader.stop() // SIGTERM, and wait for the exit
	t.Logf("leader %s stopped (SIGTERM) in %s", leader.name, time.Since(stopping).Round(time.Millisecond))
	time.Sleep(time.Second)
	w.stop(t, "while the leader stopped")
	if log := leader.tail(64 << 10); !strings.Contains(log, "handed over leadership before stopping") {
		t.Errorf("the stopped leader did not log the hand-over:\n%s", log)
	}
	if l := c.leader(30 * time.Second); l == leader {
		t.Fatalf("%s still leads after it stopped", leader.name)
	}

	// Back, and leader again on request (sent to a follower), while
	// clients write through all three nodes.
	leader.start()
	c.waitLocalReady(leader, 30*time.Second)
	c.waitVoters(fs[0], 3, 30*time.Second)
	w = startWriters(c, c.nodes, 6, "transfer")
	time.Sleep(time.Second)
	r := c.must(c.do(fs[0], http.MethodPost, "/v1/operator/leader/transfer", map[string]any{"id": leader.name}), http.StatusOK, "transfer to "+leader.name)
	if !strings.Contains(string(r.Body), `"id":"`+leader.name+`"`) {
		t.Errorf("transfer answered %s", r.Body)
	}
	time.Sleep(time.Second)
	w.stop(t, "during a transfer")
	if l := c.leader(30 * time.Second); l != leader {
		t.Fatalf("after the transfer %s leads, want %s", l.name, leader.name)
	}

	// Removing the leader through the API (sent to a follower) hands
	// leadership over first, and the new leader removes it: the writers
	// on the other two nodes see no failure and no election stall.
	w = startWriters(c, fs, 4, "remove")
	time.Sleep(time.Second)
	removing := time.Now()
	c.must(c.do(fs[0], http.MethodDelete, "/v1/operator/members/"+leader.name, nil), http.StatusNoContent, "remove the leader "+leader.name)
	t.Logf("leader %s removed in %s", leader.name, time.Since(removing).Round(time.Millisecond))
	time.Sleep(time.Second)
	w.stop(t, "while the leader was removed")
	if log := leader.tail(64 << 10); !strings.Contains(log, "leadership handed over before removing this node") {
		t.Errorf("the removed leader did not log the hand-over:\n%s", log)
	}
	ms, err := c.members(fs[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Errorf("after removing %s the members are %+v, want the other two", leader.name, ms)
	}
	for _, m := range ms {
		if m.ID == leader.name {
			t.Errorf("%s is still a member: %+v", leader.name, ms)
		}
	}
}

// writers create members in a loop through some nodes and keep count.
type writers struct {
	mu       sync.Mutex
	ok       int
	failures []string
	worst    time.Duration
	done     chan struct{}
	wg       sync.WaitGroup
}

// startWriters starts n clients, spread over nodes, creating members named
// prefix-<client>-<i> until stop.
func startWriters(c *cluster, nodes []*node, n int, prefix string) *writers {
	w := &writers{done: make(chan struct{})}
	for i := range n {
		nd := nodes[i%len(nodes)]
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := 0; ; j++ {
				select {
				case <-w.done:
					return
				default:
				}
				start := time.Now()
				r := c.do(nd, http.MethodPost, "/membership/member/", map[string]any{"name": fmt.Sprintf("%s-%d-%d", prefix, i, j)})
				took := time.Since(start)
				w.mu.Lock()
				w.worst = max(w.worst, took)
				if r.Err == nil && r.Status == http.StatusCreated {
					w.ok++
				} else {
					w.failures = append(w.failures, fmt.Sprintf("via %s after %s: %s", nd.name, took.Round(time.Millisecond), r))
				}
				w.mu.Unlock()
			}
		}()
	}
	return w
}

// stop stops the writers and fails the test for every failed write.
func (w *writers) stop(t *testing.T, when string) {
	t.Helper()
	close(w.done)
	w.wg.Wait()
	t.Logf("%s: %d writes, slowest %s, %d failed", when, w.ok, w.worst.Round(time.Millisecond), len(w.failures))
	for i, f := range w.failures {
		if i == 10 {
			t.Errorf("... and %d more", len(w.failures)-10)
			break
		}
		t.Errorf("write failed %s: %s", when, f)
	}
	if w.ok == 0 {
		t.Fatalf("no write succeeded %s", when)
	}
}
