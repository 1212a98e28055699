package fsm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// sink is a raft.SnapshotSink over a buffer.
type sink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Close() error  { s.closed = true; return nil }
func (s *sink) Cancel() error { s.cancelled = true; return nil }

var _ raft.SnapshotSink = (*sink)(nil)

func newFSM() *fsm.FSM { return fsm.New(state.New(), hclog.NewNullLogger(), nil) }

// persist takes an FSM snapshot and persists it into a buffer.
func persist(t *testing.T, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	s := &sink{}
	if err := snap.Persist(s); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !s.closed || s.cancelled {
		t.Fatalf("Persist: sink closed=%v cancelled=%v", s.closed, s.cancelled)
	}
	return bytes.Clone(s.Bytes())
}

// outcome renders an Apply result for comparison.
func outcome(v any) string {
	r, ok := v.(fsm.Result)
	if !ok {
		return fmt.Sprintf("non-result %T %v", v, v)
	}
	b, err := json.Marshal(r.Value)
	if err != nil {
		b = []byte("unencodable: " + err.Error())
	}
	e := "<nil>"
	if r.Err != nil {
		e = r.Err.Error()
	}
	return string(b) + " | " + e
}

// gen builds a random but reproducible command log. It applies every entry
// to its own scratch FSM as it goes, so that it can aim updates and deletes
// at objects that exist (and at some that do not), and use current and
// stale compare-and-swap indexes.
type gen struct {
	t       *testing.T
	rng     *rand.Rand
	scratch *fsm.FSM
	log     []*raft.Log
	index   uint64
	now     time.Time
	failed  int
	okay    int
	types   map[fsm.MessageType]int
	hashes  []string
}

func newGen(t *testing.T, seed uint64) *gen {
	return &gen{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), scratch: newFSM(),
		now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), types: map[fsm.MessageType]int{}}
}

func (g *gen) read() *state.ReadTxn { return g.scratch.Store().Read() }

// raw appends a non-command entry (raft's own), which Apply ignores.
func (g *gen) raw(typ raft.LogType) {
	g.index++
	l := &raft.Log{Index: g.index, Term: 1, Type: typ}
	g.log = append(g.log, l)
	if v := g.scratch.Apply(l); v != nil {
		g.t.Fatalf("Apply of a %v entry returned %v", typ, v)
	}
}

func (g *gen) emit(typ fsm.MessageType, payload any, expect uint64) fsm.Result {
	g.t.Helper()
	return g.emitAs(typ, fsm.Actor{TokenID: 1, UserID: 1, MemberID: api.GlobalMemberID}, payload, expect)
}

// emitAs is emit with the command made by actor.
func (g *gen) emitAs(typ fsm.MessageType, actor fsm.Actor, payload any, expect uint64) fsm.Result {
	g.t.Helper()
	g.index++
	// Leader clocks can step backwards: the FSM must not care.
	g.now = g.now.Add(time.Duration(g.rng.IntN(3000)-500) * time.Millisecond)
	cmd, err := fsm.NewCommand(typ, g.now, actor, payload)
	if err != nil {
		g.t.Fatal(err)
	}
	cmd.Expect = expect
	data, err := cmd.Encode()
	if err != nil {
		g.t.Fatal(err)
	}
	l := &raft.Log{Index: g.index, Term: 1, Type: raft.LogCommand, Data: data}
	g.log = append(g.log, l)
	r, ok := g.scratch.Apply(l).(fsm.Result)
	if !ok {
		g.t.Fatalf("Apply did not return a Result")
	}
	g.types[typ]++
	if r.Err != nil {
		g.failed++
	} else {
		g.okay++
	}
	return r
}

// pick returns an id of one of items, or (one time in five) an id that may
// not exist.
func pick[T api.Object](g *gen, items []T) uint64 {
	if len(items) == 0 || g.rng.IntN(5) == 0 {
		return uint64(g.rng.IntN(60) + 1)
	}
	return items[g.rng.IntN(len(items))].GetMeta().ID
}

func find[T api.Object](items []T, id uint64) (T, bool) {
	for _, it := range items {
		if it.GetMeta().ID == id {
			return it, true
		}
	}
	var zero T
	return zero, false
}

