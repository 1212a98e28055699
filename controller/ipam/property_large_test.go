package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/netx"
)

// sparseModel is a reference for blocks too large to enumerate (/64, /8): it
// keeps held addresses in a map and finds the next address by walking
// candidates one by one, which is affordable because every rejected
// candidate is held, reserved or excluded, and the test holds few.
type sparseModel struct {
	p      netip.Prefix
	cfg    Config
	held   map[netip.Addr]State
	at     map[netip.Addr]time.Time
	policy Policy
	gw     netip.Addr
}

func (m *sparseModel) reservedWhy(a netip.Addr) Reason {
	if m.gw.IsValid() && a == m.gw {
		return ReasonGateway
	}
	if netx.HostBits(m.p) >= 2 {
		if a == netx.Last(m.p) {
			return ReasonBroadcast
		}
		if a == netx.First(m.p) && m.cfg.Dialect == CloudCIX {
			return ReasonNetwork
		}
	}
	return ReasonNone
}

func (m *sparseModel) policyWhy(a netip.Addr) Reason {
	size := netx.Span(m.p).Big()
	size.Add(size, big.NewInt(1))
	off, _ := netx.OffsetOf(m.p, a)
	o := off.Big()
	for _, r := range m.policy.Ranges {
		start := big.NewInt(r.Offset)
		stop := big.NewInt(r.Offset + r.Length)
		if r.Offset < 0 && stop.Sign() >= 0 {
			stop.Set(size)
		}
		for _, v := range []*big.Int{start, stop} {
			if v.Sign() < 0 {
				v.Add(v, size)
				if v.Sign() < 0 {
					v.SetInt64(0)
				}
			}
			if v.Cmp(size) > 0 {
				v.Set(size)
			}
		}
		if start.Cmp(o) <= 0 && o.Cmp(stop) < 0 {
			return ReasonPolicyRange
		}
	}
	if slices.Contains(m.policy.Octets, int64(netx.LastWord(a))) {
		return ReasonPolicyOctet
	}
	return ReasonNone
}

func (m *sparseModel) why(a netip.Addr) Reason {
	if !m.p.Contains(a) {
		return ReasonOutside
	}
	if r := m.reservedWhy(a); r != ReasonNone {
		return r
	}
	switch m.held[a] {
	case Allocated:
		return ReasonAllocated
	case Deallocated:
		return ReasonDeallocated
	}
	return m.policyWhy(a)
}

