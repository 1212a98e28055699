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
// again.
func TestLeaderHandOver(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.leader(10 * time.Second)
	fs := c.followers(leader)

	var (
		mu       sync.Mutex
		ok       int
		failures []string
		worst    time.Duration
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for i := range 4 {
		n := fs[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				r := c.do(n, http.MethodPost, "/membership/member/", map[string]any{"name": fmt.Sprintf("handover-%d-%d", i, j)})
				took := time.Since(start)
				mu.Lock()
				worst = max(worst, took)
				if r.Err == nil && r.Status == http.StatusCreated {
					ok++
				} else {
					failures = append(failures, fmt.Sprintf("via %s after %s: %s", n.name, took.Round(time.Millisecond), r))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	stopping := time.Now()
	leader.stop() // SIGTERM, and wait for the exit
	t.Logf("leader %s stopped (SIGTERM) in %s", leader.name, time.Since(stopping).Round(time.Millisecond))
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d writes through the followers, slowest %s, %d failed", ok, worst.Round(time.Millisecond), len(failures))
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Errorf("write failed while the leader stopped: %s", f)
	}
	if ok == 0 {
		t.Fatal("no write succeeded")
	}
	if log := leader.tail(64 << 10); !strings.Contains(log, "handed over leadership before stopping") {
		t.Errorf("the stopped leader did not log the hand-over:\n%s", log)
	}
	if l := c.leader(10 * time.Second); l == leader {
		t.Fatalf("%s still leads after it stopped", leader.name)
	}

	// Back, and leader again on request.
	leader.start()
	c.waitLocalReady(leader, 30*time.Second)
	c.waitVoters(fs[0], 3, 30*time.Second)
	r := c.must(c.do(fs[0], http.MethodPost, "/v1/operator/leader/transfer", map[string]any{"id": leader.name}), http.StatusOK, "transfer to "+leader.name)
	if !strings.Contains(string(r.Body), `"id":"`+leader.name+`"`) {
		t.Errorf("transfer answered %s", r.Body)
	}
	if l := c.leader(10 * time.Second); l != leader {
		t.Errorf("after the transfer %s leads, want %s", l.name, leader.name)
	}
	c.create(fs[1], "member", map[string]any{"name": "handover-after"})
}
