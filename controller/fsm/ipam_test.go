package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/ipam"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// ipamGen drives a random IPAM workload through the FSM.
type ipamGen struct {
	*gen
	member uint64
	policy *api.IPPolicy
	blocks []*api.IPBlock
}

func (g *ipamGen) must(typ fsm.MessageType, payload any) any {
	g.t.Helper()
	r := g.emit(typ, payload, 0)
	if r.Err != nil {
		g.t.Fatalf("command %d: %v", typ, r.Err)
	}
	return r.Value
}

func newIPAMGen(t *testing.T, seed uint64) *ipamGen {
	g := &ipamGen{gen: newGen(t, seed)}
	hash := g.hex()
	g.must(fsm.BootstrapType, fsm.BootstrapPayload{MemberName: "CIX", Username: "root",
		Token: &state.TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser, Prefix: "rgt_" + hash[:4]}, Hash: hash}})
	g.member = g.must(fsm.MemberCreateType, &api.Member{Name: "acme"}).(*api.Member).ID
	g.policy = g.must(fsm.IPPolicyCreateType, &api.IPPolicy{MemberID: g.member, Name: "p",
		UnusableOctets: []api.UnusableOctet{{Octet: 5}}}).(*api.IPPolicy)
	asn := g.must(fsm.ASNCreateType, &api.ASN{MemberID: g.member, Number: 65001}).(*api.ASN)
	alloc := g.must(fsm.IPBlockCreateType, &api.IPBlock{MemberID: g.member, Dialect: api.DialectCloudCIX, CIDR: "10.0.0.0/8", ASNID: asn.ID}).(*api.IPBlock)
	for _, b := range []*api.IPBlock{
		{MemberID: g.member, Dialect: api.DialectMelange, CIDR: "192.168.0.0/27", Gateway: "192.168.0.1", PolicyID: g.policy.ID},
		{MemberID: g.member, Dialect: api.DialectMelange, CIDR: "192.168.1.0/29", PolicyID: g.policy.ID},
		{MemberID: g.member, Dialect: api.DialectMelange, CIDR: "fd00::/123", Gateway: "fd00::1"},
		{Dialect: api.DialectCloudCIX, CIDR: "10.1.0.1/28", Gateway: "10.1.0.1", ParentID: alloc.ID},
	} {
		g.blocks = append(g.blocks, g.must(fsm.IPBlockCreateType, b).(*api.IPBlock))
	}
	return g
}

// randAddr returns an address in or just around block b.
func (g *ipamGen) randAddr(b *api.IPBlock) string {
	p := netip.MustParsePrefix(b.CIDR)
	a := p.Addr()
	for range g.rng.IntN(1 << (p.Addr().BitLen() - p.Bits() + 1)) {
		a = a.Next()
	}
	return a.String()
}

func (g *ipamGen) held(b *api.IPBlock) []*api.IPAddress { return g.read().IPAddressList(b.ID) }

func (g *ipamGen) step() {
	b := g.blocks[g.rng.IntN(len(g.blocks))]
	switch n := g.rng.IntN(100); {
	case n < 40:
		r := g.emit(fsm.IPAddressAllocateType, &api.IPAddress{BlockID: b.ID}, 0)
		g.checkAllocated(b, r)
	case n < 55:
		r := g.emit(fsm.IPAddressAllocateType, &api.IPAddress{BlockID: b.ID, Address: g.randAddr(b)}, 0)
		g.checkAllocated(b, r)
	case n < 72:
		if h := g.held(b); len(h) > 0 {
			g.emit(fsm.IPAddressReleaseType, state.IPRef{ID: h[g.rng.IntN(len(h))].ID}, 0)
		} else {
			g.emit(fsm.IPAddressReleaseType, state.IPRef{BlockID: b.ID, Address: g.randAddr(b)}, 0)
		}
	case n < 80:
		if h := g.held(b); len(h) > 0 {
			g.emit(fsm.IPAddressRestoreType, state.IPRef{ID: h[g.rng.IntN(len(h))].ID}, 0)
		}
	case n < 90:
		g.emit(fsm.IPAddressPurgeType, fsm.IPPurgePayload{Cutoff: g.now.Add(-time.Duration(g.rng.IntN(20)) * time.Second)}, 0)
	default:
		p := *g.read().IPPolicyList()[0]
		p.UnusableRanges, p.UnusableOctets = nil, nil
		for range g.rng.IntN(3) {
			p.UnusableRanges = append(p.UnusableRanges, api.UnusableRange{Offset: int64(g.rng.IntN(12) - 6), Length: int64(g.rng.IntN(4))})
		}
		for range g.rng.IntN(3) {
			p.UnusableOctets = append(p.UnusableOctets, api.UnusableOctet{Octet: int64(g.rng.IntN(32))})
		}
		g.emit(fsm.IPPolicyUpdateType, &p, 0)
	}
	g.checkInvariants()
}

