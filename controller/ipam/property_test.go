package ipam

import (
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/netx"
)

// model is a brute-force reference for small blocks: one state per address
// and every rule recomputed from scratch, written independently of the
// engine's interval arithmetic.
type model struct {
	p       netip.Prefix
	size    int
	dialect Dialect
	gen     Generator
	gw      netip.Addr
	policy  Policy
	state   []State
	at      []time.Time
}

func newModel(cfg Config) *model {
	size := 1 << netx.HostBits(cfg.Prefix)
	d := cfg.Dialect
	if d == 0 {
		d = Melange
	}
	return &model{p: cfg.Prefix.Masked(), size: size, dialect: d, gen: cfg.Generator, gw: cfg.Gateway,
		policy: cfg.Policy.clone(), state: make([]State, size), at: make([]time.Time, size)}
}

func (m *model) addr(off int) netip.Addr {
	a, _ := netx.AddrAt(m.p, netx.U64(uint64(off)))
	return a
}

func (m *model) off(a netip.Addr) (int, bool) {
	o, ok := netx.OffsetOf(m.p, a)
	return int(o.Lo), ok
}

// reservedWhy: gateway, broadcast, network (by the dialect's table).
func (m *model) reservedWhy(off int) Reason {
	if m.gw.IsValid() && m.addr(off) == m.gw {
		return ReasonGateway
	}
	if m.size >= 4 {
		if off == m.size-1 {
			return ReasonBroadcast
		}
		if off == 0 && m.dialect == CloudCIX {
			return ReasonNetwork
		}
	}
	return ReasonNone
}

func (m *model) policyWhy(off int) Reason {
	for _, r := range m.policy.Ranges {
		// Python: block[offset : offset+length], with Melange's
		// "negative offset overshooting zero runs to the end".
		start, stop := int(r.Offset), int(r.Offset+r.Length)
		if r.Offset < 0 && stop >= 0 {
			stop = m.size
		}
		norm := func(v int) int {
			if v < 0 {
				v += m.size
				if v < 0 {
					v = 0
				}
			}
			if v > m.size {
				v = m.size
			}
			return v
		}
		if start, stop = norm(start), norm(stop); start <= off && off < stop {
			return ReasonPolicyRange
		}
	}
	last := int(netx.LastWord(m.addr(off)))
	for _, o := range m.policy.Octets {
		if int64(last) == o {
			return ReasonPolicyOctet
		}
	}
	return ReasonNone
}

func (m *model) why(a netip.Addr) Reason {
	off, ok := m.off(a)
	if !ok {
		return ReasonOutside
	}
	if r := m.reservedWhy(off); r != ReasonNone {
		return r
	}
	switch m.state[off] {
	case Allocated:
		return ReasonAllocated
	case Deallocated:
		return ReasonDeallocated
	}
	return m.policyWhy(off)
}

func (m *model) usable() uint64 {
	n := uint64(0)
	for off := 0; off < m.size; off++ {
		if m.reservedWhy(off) == ReasonNone && m.policyWhy(off) == ReasonNone {
			n++
		}
	}
	return n
}

