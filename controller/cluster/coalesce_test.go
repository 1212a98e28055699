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
		waitFor(t, 10*time.Second, n.NodeID()+" catching up", func() bool { return fmt.Sprint(n.fsm.all()) == fmt.Sprint(want) })
	}
}