// expect is 0 (no compare-and-swap), the current index, or a stale one.
func (g *gen) expect(cur uint64) uint64 {
	switch g.rng.IntN(3) {
	case 0:
		return 0
	case 1:
		return cur
	}
	return cur - 1 - uint64(g.rng.IntN(3))
}

// name draws from a small pool so that uniqueness conflicts happen, in
// varying case.
func (g *gen) name(prefix string, pool int) string {
	n := fmt.Sprintf("%s-%d", prefix, g.rng.IntN(pool))
	if g.rng.IntN(4) == 0 {
		n = strings.ToUpper(n)
	}
	return n
}

func (g *gen) hex() string {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return fmt.Sprintf("%x", b)
}

func (g *gen) customers() []uint64 {
	out := []uint64{}
	members := g.read().MemberList()
	for range g.rng.IntN(3) {
		id := pick(g, members)
		dup := false
		for _, c := range out {
			dup = dup || c == id
		}
		if !dup {
			out = append(out, id)
		}
	}
	return out
}

func (g *gen) step() {
	rt := g.read()
	switch op := g.rng.IntN(100); {
	case op < 2:
		g.raw([]raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration}[g.rng.IntN(3)])
	case op < 4:
		g.emit(fsm.NoopType, struct{}{}, 0)
	case op < 5: // a command a newer version added, marked ignorable
		g.emit(fsm.Ignorable|0x40, map[string]any{"future": g.rng.IntN(10)}, 0)
	case op < 18:
		g.emit(fsm.MemberCreateType, &api.Member{Name: g.name("member", 40), SelfManaged: g.rng.IntN(2) == 0}, 0)
	case op < 24:
		members := rt.MemberList()
		id := pick(g, members)
		m, ok := find(members, id)
		if !ok {
			m = &api.Member{Meta: api.Meta{ID: id}}
		}
		c := *m
		c.Name = g.name("member", 40)
		g.emit(fsm.MemberUpdateType, &c, g.expect(c.ModifiedIndex))
	case op < 29:
		g.emit(fsm.MemberDeleteType, fsm.IDPayload{ID: pick(g, rt.MemberList())}, 0)
	case op < 43:
		g.emit(fsm.UserCreateType, &api.User{MemberID: pick(g, rt.MemberList()), Username: g.name("user", 60),
			Email: g.name("mail", 1000) + "@example.com", Administrator: g.rng.IntN(2) == 0}, 0)
	case op < 50:
		users := rt.UserList()
		id := pick(g, users)
		u, ok := find(users, id)
		if !ok {
			u = &api.User{Meta: api.Meta{ID: id}, MemberID: pick(g, rt.MemberList())}
		}
		c := *u
		c.Surname = g.name("surname", 100)
		if g.rng.IntN(4) == 0 {
			c.Username = g.name("user", 60)
		}
		if g.rng.IntN(8) == 0 {
			c.MemberID = pick(g, rt.MemberList())
		}
		g.emit(fsm.UserUpdateType, &c, g.expect(c.ModifiedIndex))
	case op < 55:
		g.emit(fsm.UserDeleteType, fsm.IDPayload{ID: pick(g, rt.UserList())}, 0)
	case op < 67:
		hash := g.hex()
		if len(g.hashes) > 0 && g.rng.IntN(10) == 0 {
			hash = g.hashes[g.rng.IntN(len(g.hashes))] // duplicate secret: refused
		}
		g.hashes = append(g.hashes, hash)
		tok := api.Token{UserID: pick(g, rt.UserList()), Name: g.name("token", 1000), Kind: api.TokenKindUser, Prefix: "rgt_" + hash[:4]}
		if g.rng.IntN(4) == 0 {
			tok.Kind, tok.RegionID, tok.ServerID = api.TokenKindRobot, pick(g, rt.RegionList()), uint64(g.rng.IntN(5))
		}
		if g.rng.IntN(3) == 0 {
			tok.Expires = g.now.Add(time.Hour).Format(time.RFC3339)
		}
		g.emit(fsm.TokenCreateType, &state.TokenRecord{Token: tok, Hash: hash}, 0)
	case op < 72:
		g.emit(fsm.TokenDeleteType, fsm.IDPayload{ID: pick(g, rt.TokenList())}, 0)
	case op < 80:
		g.emit(fsm.RegionCreateType, &api.Region{Name: g.name("region", 15), Customers: g.customers()}, 0)
	case op < 86:
		regions := rt.RegionList()
		id := pick(g, regions)
		r, ok := find(regions, id)
		if !ok {
			r = &api.Region{Meta: api.Meta{ID: id}}
		}
		c := *r
		c.Customers = g.customers()
		if g.rng.IntN(3) == 0 {
			c.Name = g.name("region", 15)
		}
		g.emit(fsm.RegionUpdateType, &c, g.expect(c.ModifiedIndex))
	case op < 90:
		g.emit(fsm.RegionDeleteType, fsm.IDPayload{ID: pick(g, rt.RegionList())}, 0)
	case op < 94:
		id := fmt.Sprintf("node%d", g.rng.IntN(4))
		g.emit(fsm.NodeUpsertType, &state.Node{ID: id, RaftAddr: "127.0.0.1:" + fmt.Sprint(8300+g.rng.IntN(9)),
			HTTPAddr: "http://127.0.0.1:" + fmt.Sprint(8080+g.rng.IntN(9))}, 0)
	case op < 96:
		g.emit(fsm.NodeDeleteType, &state.Node{ID: fmt.Sprintf("node%d", g.rng.IntN(4))}, 0)
	default: // a second bootstrap is refused
		g.emit(fsm.BootstrapType, fsm.BootstrapPayload{MemberName: "CIX2", Username: "root2",
			Token: &state.TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser}, Hash: g.hex()}}, 0)
	}
}

