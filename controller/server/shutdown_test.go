package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestShutdownEndsLongPolls: a stopping node does not wait for the long
// polls it serves (agents poll their work for five minutes) or relays to
// the leader: they answer at once, the relayed one 503 (retry elsewhere),
// the local one with what it has, and Shutdown returns without running out
// its time. It used to wait for them until its 15 s ran out, and the
// process then exited 1.
func TestShutdownEndsLongPolls(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	follower := startFollower(t, n)
	index := n.Server.Cluster().AppliedIndex() + 1_000_000
	poll := func(base string) <-chan int {
		got := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/membership/member/?index=%d&wait=5m", base, index), nil)
			req.Header.Set("X-Auth-Token", n.RootToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				got <- 0
				return
			}
			resp.Body.Close()
			got <- resp.StatusCode
		}()
		return got
	}
	local, relayed := poll(n.URL), poll(follower.URL())
	// Both wait: the leader serves two (its own and the follower's relay).
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, n, "regent_http_requests_in_flight") < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the long polls never started")
		}
	}
	stop := func(name string, shutdown func(context.Context) error, answer <-chan int, want int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Errorf("%s: Shutdown: %v", name, err)
		}
		select {
		case code := <-answer:
			if code != want {
				t.Errorf("%s: the long poll answered %d, want %d", name, code, want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: the long poll is still waiting after Shutdown", name)
		}
	}
	stop("follower", follower.Shutdown, relayed, http.StatusServiceUnavailable)
	stop("leader", n.Server.Shutdown, local, http.StatusOK)
}