// checkAllocated: a new address is in its block and neither the gateway,
// a reserved edge address nor excluded by the policy in force.
func (g *ipamGen) checkAllocated(b *api.IPBlock, r fsm.Result) {
	g.t.Helper()
	if r.Err != nil {
		return
	}
	a := r.Value.(*api.IPAddress)
	p := netip.MustParsePrefix(b.CIDR)
	cfg := ipam.Config{Prefix: p, Dialect: ipam.Melange}
	if b.Dialect == api.DialectCloudCIX {
		cfg.Dialect = ipam.CloudCIX
	}
	if b.Gateway != "" {
		cfg.Gateway = netip.MustParseAddr(b.Gateway)
	}
	if b.PolicyID != 0 {
		pol, _ := g.read().IPPolicy(b.PolicyID)
		for _, r := range pol.UnusableRanges {
			cfg.Policy.Ranges = append(cfg.Policy.Ranges, ipam.Range{Offset: r.Offset, Length: r.Length})
		}
		for _, o := range pol.UnusableOctets {
			cfg.Policy.Octets = append(cfg.Policy.Octets, o.Octet)
		}
	}
	empty, err := ipam.NewBlock(cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	if why := empty.Why(netip.MustParseAddr(a.Address)); why != ipam.ReasonNone {
		g.t.Fatalf("block %s handed out %s, which is %v", b.CIDR, a.Address, why)
	}
}

func (g *ipamGen) checkInvariants() {
	g.t.Helper()
	r := g.read()
	seen := map[string]bool{}
	for _, b := range g.blocks {
		p := netip.MustParsePrefix(b.CIDR)
		var alloc, dealloc uint64
		for _, a := range r.IPAddressList(b.ID) {
			key := fmt.Sprint(b.ID, a.Address)
			if seen[key] {
				g.t.Fatalf("address %s held twice in block %d", a.Address, b.ID)
			}
			seen[key] = true
			if !p.Contains(netip.MustParseAddr(a.Address)) {
				g.t.Fatalf("address %s outside its block %s", a.Address, b.CIDR)
			}
			if a.Deallocated {
				dealloc++
			} else {
				alloc++
			}
		}
		u, _ := r.IPBlockUtilisation(b.ID)
		if u.Allocated.Lo != alloc || u.Deallocated.Lo != dealloc {
			g.t.Fatalf("block %d: engine counts %d/%d, rows %d/%d", b.ID, u.Allocated.Lo, u.Deallocated.Lo, alloc, dealloc)
		}
	}
}

func buildIPAMLog(t *testing.T, seed uint64, n int) *ipamGen {
	g := newIPAMGen(t, seed)
	for range n {
		g.step()
	}
	return g
}

func TestIPAMDeterminism(t *testing.T) {
	for _, seed := range []uint64{3, 4, 20260201} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			g := buildIPAMLog(t, seed, 1500)
			t.Logf("%d entries: %d ok, %d failed; by type %v", len(g.log), g.okay, g.failed, g.types)
			for _, typ := range []fsm.MessageType{fsm.IPAddressAllocateType, fsm.IPAddressReleaseType,
				fsm.IPAddressRestoreType, fsm.IPAddressPurgeType, fsm.IPPolicyUpdateType} {
				if g.types[typ] == 0 {
					t.Errorf("no command of type %d", typ)
				}
			}
			a, b := newFSM(), newFSM()
			ra, rb := replay(a, g.log), replay(b, g.log)
			for i := range ra {
				if ra[i] != rb[i] {
					t.Fatalf("entry %d: results differ:\n A %s\n B %s", i, ra[i], rb[i])
				}
			}
			snapA := persist(t, a)
			if !bytes.Equal(snapA, persist(t, b)) || !bytes.Equal(snapA, persist(t, g.scratch)) {
				t.Fatal("snapshots differ")
			}

			// Batched application gives the same results and state.
			c := newFSM()
			var rc []string
			for i := 0; i < len(g.log); i += 7 {
				batch := g.log[i:min(i+7, len(g.log))]
				for _, v := range c.ApplyBatch(batch) {
					rc = append(rc, outcome(v))
				}
			}
			for i := range rc {
				if rc[i] != ra[i] {
					t.Fatalf("entry %d: batched result differs:\n one %s\n batch %s", i, ra[i], rc[i])
				}
			}
			if !bytes.Equal(snapA, persist(t, c)) {
				t.Fatal("batched state differs")
			}

			// Restore mid-log, replay the rest: the engines are rebuilt.
			mid := len(g.log) / 2
			d := newFSM()
			replay(d, g.log[:mid])
			e := newFSM()
			if err := e.Restore(io.NopCloser(bytes.NewReader(persist(t, d)))); err != nil {
				t.Fatal(err)
			}
			re := replay(e, g.log[mid:])
			for i := range re {
				if re[i] != ra[mid+i] {
					t.Fatalf("entry %d after restore differs:\n full     %s\n restored %s", mid+i, ra[mid+i], re[i])
				}
			}
			if !bytes.Equal(snapA, persist(t, e)) {
				t.Fatal("state after restore + replay differs")
			}

			// The next allocation in every block after a restore equals the
			// one without.
			f := newFSM()
			if err := f.Restore(io.NopCloser(bytes.NewReader(snapA))); err != nil {
				t.Fatal(err)
			}
			for i, blk := range g.blocks {
				cmd, _ := fsm.NewCommand(fsm.IPAddressAllocateType, g.now, fsm.Actor{}, &api.IPAddress{BlockID: blk.ID})
				data, _ := cmd.Encode()
				l := raft.Log{Index: g.index + uint64(i) + 1, Type: raft.LogCommand, Data: data}
				l2 := l
				if x, y := outcome(a.Apply(&l)), outcome(f.Apply(&l2)); x != y {
					t.Fatalf("block %d: next allocation %s, after restore %s", blk.ID, x, y)
				}
			}
		})
	}
}