func (m *model) next(req Request) (netip.Addr, bool) {
	if m.gen == Sequential {
		for off := 0; off < m.size; off++ {
			if m.why(m.addr(off)) == ReasonNone {
				return m.addr(off), true
			}
		}
		return netip.Addr{}, false
	}
	// Melange's loop: MAC, MAC+1, … until not broadcast, not gateway and
	// not existing; the candidates cycle after min(2^h, 2^24) steps here.
	period := min(m.size, 1<<24)
	for k := 0; k < period; k++ {
		mac := netx.MAC((uint64(req.MAC) + uint64(k)) & uint64(netx.MaxMAC))
		iid := EUI64IID(mac)
		if m.gen == TenantHash {
			iid = TenantIID(req.Tenant, mac)
		}
		a := AddrFromIID(m.p, iid)
		off, _ := m.off(a)
		if m.reservedWhy(off) == ReasonNone && m.state[off] == Free {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// checkBlockInvariants verifies the engine's internal invariants: the held
// set is a valid tree inside the block, taken ⊆ blocked ⊆ taken ∪ excluded,
// and the address above every blocked run is allowed and free.
func checkBlockInvariants(t *testing.T, b *Block) {
	t.Helper()
	for _, s := range []netx.IntervalSet{b.taken, b.blocked} {
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		if mn, ok := s.Min(); ok && mn.Lo.Less(b.first) {
			t.Fatalf("set below the block: %v", mn)
		}
		if mx, ok := s.Max(); ok && b.last.Less(mx.Hi) {
			t.Fatalf("set above the block: %v", mx)
		}
	}
	b.taken.Walk(func(iv netx.Interval) bool {
		if !b.blocked.ContainsRange(iv.Lo, iv.Hi) {
			t.Fatalf("held %v not blocked", iv)
		}
		return true
	})
	b.blocked.Walk(func(iv netx.Interval) bool {
		if !b.taken.Contains(iv.Lo) {
			t.Fatalf("blocked %v does not start with a held address (orphan glue)", iv)
		}
		for _, gap := range b.taken.Gaps(iv.Lo, iv.Hi) {
			for x := gap.Lo; ; x = x.Add64(1) {
				if a, ok := b.allowedFrom(x); ok && a == x {
					t.Fatalf("blocked glue %v holds allowed free %v", gap, x)
				}
				if x == gap.Hi {
					break
				}
			}
		}
		if iv.Hi.Less(b.last) {
			above := iv.Hi.Add64(1)
			if a, ok := b.allowedFrom(above); !ok || a != above || b.taken.Contains(above) {
				t.Fatalf("above blocked %v: %v is not allowed and free", iv, above)
			}
		}
		return true
	})
	if b.dealloc.byAddr.len() != b.dealloc.byTime.len() {
		t.Fatal("dealloc indexes disagree")
	}
}

type propCase struct {
	name string
	cfg  Config
	// policy edits draw from these
	octets []int64
	steps  int
}

func propCases() []propCase {
	return []propCase{
		{"v4/24 melange gw", Config{Prefix: pfx("10.0.0.0/24"), Gateway: ip("10.0.0.1")}, []int64{0, 255, 1, 7}, 500},
		{"v4/23 cloudcix octets", Config{Prefix: pfx("10.0.2.0/23"), Gateway: ip("10.0.2.1"), Dialect: CloudCIX,
			Policy: Policy{Octets: []int64{0, 255, 254, 1}, Ranges: []Range{{10, 5}, {-20, 3}}}}, []int64{0, 1, 2, 254, 255}, 500},
		{"v4/26 negative ranges", Config{Prefix: pfx("192.168.0.64/26"),
			Policy: Policy{Ranges: []Range{{-3, 3}, {-10, 2}, {0, 1}, {-100, 98}}}}, []int64{70, 80}, 400},
		{"v4/31", Config{Prefix: pfx("10.9.9.8/31"), Dialect: CloudCIX}, []int64{8}, 100},
		{"v4/32", Config{Prefix: pfx("10.9.9.9/32"), Gateway: ip("10.9.9.9")}, nil, 50},
		{"v6/120 sequential", Config{Prefix: pfx("fd00::100/120"), Gateway: ip("fd00::101"),
			Policy: Policy{Octets: []int64{0x100, 0x1ff}}}, []int64{0x100, 0x101, 0x1fe}, 400},
		{"v6/120 tenant", Config{Prefix: pfx("fe::/120"), Gateway: ip("fe::1"), Generator: TenantHash,
			Policy: Policy{Octets: []int64{3}}}, []int64{0, 3}, 500},
		{"v6/118 eui64", Config{Prefix: pfx("fe::/118"), Generator: EUI64, Dialect: CloudCIX}, []int64{5}, 500},
		{"v4/22 glue", Config{Prefix: pfx("10.4.0.0/22"), Policy: Policy{Octets: []int64{0, 1, 2, 253, 254, 255}}}, []int64{0, 1, 128, 254, 255}, 500},
	}
}

// TestPropertyRandomSequences drives two independent engines and the model
// with the same random operations and checks after every step: no duplicate
// is ever handed out, nothing outside its block, no reserved or excluded
// address, both engines agree exactly with each other and with the model.
func TestPropertyRandomSequences(t *testing.T) {
	for _, pc := range propCases() {
		for seed := int64(1); seed <= 8; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", pc.name, seed), func(t *testing.T) {
				runProperty(t, pc, seed)
			})
		}
	}
}