// buildLog returns a bootstrap followed by n random entries.
func buildLog(t *testing.T, seed uint64, n int) *gen {
	g := newGen(t, seed)
	hash := g.hex()
	g.hashes = append(g.hashes, hash)
	if r := g.emit(fsm.BootstrapType, fsm.BootstrapPayload{MemberName: "CIX", Username: "root",
		Token: &state.TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser, Prefix: "rgt_" + hash[:4]}, Hash: hash}}, 0); r.Err != nil {
		t.Fatalf("bootstrap: %v", r.Err)
	}
	for range n {
		g.step()
	}
	return g
}

// replay applies entries to f and returns the rendered results.
func replay(f *fsm.FSM, entries []*raft.Log) []string {
	out := make([]string, len(entries))
	for i, l := range entries {
		// A fresh copy, as raft hands each FSM its own decoded entry.
		c := *l
		c.Data = bytes.Clone(l.Data)
		out[i] = outcome(f.Apply(&c))
	}
	return out
}

// replayBatched applies entries to f as raft hands a BatchingFSM its log,
// in batches of 1 to max entries (sizes from rng), and returns each entry's
// outcome; a non-command entry must get a nil result (what Apply gives it).
func replayBatched(t *testing.T, f *fsm.FSM, entries []*raft.Log, rng *rand.Rand, max int) []string {
	t.Helper()
	bf := any(f).(raft.BatchingFSM)
	var got []string
	for i := 0; i < len(entries); {
		n := min(len(entries)-i, 1+rng.IntN(max))
		batch := make([]*raft.Log, n)
		for k, l := range entries[i : i+n] {
			c := *l
			c.Data = bytes.Clone(l.Data)
			batch[k] = &c
		}
		rs := bf.ApplyBatch(batch)
		if len(rs) != n {
			t.Fatalf("ApplyBatch of %d entries returned %d results", n, len(rs))
		}
		for k, r := range rs {
			if batch[k].Type != raft.LogCommand && r != nil {
				t.Fatalf("entry %d (%v): result %v, want nil", i+k, batch[k].Type, r)
			}
			got = append(got, outcome(r))
		}
		i += n
	}
	return got
}

