package fsm

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// probeType is a command type no release uses: the probe handler below
// records what readers of the store see while a batch is being applied.
const probeType MessageType = 200

func encoded(t testing.TB, typ MessageType, payload any) []byte {
	t.Helper()
	c, err := NewCommand(typ, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Actor{}, payload)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestBatchIsOneCommit: the commands of a coalesced entry in which one
// fails become visible together, in one commit at the entry's index, never
// as the commands before the failure first and the others later at the
// same index (which a blocking query at that index, or a zone serial,
// could not tell apart). A probe command after the failing one sees the
// store's committed state: the member created before the failure is not
// in it yet.
func TestBatchIsOneCommit(t *testing.T) {
	f := New(state.New(), hclog.NewNullLogger(), nil)
	var seen []string
	f.handlers[probeType] = func(tx *state.Txn, c *Command) (any, error) {
		r := f.store.Read()
		var names []string
		for _, m := range r.MemberList() {
			names = append(names, m.Name)
		}
		seen = append(seen, fmt.Sprintf("index %d members %v", r.MaxIndex(state.Members), names))
		return nil, nil
	}
	create := func(name string) []byte { return encoded(t, MemberCreateType, &api.Member{Name: name}) }
	out := f.ApplyBatch([]*raft.Log{{Index: 5, Type: raft.LogCommand, Data: EncodeBatch([][]byte{
		create("a"),
		create("a"), // a duplicate name: fails
		encoded(t, probeType, struct{}{}),
		create("b"),
	})}})
	rs := Coalescer{}.Split(out[0], 4)
	if rs[0].(Result).Err != nil || rs[1].(Result).Err == nil || rs[3].(Result).Err != nil {
		t.Fatalf("results %+v", rs)
	}
	// The probe ran once per attempt of the batch that reached it; every
	// time, nothing of the batch was committed yet.
	for _, s := range seen {
		if s != "index 0 members []" {
			t.Fatalf("a reader saw part of the batch: %v", seen)
		}
	}
	if len(seen) == 0 {
		t.Fatal("the probe never ran")
	}
	r := f.store.Read()
	if got := fmt.Sprint(r.MaxIndex(state.Members), len(r.MemberList())); got != "5 2" {
		t.Fatalf("after the batch: index and members %s, want 5 2", got)
	}
}

// BenchmarkApplyBatchFailures: the cost of a failing command in a batch of
// MaxCoalesce (256) member creates. Each failure applies the successful
// commands before it again, so "none" is the batch alone, "one" adds one
// failure in the middle, and "every-other" is the worst case: 128 failures
// interleaved with 128 successes.
func BenchmarkApplyBatchFailures(b *testing.B) {
	for _, mode := range []string{"none", "one", "every-other"} {
		b.Run(mode, func(b *testing.B) {
			cmds := make([][]byte, 256)
			for i := range cmds {
				name := fmt.Sprintf("m%d", i)
				if (mode == "one" && i == 128) || (mode == "every-other" && i%2 == 1) {
					name = "m0" // taken by the first: fails
				}
				cmds[i] = encoded(b, MemberCreateType, &api.Member{Name: name})
			}
			entry := EncodeBatch(cmds)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				f := New(state.New(), hclog.NewNullLogger(), nil)
				b.StartTimer()
				f.ApplyBatch([]*raft.Log{{Index: 2, Type: raft.LogCommand, Data: entry}})
			}
		})
	}
}