func runProperty(t *testing.T, pc propCase, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	a := mustBlock(t, pc.cfg)
	cfgB := pc.cfg
	cfgB.Seed = uint64(seed) * 7919 // a different tree shape must not change results
	b := mustBlock(t, cfgB)
	m := newModel(pc.cfg)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	macs := []netx.MAC{0x12ff12896734, 0x00ff128967ff, 0x020000000000, 0xfffffffffffe}
	tenants := []string{"1234", "t", ""}
	var frozen *Block
	var frozenIntervals []netx.Interval

	randAddr := func() netip.Addr {
		off := rng.Intn(m.size + 2)
		if off >= m.size { // sometimes outside
			if m.p.Addr().Is4() {
				return ip("10.200.0.1")
			}
			return ip("2001:db8::1")
		}
		return m.addr(off)
	}
	heldAddr := func() netip.Addr {
		var held []int
		for off, s := range m.state {
			if s != Free {
				held = append(held, off)
			}
		}
		if len(held) == 0 || rng.Intn(8) == 0 {
			return randAddr()
		}
		return m.addr(held[rng.Intn(len(held))])
	}
	same := func(step int, what string, ea, eb error) {
		t.Helper()
		if (ea == nil) != (eb == nil) || (ea != nil && ea.Error() != eb.Error()) {
			t.Fatalf("step %d %s: engines disagree: %v vs %v", step, what, ea, eb)
		}
	}

	for step := 0; step < 2*pc.steps; step++ {
		now = now.Add(time.Duration(rng.Intn(3)) * time.Hour)
		switch op := rng.Intn(100); {
		case op < 35: // allocate next
			req := Request{MAC: macs[rng.Intn(len(macs))], HasMAC: true, Tenant: tenants[rng.Intn(len(tenants))]}
			ga, ea := a.AllocateNext(req)
			gb, eb := b.AllocateNext(req)
			same(step, "allocate next", ea, eb)
			if ga != gb {
				t.Fatalf("step %d: engines handed out %v and %v", step, ga, gb)
			}
			want, ok := m.next(req)
			if !ok {
				if !errors.Is(ea, ErrFull) {
					t.Fatalf("step %d: model full, engine %v %v", step, ga, ea)
				}
				break
			}
			if ea != nil || ga != want {
				t.Fatalf("step %d: allocate next = %v %v; model %v", step, ga, ea, want)
			}
			off, inside := m.off(ga)
			if !inside || m.state[off] != Free {
				t.Fatalf("step %d: %v outside or duplicate", step, ga)
			}
			if m.gen == Sequential && m.why(ga) != ReasonNone {
				t.Fatalf("step %d: handed out %v which is %v", step, ga, m.why(ga))
			}
			if m.reservedWhy(off) != ReasonNone {
				t.Fatalf("step %d: handed out reserved %v", step, ga)
			}
			m.state[off] = Allocated
		case op < 55: // explicit allocate
			addr := randAddr()
			if rng.Intn(2) == 0 {
				addr = heldAddr()
			}
			ea, eb := a.Allocate(addr), b.Allocate(addr)
			same(step, "allocate", ea, eb)
			want := m.why(addr)
			var ae *AddrError
			switch {
			case want == ReasonNone && ea != nil:
				t.Fatalf("step %d: Allocate(%v) = %v; model allows", step, addr, ea)
			case want != ReasonNone && (!errors.As(ea, &ae) || ae.Reason != want || !errors.Is(ea, want.Sentinel())):
				t.Fatalf("step %d: Allocate(%v) = %v; model %v", step, addr, ea, want)
			}
			if want == ReasonNone {
				off, _ := m.off(addr)
				m.state[off] = Allocated
			}
		case op < 70: // release
			addr := heldAddr()
			ea, eb := a.Release(addr, now), b.Release(addr, now)
			same(step, "release", ea, eb)
			off, inside := m.off(addr)
			switch {
			case !inside:
				if !errors.Is(ea, ErrOutside) {
					t.Fatalf("step %d: release outside: %v", step, ea)
				}
			case m.state[off] == Allocated:
				if ea != nil {
					t.Fatalf("step %d: release: %v", step, ea)
				}
				m.state[off], m.at[off] = Deallocated, now
			case m.state[off] == Deallocated:
				if !errors.Is(ea, ErrReleased) {
					t.Fatalf("step %d: double release: %v", step, ea)
				}
			default:
				if !errors.Is(ea, ErrNotAllocated) {
					t.Fatalf("step %d: release of free: %v", step, ea)
				}
			}
		case op < 78: // restore
			addr := heldAddr()
			ea, eb := a.Restore(addr), b.Restore(addr)
			same(step, "restore", ea, eb)
			if off, inside := m.off(addr); inside && m.state[off] == Deallocated {
				if ea != nil {
					t.Fatalf("step %d: restore: %v", step, ea)
				}
				m.state[off] = Allocated
			} else if ea == nil {
				t.Fatalf("step %d: restore of %v succeeded", step, addr)
			}
		case op < 88: // purge
			cutoff := now.Add(-time.Duration(rng.Intn(6)) * time.Hour)
			pa, pb := a.Purge(cutoff), b.Purge(cutoff)
			if !slices.Equal(pa, pb) {
				t.Fatalf("step %d: purge disagrees: %v vs %v", step, pa, pb)
			}
			var want []Released
			for off, s := range m.state {
				if s == Deallocated && !m.at[off].After(cutoff) {
					want = append(want, Released{Addr: m.addr(off), At: m.at[off]})
					m.state[off] = Free
				}
			}
			if len(want) != len(pa) {
				t.Fatalf("step %d: purged %v; model %v", step, pa, want)
			}
			for i := range want {
				if pa[i].Addr != want[i].Addr || !pa[i].At.Equal(want[i].At) {
					t.Fatalf("step %d: purged %v; model %v", step, pa, want)
				}
			}
		case op < 94: // policy edit
			var p Policy
			for i := rng.Intn(3); i > 0; i-- {
				p.Ranges = append(p.Ranges, Range{Offset: int64(rng.Intn(2*m.size+1) - m.size), Length: int64(rng.Intn(m.size/2 + 2))})
			}
			for _, o := range pc.octets {
				if rng.Intn(2) == 0 {
					p.Octets = append(p.Octets, o)
				}
			}
			same(step, "policy", a.SetPolicy(p), b.SetPolicy(p))
			m.policy = p.clone()
		case op < 97: // gateway edit
			gw := m.addr(rng.Intn(m.size))
			if rng.Intn(4) == 0 {
				gw = netip.Addr{}
			}
			same(step, "gateway", a.SetGateway(gw), b.SetGateway(gw))
			m.gw = gw
		default: // B goes through a snapshot: rebuilt from its own rows
			var alloc []netip.Addr
			var rel []Released
			b.Walk(func(x netip.Addr, s State, at time.Time) bool {
				if s == Deallocated {
					rel = append(rel, Released{Addr: x, At: at})
				} else {
					alloc = append(alloc, x)
				}
				return true
			})
			nb := mustBlock(t, b.Config())
			if err := nb.Load(alloc, rel); err != nil {
				t.Fatal(err)
			}
			b = nb
		}
		if step == pc.steps {
			frozen, frozenIntervals = a.Clone(), a.Held().Intervals()
		}

		// After every step: the engines agree with each other and with the model.
		ia, ib := a.Held().Intervals(), b.Held().Intervals()
		if !slices.Equal(ia, ib) {
			t.Fatalf("step %d: held sets differ", step)
		}
		var modelHeld []netx.Interval
		for off, s := range m.state {
			if s == Free {
				continue
			}
			x := netx.AddrToU128(m.addr(off))
			if k := len(modelHeld); k > 0 && modelHeld[k-1].Hi.Add64(1) == x {
				modelHeld[k-1].Hi = x
			} else {
				modelHeld = append(modelHeld, netx.Interval{Lo: x, Hi: x})
			}
		}
		if !slices.Equal(ia, modelHeld) {
			t.Fatalf("step %d: held %v; model %v", step, ia, modelHeld)
		}
		if !slices.Equal(a.ReleasedAddrs(), b.ReleasedAddrs()) || a.Utilisation() != b.Utilisation() {
			t.Fatalf("step %d: released or utilisation differ", step)
		}
		na, ea := a.NextFree(Request{MAC: macs[0], HasMAC: true, Tenant: "1234"})
		nbb, eb := b.NextFree(Request{MAC: macs[0], HasMAC: true, Tenant: "1234"})
		same(step, "next free", ea, eb)
		if na != nbb {
			t.Fatalf("step %d: next free %v vs %v", step, na, nbb)
		}
		// A sample of addresses (all of them every 25 steps).
		if step%25 == 0 {
			if u := a.Utilisation(); u.Usable != netx.U64(m.usable()) {
				t.Fatalf("step %d: usable %v; model %d", step, u.Usable, m.usable())
			}
			for off := 0; off < m.size; off++ {
				if r := a.Why(m.addr(off)); r != m.why(m.addr(off)) {
					t.Fatalf("step %d: Why(%v) = %v; model %v", step, m.addr(off), r, m.why(m.addr(off)))
				}
			}
			checkBlockInvariants(t, a)
			checkBlockInvariants(t, b)
		} else {
			for i := 0; i < 8; i++ {
				x := randAddr()
				if r := a.Why(x); r != m.why(x) || b.Why(x) != r {
					t.Fatalf("step %d: Why(%v) = %v / %v; model %v", step, x, r, b.Why(x), m.why(x))
				}
			}
		}
	}
	if frozen != nil && !slices.Equal(frozen.Held().Intervals(), frozenIntervals) {
		t.Fatal("a clone changed after later operations")
	}
	checkBlockInvariants(t, a)
}