func TestDeterminism(t *testing.T) {
	for _, seed := range []uint64{1, 2, 20260101} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			g := buildLog(t, seed, 800)
			t.Logf("%d entries: %d commands succeeded, %d failed; by type %v", len(g.log), g.okay, g.failed, g.types)
			if g.okay < 200 || g.failed < 100 {
				t.Fatalf("the log does not exercise both paths enough: %d ok, %d failed", g.okay, g.failed)
			}
			for _, typ := range []fsm.MessageType{fsm.MemberCreateType, fsm.MemberUpdateType, fsm.MemberDeleteType,
				fsm.UserCreateType, fsm.UserUpdateType, fsm.UserDeleteType, fsm.TokenCreateType, fsm.TokenDeleteType,
				fsm.RegionCreateType, fsm.RegionUpdateType, fsm.RegionDeleteType, fsm.NodeUpsertType, fsm.NodeDeleteType} {
				if g.types[typ] == 0 {
					t.Errorf("the log has no command of type %d", typ)
				}
			}

			a, b := newFSM(), newFSM()
			ra, rb := replay(a, g.log), replay(b, g.log)
			for i := range ra {
				if ra[i] != rb[i] {
					t.Fatalf("entry %d (index %d): results differ:\n A %s\n B %s", i, g.log[i].Index, ra[i], rb[i])
				}
			}
			snapA, snapB, snapG := persist(t, a), persist(t, b), persist(t, g.scratch)
			if !bytes.Equal(snapA, snapB) {
				t.Fatalf("snapshots of two FSMs fed the same log differ (%d vs %d bytes)", len(snapA), len(snapB))
			}
			if !bytes.Equal(snapA, snapG) {
				t.Fatalf("snapshot differs from the generator's own FSM")
			}
			if again := persist(t, a); !bytes.Equal(snapA, again) {
				t.Fatal("two snapshots of one FSM differ")
			}
			rt := a.Store().Read()
			t.Logf("final state: %d members, %d users, %d tokens, %d regions, %d nodes; snapshot %d bytes",
				len(rt.MemberList()), len(rt.UserList()), len(rt.TokenList()), len(rt.RegionList()), len(rt.NodeList()), len(snapA))

			// Restore into a third FSM: its snapshot is the same bytes.
			c := newFSM()
			if err := c.Restore(io.NopCloser(bytes.NewReader(snapA))); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if snapC := persist(t, c); !bytes.Equal(snapA, snapC) {
				t.Fatal("snapshot after restore differs")
			}

			// A node that installs a snapshot mid-log and applies the rest
			// ends in the same state as one that applied everything.
			mid := len(g.log) / 2
			d := newFSM()
			replay(d, g.log[:mid])
			e := newFSM()
			if err := e.Restore(io.NopCloser(bytes.NewReader(persist(t, d)))); err != nil {
				t.Fatalf("Restore mid-log snapshot: %v", err)
			}
			re := replay(e, g.log[mid:])
			for i := range re {
				if re[i] != ra[mid+i] {
					t.Fatalf("entry %d after a mid-log restore: results differ:\n full    %s\n restored %s", mid+i, ra[mid+i], re[i])
				}
			}
			if snapE := persist(t, e); !bytes.Equal(snapA, snapE) {
				t.Fatal("state after mid-log restore + replay differs")
			}
		})
	}
	// Different seeds give different logs (the generator is not degenerate).
	if bytes.Equal(persist(t, replayed(t, 1)), persist(t, replayed(t, 2))) {
		t.Error("seeds 1 and 2 produced the same state")
	}
}

// TestApplyBatchMatchesApply: when the FSM implements raft.BatchingFSM
// (raft then hands it committed entries in batches whose boundaries differ
// from node to node), batching must be invisible: the same results and the
// same state as applying the entries one by one, for any batch boundaries.
func TestApplyBatchMatchesApply(t *testing.T) {
	if _, ok := any(newFSM()).(raft.BatchingFSM); !ok {
		t.Fatal("fsm.FSM does not implement raft.BatchingFSM (coalesced entries and one transaction per raft batch depend on it)")
	}
	for _, seed := range []uint64{11, 12} {
		g := buildLog(t, seed, 800)
		one := newFSM()
		want := replay(one, g.log)
		batched := newFSM()
		got := replayBatched(t, batched, g.log, rand.New(rand.NewPCG(seed, 99)), 64)
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("seed %d entry %d: ApplyBatch result differs from Apply:\n Apply      %s\n ApplyBatch %s", seed, i, want[i], got[i])
			}
		}
		if !bytes.Equal(persist(t, one), persist(t, batched)) {
			t.Fatalf("seed %d: state after ApplyBatch differs from state after Apply", seed)
		}
	}
}

func replayed(t *testing.T, seed uint64) *fsm.FSM {
	f := newFSM()
	replay(f, buildLog(t, seed, 200).log)
	return f
}