func (m *sparseModel) next(req Request) (netip.Addr, bool) {
	if m.cfg.Generator == Sequential {
		for a := netx.First(m.p); m.p.Contains(a); a = a.Next() {
			if m.why(a) == ReasonNone {
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	for k := uint64(0); k < 1<<24; k++ {
		mac := netx.MAC((uint64(req.MAC) + k) & uint64(netx.MaxMAC))
		iid := EUI64IID(mac)
		if m.cfg.Generator == TenantHash {
			iid = TenantIID(req.Tenant, mac)
		}
		a := AddrFromIID(m.p, iid)
		if m.reservedWhy(a) == ReasonNone && m.held[a] == Free {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func TestPropertyLargeBlocks(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		macs []netx.MAC
	}{
		{"eui64 /64 segment carry", Config{Prefix: pfx("fe::/64"), Generator: EUI64, Gateway: ip("fe::10ff:12ff:fe00:0")},
			[]netx.MAC{0x12ff12fffff0, 0x12ff13000000, 0xfffffffffff8}},
		{"eui64 /56", Config{Prefix: pfx("fe::/56"), Generator: EUI64}, []netx.MAC{0x12ff12fffffa, 0x020000000000}},
		{"eui64 /80", Config{Prefix: pfx("fe::/80"), Generator: EUI64, Dialect: CloudCIX}, []netx.MAC{0x12ff12fffffa}},
		{"tenant /48", Config{Prefix: pfx("2001:db8::/48"), Generator: TenantHash}, []netx.MAC{0x00ff12fffff0, 0x00ff12896734}},
		{"tenant /104", Config{Prefix: pfx("2001:db8::/104"), Generator: TenantHash, Gateway: ip("2001:db8::ff00:0")},
			[]netx.MAC{0x00fffffffff0}},
		{"sequential /64", Config{Prefix: pfx("fe::/64"), Policy: Policy{Octets: []int64{0, 0xffff}, Ranges: []Range{{0, 3}, {-5, 5}}}}, nil},
		{"sequential /8 octets", Config{Prefix: pfx("10.0.0.0/8"), Gateway: ip("10.0.0.1"), Dialect: CloudCIX,
			Policy: Policy{Octets: []int64{0, 1, 255}, Ranges: []Range{{0, 300}}}}, nil},
	}
	for _, c := range cases {
		for seed := int64(1); seed <= 5; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", c.name, seed), func(t *testing.T) {
				runLargeProperty(t, c.cfg, c.macs, seed)
			})
		}
	}
}

func runLargeProperty(t *testing.T, cfg Config, macs []netx.MAC, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	a := mustBlock(t, cfg)
	cfgB := cfg
	cfgB.Seed = uint64(seed) + 12345
	b := mustBlock(t, cfgB)
	m := &sparseModel{p: cfg.Prefix, cfg: cfg, held: map[netip.Addr]State{}, at: map[netip.Addr]time.Time{}, policy: cfg.Policy, gw: cfg.Gateway}
	if len(macs) == 0 {
		macs = []netx.MAC{0}
	}
	tenants := []string{"1234", "other"}
	now := time.Unix(1_700_000_000, 0).UTC()
	var handed []netip.Addr
	pick := func() netip.Addr {
		if len(handed) > 0 && rng.Intn(4) != 0 {
			return handed[rng.Intn(len(handed))]
		}
		// A random address near something interesting.
		base := netx.First(m.p)
		if len(handed) > 0 {
			base = handed[rng.Intn(len(handed))]
		}
		x, ok := netx.AddrAdd(base, netx.U64(uint64(rng.Intn(40))))
		if !ok {
			return base
		}
		return x
	}
	for step := 0; step < 800; step++ {
		now = now.Add(time.Duration(rng.Intn(3)) * time.Minute)
		switch op := rng.Intn(10); {
		case op < 5:
			req := Request{MAC: macs[rng.Intn(len(macs))], HasMAC: true, Tenant: tenants[rng.Intn(len(tenants))]}
			ga, ea := a.AllocateNext(req)
			gb, eb := b.AllocateNext(req)
			want, ok := m.next(req)
			if ga != gb || (ea == nil) != (eb == nil) {
				t.Fatalf("step %d: engines disagree %v/%v %v/%v", step, ga, gb, ea, eb)
			}
			if !ok {
				if !errors.Is(ea, ErrFull) {
					t.Fatalf("step %d: model full, engine %v", step, ga)
				}
				continue
			}
			if ea != nil || ga != want || m.held[ga] != Free {
				t.Fatalf("step %d: %v %v; model %v", step, ga, ea, want)
			}
			m.held[ga] = Allocated
			handed = append(handed, ga)
		case op < 7:
			x := pick()
			ea, eb := a.Allocate(x), b.Allocate(x)
			want := m.why(x)
			var ae *AddrError
			if (ea == nil) != (eb == nil) || (want == ReasonNone) != (ea == nil) || (ea != nil && (!errors.As(ea, &ae) || ae.Reason != want)) {
				t.Fatalf("step %d: Allocate(%v) = %v / %v; model %v", step, x, ea, eb, want)
			}
			if ea == nil {
				m.held[x] = Allocated
				handed = append(handed, x)
			}
		case op < 8:
			x := pick()
			ea, eb := a.Release(x, now), b.Release(x, now)
			if (ea == nil) != (eb == nil) || (ea == nil) != (m.held[x] == Allocated) {
				t.Fatalf("step %d: Release(%v) = %v / %v; model %v", step, x, ea, eb, m.held[x])
			}
			if ea == nil {
				m.held[x], m.at[x] = Deallocated, now
			}
		case op < 9:
			cutoff := now.Add(-time.Duration(rng.Intn(5)) * time.Minute)
			pa, pb := a.Purge(cutoff), b.Purge(cutoff)
			if !slices.Equal(pa, pb) {
				t.Fatalf("step %d: purge differs", step)
			}
			n := 0
			for x, s := range m.held {
				if s == Deallocated && !m.at[x].After(cutoff) {
					delete(m.held, x)
					n++
				}
			}
			if n != len(pa) {
				t.Fatalf("step %d: purged %d; model %d", step, len(pa), n)
			}
		default:
			var p Policy
			if rng.Intn(2) == 0 {
				p = cfg.Policy
			} else {
				p = Policy{Octets: []int64{int64(rng.Intn(4))}, Ranges: []Range{{int64(rng.Intn(20)), int64(rng.Intn(20))}}}
			}
			if err := a.SetPolicy(p); err != nil {
				t.Fatal(err)
			}
			if err := b.SetPolicy(p); err != nil {
				t.Fatal(err)
			}
			m.policy = p.clone()
		}
		if !slices.Equal(a.Held().Intervals(), b.Held().Intervals()) {
			t.Fatalf("step %d: engines hold different sets", step)
		}
		if got := a.Held().Count(); got != netx.U64(uint64(len(m.held))) {
			t.Fatalf("step %d: %v held; model %d", step, got, len(m.held))
		}
		if step%50 == 0 {
			checkBlockInvariants(t, a)
			for x, s := range m.held {
				if st, _ := a.State(x); st != s {
					t.Fatalf("step %d: State(%v) = %v; model %v", step, x, st, s)
				}
			}
		}
	}
}
