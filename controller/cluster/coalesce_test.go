package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestCoalescedApply: concurrent Applies on the leader of a 3-node cluster
// share raft entries (fewer entries than commands), every command gets its
// own response, commands the FSM defers (here: the same key twice in one
// entry) are applied in a later entry, and the followers end with the same
// data.
func TestCoalescedApply(t *testing.T) {
	nodes := startCluster(t, 3, func(c *Config) { c.Coalesce = kvCoalescer{} })
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
	want := leader.fsm.all()
	if len(want) != distinct+1 {
		t.Fatalf("leader holds %d keys, want %d", len(want), distinct+1)
	}
	for _, n := range nodes[1:] {
		waitFor(t, 10*time.Second, n.NodeID()+" catching up", func() bool { return fmt.Sprint(n.fsm.all()) == fmt.Sprint(want) })
	}
}