// command encodes a command without a user.
func command(t *testing.T, typ fsm.MessageType, payload any) []byte {
	t.Helper()
	return byUser(t, typ, 0, payload)
}

func TestUnknownCommandTypes(t *testing.T) {
	g := buildLog(t, 7, 50)
	f := newFSM()
	replay(f, g.log)
	before := persist(t, f)
	next := g.index + 1

	// Ignorable unknown types are skipped: empty result, state unchanged.
	for _, typ := range []fsm.MessageType{fsm.Ignorable | 0x40, fsm.Ignorable | 0x7f, 0xff} {
		v := f.Apply(&raft.Log{Index: next, Type: raft.LogCommand, Data: command(t, typ, map[string]any{"x": 1})})
		next++
		r, ok := v.(fsm.Result)
		if !ok || r.Err != nil || r.Value != nil {
			t.Errorf("ignorable type %#x: got %#v, want an empty Result", uint8(typ), v)
		}
	}
	if after := persist(t, f); !bytes.Equal(before, after) {
		t.Error("skipping ignorable commands changed the state")
	}

	// Any other unknown type, or an undecodable entry, stops the node.
	mustPanic := func(what string, data []byte) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: Apply did not panic", what)
			}
		}()
		f.Apply(&raft.Log{Index: next, Type: raft.LogCommand, Data: data})
	}
	for _, typ := range []fsm.MessageType{0, 0x60, 0x7f} {
		mustPanic(fmt.Sprintf("unknown type %#x", uint8(typ)), command(t, typ, map[string]any{"x": 1}))
	}
	mustPanic("empty entry", nil)
	mustPanic("type byte only", []byte{byte(fsm.MemberCreateType)})
	mustPanic("body that is not JSON", append([]byte{byte(fsm.MemberCreateType)}, "not json"...))
	if after := persist(t, f); !bytes.Equal(before, after) {
		t.Error("a refused command changed the state")
	}
}

// A command whose payload does not decode is a failed command (an error
// result), not a crash, and changes nothing.
func TestBadPayloadIsAnError(t *testing.T) {
	f := newFSM()
	replay(f, buildLog(t, 3, 20).log)
	before := persist(t, f)
	v := f.Apply(&raft.Log{Index: 1000, Type: raft.LogCommand, Data: command(t, fsm.MemberCreateType, []int{1, 2})})
	if r, ok := v.(fsm.Result); !ok || r.Err == nil {
		t.Fatalf("member create with a list payload: %#v, want an error result", v)
	}
	if after := persist(t, f); !bytes.Equal(before, after) {
		t.Error("a failed command changed the state")
	}
}

// TestNullPayloadIsAnError: a command whose payload is JSON null (what a
// nil pointer marshals to) fails with an error result and changes
// nothing, whatever its type. Handlers taking a pointer dereferenced it:
// every node panicked at the entry, and again at every restart.
func TestNullPayloadIsAnError(t *testing.T) {
	g := newComputeGen(t, 9)
	for range 200 {
		g.step()
	}
	f := newFSM()
	replay(f, g.log)
	before := persist(t, f)
	for typ := range 256 {
		if fsm.MessageType(typ) == fsm.BatchType {
			continue // not a command: its own encoding (TestBatchEntryRoundTrip)
		}
		data := command(t, fsm.MessageType(typ), nil)
		var v any
		func() {
			defer func() {
				if r := recover(); r != nil {
					if strings.HasPrefix(fmt.Sprint(r), "fsm: unknown command type") {
						v = "unknown"
						return
					}
					v = fmt.Sprintf("panic: %v", r)
				}
			}()
			v = f.Apply(&raft.Log{Index: g.index + 1, Type: raft.LogCommand, Data: data})
		}()
		if v == "unknown" {
			continue
		}
		if s, ok := v.(string); ok {
			// The panic left the store's write transaction open: nothing
			// more can be applied to f.
			t.Fatalf("type %d with a null payload: %s", typ, s)
		}
		if r, ok := v.(fsm.Result); !ok {
			t.Errorf("type %d with a null payload: %#v, want a result", typ, v)
		} else if r.Err != nil && !bytes.Equal(before, persist(t, f)) {
			t.Fatalf("type %d with a null payload failed (%v) but changed the state", typ, r.Err)
		}
		before = persist(t, f)
	}
}
