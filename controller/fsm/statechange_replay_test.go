package fsm_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// stateLog builds a command log by hand: entries with a fixed clock and
// actor, applied to a scratch FSM as they are added.
type stateLog struct {
	t       *testing.T
	scratch *fsm.FSM
	log     []*raft.Log
}

func (s *stateLog) entry(typ fsm.MessageType, actor fsm.Actor, expect uint64, payload any) *raft.Log {
	s.t.Helper()
	cmd, err := fsm.NewCommand(typ, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(len(s.log))*time.Second), actor, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Expect = expect
	data, err := cmd.Encode()
	if err != nil {
		s.t.Fatal(err)
	}
	return &raft.Log{Index: uint64(len(s.log) + 1), Term: 1, Type: raft.LogCommand, Data: data}
}

// must appends an entry that must succeed and returns its value.
func (s *stateLog) must(typ fsm.MessageType, actor fsm.Actor, payload any) any {
	s.t.Helper()
	l := s.entry(typ, actor, 0, payload)
	s.log = append(s.log, l)
	r := s.scratch.Apply(l).(fsm.Result)
	if r.Err != nil {
		s.t.Fatalf("command %d: %v", typ, r.Err)
	}
	return r.Value
}

// TestStateChangeReplayStaleExpect: type 70 (StateChangeType) entries are
// in logs written before If-Match was checked on state changes; their
// command Expect was ignored, so a replay must still ignore it. Type 91
// (StateChangeIfType) with the same stale Expect is refused (409
// iaas_virtual_router_update_002) and changes nothing. Both replay alike
// on every node, after a snapshot restore too.
func TestStateChangeReplayStaleExpect(t *testing.T) {
	s := &stateLog{t: t, scratch: newFSM()}
	root := fsm.Actor{TokenID: 1, UserID: 1, MemberID: api.GlobalMemberID}
	robot := fsm.Actor{TokenID: 2, Robot: true}
	s.must(fsm.BootstrapType, root, fsm.BootstrapPayload{MemberName: "CIX", Username: "root",
		Token: &state.TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser, Prefix: "rgt_abcd"}, Hash: "00ff"}})
	member := s.must(fsm.MemberCreateType, root, &api.Member{Name: "acme"}).(*api.Member)
	region := s.must(fsm.RegionCreateType, root, &api.Region{Name: "r1", Customers: []uint64{member.ID}}).(*api.Region)
	asn := s.must(fsm.ASNCreateType, root, &api.ASN{MemberID: api.GlobalMemberID, Number: 64512}).(*api.ASN)
	alloc := s.must(fsm.IPBlockCreateType, root, &api.IPBlock{MemberID: api.GlobalMemberID, Dialect: api.DialectCloudCIX,
		CIDR: "45.0.0.0/24", Type: api.BlockPublic, ASNID: asn.ID}).(*api.IPBlock)
	floating := s.must(fsm.IPBlockCreateType, root, &api.IPBlock{MemberID: api.GlobalMemberID, Dialect: api.DialectCloudCIX,
		ParentID: alloc.ID, CIDR: "45.0.0.0/29", Gateway: "45.0.0.1"}).(*api.IPBlock)
	capacity := 10
	s.must(fsm.RouterCreateType, root, &api.Router{RegionID: region.ID, Capacity: &capacity, Enabled: true, FloatingSubnetIDs: []uint64{floating.ID}})
	s.must(fsm.ProjectCreateType, root, &state.ProjectSpec{MemberID: member.ID, RegionID: region.ID, Name: "p", GracePeriod: 168})
	vrs := s.scratch.Store().Read().VirtualRouterList()
	if len(vrs) != 1 || vrs[0].State != api.StateRequested {
		t.Fatalf("virtual routers after the project create: %+v", vrs)
	}
	vr := vrs[0].ID
	stale := vrs[0].ModifiedIndex
	// The robot claims it: REQUESTED → BUILDING with the current index.
	l := s.entry(fsm.StateChangeIfType, robot, stale, &state.StateChange{Kind: api.KindVirtualRouter, ID: vr,
		To: api.StateBuilding, Expected: ptrTo(api.StateRequested)})
	s.log = append(s.log, l)
	if r := s.scratch.Apply(l).(fsm.Result); r.Err != nil {
		t.Fatalf("claim with the current index: %v", r.Err)
	}
	prefix := s.log

	// BUILDING → RUNNING with the index read before the claim: stale.
	change := &state.StateChange{Kind: api.KindVirtualRouter, ID: vr, To: api.StateRunning, Expected: ptrTo(api.StateBuilding)}
	old := append(append([]*raft.Log{}, prefix...), s.entry(fsm.StateChangeType, robot, stale, change))
	neu := append(append([]*raft.Log{}, prefix...), s.entry(fsm.StateChangeIfType, robot, stale, change))

	check := func(name string, log []*raft.Log, want int, wantCode string) []byte {
		t.Helper()
		a, b := newFSM(), newFSM()
		ra, rb := replay(a, log), replay(b, log)
		for i := range ra {
			if ra[i] != rb[i] {
				t.Fatalf("%s: entry %d: results differ:\n A %s\n B %s", name, i, ra[i], rb[i])
			}
		}
		snap := persist(t, a)
		if !bytes.Equal(snap, persist(t, b)) {
			t.Fatalf("%s: snapshots differ", name)
		}
		// The last entry's result on a fresh replay.
		c := newFSM()
		replay(c, log[:len(log)-1])
		r := c.Apply(cloneLog(log[len(log)-1])).(fsm.Result)
		var e *api.Error
		switch {
		case wantCode == "" && r.Err != nil:
			t.Errorf("%s: the stale change was refused: %v", name, r.Err)
		case wantCode != "" && (!errors.As(r.Err, &e) || e.Status != http.StatusConflict || e.ErrorCode != wantCode):
			t.Errorf("%s: result %v, want 409 %s", name, r.Err, wantCode)
		}
		if got, _ := c.Store().Read().VirtualRouter(vr); got.State != want {
			t.Errorf("%s: virtual router state %d, want %d", name, got.State, want)
		}
		// A node that restores a snapshot taken before the entry and
		// applies it gets the same result and state.
		d := newFSM()
		if err := d.Restore(io.NopCloser(bytes.NewReader(persist(t, func() *fsm.FSM { f := newFSM(); replay(f, log[:len(log)-1]); return f }())))); err != nil {
			t.Fatal(err)
		}
		if got, want := replay(d, log[len(log)-1:])[0], outcome(r); got != want {
			t.Errorf("%s: after a restore the entry gives %s, want %s", name, got, want)
		}
		if !bytes.Equal(persist(t, d), persist(t, c)) {
			t.Errorf("%s: state after restore + entry differs", name)
		}
		return persist(t, c)
	}
	check("type 70", old, api.StateRunning, "")
	refused := check("type 91", neu, api.StateBuilding, "iaas_virtual_router_update_002")
	before := newFSM()
	replay(before, prefix)
	if !bytes.Equal(refused, persist(t, before)) {
		t.Error("the refused type 91 entry changed state")
	}
}

func ptrTo[T any](v T) *T { return &v }

func cloneLog(l *raft.Log) *raft.Log {
	c := *l
	c.Data = bytes.Clone(l.Data)
	return &c
}
