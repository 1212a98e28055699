package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

func memberCmd(t *testing.T, typ fsm.MessageType, m api.Member) []byte {
	return command(t, typ, &m)
}

// bootstrapped returns an FSM holding member 1 (CIX) and the index used.
func bootstrapped(t *testing.T) (*fsm.FSM, uint64) {
	t.Helper()
	f := newFSM()
	r := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: command(t, fsm.BootstrapType, fsm.BootstrapPayload{
		MemberName: "CIX", Username: "root", Token: &state.TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser, Prefix: "rgt_abcd"}, Hash: "00"}})}).(fsm.Result)
	if r.Err != nil {
		t.Fatalf("bootstrap: %v", r.Err)
	}
	return f, 1
}

func TestBatchEntryRoundTrip(t *testing.T) {
	cmds := [][]byte{{1, 2}, bytes.Repeat([]byte{7}, 300), {byte(fsm.NoopType), '{', '}'}}
	got, err := fsm.DecodeBatch(fsm.EncodeBatch(cmds))
	if err != nil || len(got) != len(cmds) {
		t.Fatalf("DecodeBatch = %d commands, %v", len(got), err)
	}
	for i := range cmds {
		if !bytes.Equal(got[i], cmds[i]) {
			t.Fatalf("command %d: %x, want %x", i, got[i], cmds[i])
		}
	}
	for _, bad := range [][]byte{nil, {byte(fsm.BatchType)}, {byte(fsm.BatchType), 5, 1}, {byte(fsm.BatchType), 0xff}, {2, 0}} {
		if _, err := fsm.DecodeBatch(bad); err == nil {
			t.Errorf("DecodeBatch(%x) accepted", bad)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(fsm.EncodeBatch([][]byte{{1, 2, 3}, {4}}))
	f.Add([]byte{byte(fsm.BatchType), 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := fsm.DecodeBatch(data)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes (lengths are canonical
		// uvarints, or the decode would have consumed different bytes).
		if again, err := fsm.DecodeBatch(fsm.EncodeBatch(cmds)); err != nil || len(again) != len(cmds) {
			t.Fatalf("round trip of %d commands: %d, %v", len(cmds), len(again), err)
		}
	})
}

// TestCoalescedEntry: the commands of one BatchType entry are applied in
// order at the entry's index with one result each; a failing command
// changes nothing and does not stop the others; a command that would change
// an object an earlier command of the entry wrote is deferred (not applied,
// Coalescer.Retry) so that no two versions of an object share a
// modified_index.
func TestCoalescedEntry(t *testing.T) {
	f, _ := bootstrapped(t)
	entry := fsm.EncodeBatch([][]byte{
		memberCmd(t, fsm.MemberCreateType, api.Member{Name: "a"}),
		memberCmd(t, fsm.MemberCreateType, api.Member{Name: "b"}),
		memberCmd(t, fsm.MemberCreateType, api.Member{Name: "a"}),                         // duplicate name: 4xx
		memberCmd(t, fsm.MemberUpdateType, api.Member{Meta: api.Meta{ID: 2}, Name: "a2"}), // created above: deferred
		memberCmd(t, fsm.MemberUpdateType, api.Member{Meta: api.Meta{ID: 1}, Name: "CIX2"}),
		memberCmd(t, fsm.MemberCreateType, api.Member{Name: "c"}),
	})
	out := f.ApplyBatch([]*raft.Log{
		{Index: 2, Type: raft.LogCommand, Data: entry},
		{Index: 3, Type: raft.LogCommand, Data: memberCmd(t, fsm.MemberUpdateType, api.Member{Meta: api.Meta{ID: 2}, Name: "a3"})},
	})
	co := fsm.Coalescer{}
	rs := co.Split(out[0], 6)
	want := []string{"ok 2", "ok 3", "err", "deferred", "ok 1", "ok 4"}
	for i, r := range rs {
		res := r.(fsm.Result)
		var got string
		switch {
		case co.Retry(r):
			got = "deferred"
		case res.Err != nil:
			got = "err"
			var ae *api.Error
			if !errors.As(res.Err, &ae) || ae.Status/100 != 4 {
				t.Errorf("command %d: error %v, want a 4xx api error", i, res.Err)
			}
		default:
			m := res.Value.(*api.Member)
			got = fmt.Sprint("ok ", m.ID)
			if m.ModifiedIndex != 2 {
				t.Errorf("command %d: modified_index %d, want the entry's 2", i, m.ModifiedIndex)
			}
		}
		if got != want[i] {
			t.Errorf("command %d: %s, want %s", i, got, want[i])
		}
	}
	if r := out[1].(fsm.Result); r.Err != nil || r.Value.(*api.Member).ModifiedIndex != 3 {
		t.Fatalf("entry 3 after the batch: %+v", r)
	}
	names := map[string]uint64{}
	for _, m := range f.Store().Read().MemberList() {
		names[m.Name] = m.ID
	}
	if fmt.Sprint(names) != "map[CIX2:1 a3:2 b:3 c:4]" {
		t.Fatalf("members after the entry: %v", names)
	}
}

// TestCoalescedLogIsDeterministic: a log of coalesced entries (random
// groups of a random command log, deferred commands going to the front of
// the next entry as the leader does) gives byte-identical state on two
// FSMs that receive it in different raft batches.
func TestCoalescedLogIsDeterministic(t *testing.T) {
	g := buildLog(t, 7, 600)
	rng := rand.New(rand.NewPCG(7, 8))
	leader := newFSM()
	var coalesced []*raft.Log
	var pending [][]byte
	idx := uint64(0)
	deferred := 0
	for i := 0; i < len(g.log) || len(pending) > 0; {
		for n := 1 + rng.IntN(12); n > 0 && i < len(g.log); i++ {
			if l := g.log[i]; l.Type == raft.LogCommand {
				pending = append(pending, l.Data)
				n--
			}
		}
		idx++
		l := &raft.Log{Index: idx, Type: raft.LogCommand, Data: fsm.EncodeBatch(pending)}
		if len(pending) == 1 {
			l.Data = pending[0]
		}
		coalesced = append(coalesced, l)
		c := *l
		res := leader.ApplyBatch([]*raft.Log{&c})[0]
		var rs []any
		if len(pending) == 1 {
			rs = []any{res}
		} else {
			rs = fsm.Coalescer{}.Split(res, len(pending))
		}
		var again [][]byte
		for k, r := range rs {
			if (fsm.Coalescer{}).Retry(r) {
				again = append(again, pending[k])
			}
		}
		deferred += len(again)
		pending = again
	}
	t.Logf("%d commands in %d entries, %d deferred once or more", len(g.log), len(coalesced), deferred)
	a, b := newFSM(), newFSM()
	replay(a, coalesced)
	for i := 0; i < len(coalesced); {
		n := min(len(coalesced)-i, 1+rng.IntN(20))
		batch := make([]*raft.Log, n)
		for k, l := range coalesced[i : i+n] {
			c := *l
			c.Data = bytes.Clone(l.Data)
			batch[k] = &c
		}
		b.ApplyBatch(batch)
		i += n
	}
	pa, pb, pl := persist(t, a), persist(t, b), persist(t, leader)
	if !bytes.Equal(pa, pb) || !bytes.Equal(pa, pl) {
		t.Fatal("the same coalesced log gave different state")
	}
}

// BenchmarkApplyCoalescedCreates: the FSM's cost per command when member
// creates arrive in coalesced entries of 25 (what a follower does per
// write under load; the leader does the same).
func BenchmarkApplyCoalescedCreates(b *testing.B) {
	t := &testing.T{}
	f, idx := bootstrapped(t)
	benchCoalesced(b, f, idx, 25, func(n int) []byte {
		return memberCmd(t, fsm.MemberCreateType, api.Member{Name: fmt.Sprintf("bench-%d", n)})
	})
}

// BenchmarkApplyCoalescedAllocations: the FSM's cost per allocation of the
// next free address of a large subnet, in coalesced entries of 64 (the
// per-node FSM part of scripts/bench/allocs).
func BenchmarkApplyCoalescedAllocations(b *testing.B) {
	t := &testing.T{}
	g := newIPAMGen(t, 1)
	alloc := g.read().IPBlockList()[0]
	subnet := g.must(fsm.IPBlockCreateType, &api.IPBlock{Dialect: api.DialectCloudCIX, CIDR: "10.16.0.1/12", Gateway: "10.16.0.1", ParentID: alloc.ID}).(*api.IPBlock)
	benchCoalesced(b, g.scratch, g.index, 64, func(int) []byte {
		return byUser(t, fsm.IPAddressAllocateType, 1, &api.IPAddress{BlockID: subnet.ID})
	})
}

// benchCoalesced applies to f, after raft index idx, entries of size
// commands made by next (n counts the commands from 1; making them is not
// timed), and reports the time per command.
func benchCoalesced(b *testing.B, f *fsm.FSM, idx uint64, size int, next func(n int) []byte) {
	cmds := make([][]byte, size)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		b.StopTimer()
		for k := range cmds {
			n++
			cmds[k] = next(n)
		}
		idx++
		data := fsm.EncodeBatch(cmds)
		b.StartTimer()
		f.ApplyBatch([]*raft.Log{{Index: idx, Type: raft.LogCommand, Data: data}})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1000, "µs/cmd")
}
