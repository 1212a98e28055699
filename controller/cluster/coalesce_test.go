package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCoalescedApply: concurrent Applies on the leader of a 3-node cluster
// share raft entries (fewer entries than commands), every command gets its
// own response, commands the FSM defers (here: the same key twice in one
// entry) are applied in a later entry, and the followers end with the same
// data.
func TestCoalescedApply(t *testing.T) {
	reg := prometheus.NewRegistry()
	nodes := startCluster(t, 3, func(c *Config) {
		c.Coalesce = kvCoalescer{}
		if c.NodeID == "n1" {
			c.Registerer = reg
		}
	})
	leader := nodes[0]
	before := leader.LastIndex()

	const distinct, hot = 300, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	hotIdx := map[uint64]bool{}
	errs := make(chan error, distinct+hot)
	for i := range distinct + hot {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
			if i >= distinct {
				k = "hot"
			}
			resp, idx, err := leader.Apply(ctxT(t, 20*time.Second), cmd(k, v))
			if err != nil {
				errs <- fmt.Errorf("%s: %v", k, err)
				return
			}
			r, ok := resp.(kvResult)
			if !ok || r.Index != idx {
				errs <- fmt.Errorf("%s: response %#v at index %d", k, resp, idx)
				return
			}
			if k == "hot" {
				mu.Lock()
				if hotIdx[idx] {
					errs <- fmt.Errorf("two writes of the hot key at index %d", idx)
				}
				hotIdx[idx] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries := leader.LastIndex() - before
	t.Logf("%d commands in %d raft entries", distinct+hot, entries)
	if entries >= distinct+hot {
		t.Errorf("%d entries for %d concurrent commands: nothing was coalesced", entries, distinct+hot)
	}
	// Every command went through the group commit: the histogram counts the
	// commands of each entry, deferred ones once per entry they were in.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum, deferred float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "regent_raft_entry_commands":
			sum = mf.GetMetric()[0].GetHistogram().GetSampleSum()
		case "regent_raft_commands_deferred_total":
			deferred = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Logf("commands in entries %v, deferred %v", sum, deferred)
	if sum != distinct+hot+deferred || deferred == 0 {
		t.Errorf("metrics: %v commands in entries, %v deferred; want %d + deferred, some deferred", sum, deferred, distinct+hot)
	}
	want := leader.fsm.all()
	if len(want) != distinct+1 {
		t.Fatalf("leader holds %d keys, want %d", len(want), distinct+1)
	}
	for _, n := range nodes[1:] {
		waitFor(t, 30*time.Second, n.NodeID()+" catching up", func() bool { return fmt.Sprint(n.fsm.all()) == fmt.Sprint(want) })
	}
}

// TestLinger: under load the next entry waits until 7/8 of the recent
// concurrency is queued, at most linger; with few writers or a stale
// estimate it does not wait, and stop ends the wait.
func TestLinger(t *testing.T) {
	// The estimate's age is set when lingerLocked is called, not when
	// the batcher is made: a goroutine started late on a loaded machine
	// would otherwise find a fresh estimate (age 0) already older than
	// concurrencyWindow (250 ms) and return at once.
	ages := map[*batcher]time.Duration{}
	mk := func(linger time.Duration, peak, queued int, age time.Duration) *batcher {
		b := &batcher{max: DefaultMaxCoalesce, linger: linger, kick: make(chan struct{}, 1), peak: peak}
		for range queued {
			b.queue = append(b.queue, &call{})
		}
		ages[b] = age
		return b
	}
	stop := make(chan struct{})
	start := func(b *batcher) <-chan bool {
		out := make(chan bool, 1)
		age := ages[b]
		go func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.peakAt = time.Now().Add(-age)
			out <- b.lingerLocked(stop)
		}()
		return out
	}
	returned := func(c <-chan bool, within time.Duration) (bool, bool) {
		select {
		case ok := <-c:
			return true, ok
		case <-time.After(within):
			return false, false
		}
	}
	for _, tc := range []struct {
		name string
		b    *batcher
	}{
		{"few writers", mk(time.Hour, lingerMin-1, 1, 0)},
		{"target already queued", mk(time.Hour, 32, 28, 0)},
		{"stale estimate", mk(time.Hour, 32, 1, time.Second)},
		{"linger off", mk(0, 32, 1, 0)},
		{"an entry still in flight", func() *batcher { b := mk(time.Hour, 32, 1, 0); b.flying = 1; return b }()},
	} {
		if done, ok := returned(start(tc.b), 10*time.Second); !done || !ok {
			t.Errorf("%s: waited", tc.name)
		}
	}

	// Waits for the 28th command (7/8 of 32), not one less.
	b := mk(time.Hour, 32, 1, 0)
	c := start(b)
	add := func(n int) {
		for range n {
			b.mu.Lock()
			b.queue = append(b.queue, &call{})
			b.mu.Unlock()
			b.poke()
		}
	}
	add(26)
	if done, _ := returned(c, 100*time.Millisecond); done {
		t.Fatal("returned with 27 of 28 commands queued")
	}
	add(1)
	if done, ok := returned(c, 10*time.Second); !done || !ok {
		t.Fatal("did not return once 28 commands were queued")
	}
	if len(b.queue) != 28 {
		t.Errorf("queue %d", len(b.queue))
	}

	// The linger runs out: it returns with what is queued.
	b = mk(20*time.Millisecond, 32, 1, 0)
	if done, ok := returned(start(b), 10*time.Second); !done || !ok {
		t.Error("did not return when the linger ran out")
	}

	// stop ends the wait.
	c = start(mk(time.Hour, 32, 1, 0))
	close(stop)
	if done, ok := returned(c, 10*time.Second); !done || ok {
		t.Errorf("after stop: returned %v, ok %v", done, ok)
	}
}
