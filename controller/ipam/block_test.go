package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/netx"
)

func mustBlock(t testing.TB, cfg Config) *Block {
	t.Helper()
	b, err := NewBlock(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// allocN allocates n addresses with the sequential generator and returns
// them as strings, stopping at the first error.
func allocN(t testing.TB, b *Block, n int) ([]string, error) {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		a, err := b.AllocateNext(Request{})
		if err != nil {
			return out, err
		}
		out = append(out, a.String())
	}
	return out, nil
}

func TestMelangeAllocationVectors(t *testing.T) {
	cases := []struct {
		name    string
		cidr    string
		gateway string
		want    []string
	}{
		// melange-facts §4: the network address is allocatable.
		{"first of /28 is the network address", "10.1.1.0/28", "", []string{"10.1.1.0", "10.1.1.1", "10.1.1.2",
			"10.1.1.3", "10.1.1.4", "10.1.1.5", "10.1.1.6", "10.1.1.7", "10.1.1.8", "10.1.1.9", "10.1.1.10",
			"10.1.1.11", "10.1.1.12", "10.1.1.13", "10.1.1.14"}},
		// §4 / checklist 75 without a gateway: .0 .1 .2 then full.
		{"/30 without gateway", "10.0.0.0/30", "", []string{"10.0.0.0", "10.0.0.1", "10.0.0.2"}},
		// Precedence note: the spec's default gateway (.1) leaves .0 and .2.
		{"/30 with the default gateway", "10.0.0.0/30", "default", []string{"10.0.0.0", "10.0.0.2"}},
		{"gateway .0 on /29", "10.0.0.0/29", "10.0.0.0", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}},
		// §17.1: /31 and /32 have no broadcast in the netaddr Regent follows.
		{"/31", "10.0.0.0/31", "", []string{"10.0.0.0", "10.0.0.1"}},
		{"/32", "10.0.0.7/32", "", []string{"10.0.0.7"}},
		{"/127", "fe::/127", "", []string{"fe::", "fe::1"}},
		{"IPv6 last address is the broadcast", "fe::/126", "", []string{"fe::", "fe::1", "fe::2"}},
		{"gateway outside the block reserves nothing", "10.0.0.0/30", "192.168.0.1", []string{"10.0.0.0", "10.0.0.1", "10.0.0.2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := pfx(c.cidr)
			var gw netip.Addr
			switch c.gateway {
			case "":
			case "default":
				gw = MelangeDefaultGateway(p)
			default:
				gw = ip(c.gateway)
			}
			b := mustBlock(t, Config{Prefix: p, Gateway: gw, Dialect: Melange})
			got, err := allocN(t, b, len(c.want)+1)
			if !slices.Equal(got, c.want) {
				t.Fatalf("allocated %v; want %v", got, c.want)
			}
			if !errors.Is(err, ErrFull) {
				t.Fatalf("after %d addresses: %v; want ErrFull", len(got), err)
			}
			if u := b.Utilisation(); u.Usable != netx.U64(uint64(len(c.want))) || u.Ratio() != 1 {
				t.Fatalf("utilisation %+v", u)
			}
		})
	}
}

func TestCloudCIXReservations(t *testing.T) {
	b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/29"), Gateway: ip("10.0.0.1"), Dialect: CloudCIX})
	got, err := allocN(t, b, 10)
	if want := []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}; !slices.Equal(got, want) || !errors.Is(err, ErrFull) {
		t.Fatalf("%v %v", got, err)
	}
	for addr, want := range map[string]Reason{"10.0.0.0": ReasonNetwork, "10.0.0.7": ReasonBroadcast, "10.0.0.1": ReasonGateway, "10.0.0.3": ReasonAllocated, "10.0.1.0": ReasonOutside} {
		if r := b.Why(ip(addr)); r != want {
			t.Errorf("Why(%s) = %v; want %v", addr, r, want)
		}
	}
	if u := b.Utilisation(); u.Usable != netx.U64(5) {
		t.Fatalf("usable %v", u.Usable)
	}
	// /31 point-to-point: both usable (RFC 3021), also in the CloudCIX dialect.
	p2p := mustBlock(t, Config{Prefix: pfx("10.0.0.0/31"), Dialect: CloudCIX})
	if got, _ := allocN(t, p2p, 3); !slices.Equal(got, []string{"10.0.0.0", "10.0.0.1"}) {
		t.Fatalf("/31: %v", got)
	}
	// IPv6: subnet-router anycast and the last address are reserved.
	v6 := mustBlock(t, Config{Prefix: pfx("fd00::/126"), Dialect: CloudCIX})
	if got, _ := allocN(t, v6, 3); !slices.Equal(got, []string{"fd00::1", "fd00::2"}) {
		t.Fatalf("v6: %v", got)
	}
}

func TestSpecificAddressErrors(t *testing.T) {
	// melange-facts §5.
	b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/24"), Gateway: ip("10.0.0.1"),
		Policy: Policy{Ranges: []Range{{Offset: 10, Length: 2}}, Octets: []int64{200}}})
	for _, c := range []struct {
		addr string
		err  error
		why  Reason
	}{
		{"10.0.1.1", ErrOutside, ReasonOutside},
		{"fe::1", ErrOutside, ReasonOutside},
		{"10.0.0.1", ErrReserved, ReasonGateway},
		{"10.0.0.255", ErrReserved, ReasonBroadcast},
		{"10.0.0.10", ErrPolicy, ReasonPolicyRange},
		{"10.0.0.11", ErrPolicy, ReasonPolicyRange},
		{"10.0.0.200", ErrPolicy, ReasonPolicyOctet},
	} {
		err := b.Allocate(ip(c.addr))
		var ae *AddrError
		if !errors.Is(err, c.err) || !errors.As(err, &ae) || ae.Reason != c.why {
			t.Errorf("Allocate(%s) = %v; want %v (%v)", c.addr, err, c.err, c.why)
		}
	}
	for _, a := range []string{"10.0.0.0", "10.0.0.12", "10.0.0.2"} {
		if err := b.Allocate(ip(a)); err != nil {
			t.Fatalf("Allocate(%s): %v", a, err)
		}
	}
	if err := b.Allocate(ip("10.0.0.12")); !errors.Is(err, ErrInUse) {
		t.Fatalf("duplicate: %v", err)
	}
	// A soft-deallocated address is still taken (409).
	if err := b.Release(ip("10.0.0.12"), time.Unix(100, 0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Allocate(ip("10.0.0.12")); !errors.Is(err, ErrInUse) || b.Why(ip("10.0.0.12")) != ReasonDeallocated {
		t.Fatalf("deallocated: %v", err)
	}
	// Sequential: .0 and .2 taken, .1 gateway → .3.
	if a, err := b.NextFree(Request{}); err != nil || a.String() != "10.0.0.3" {
		t.Fatalf("NextFree %v %v", a, err)
	}
}

func TestPolicyVectors(t *testing.T) {
	// melange-facts §6 table, on 10.0.0.0/29 without gateway.
	cases := []struct {
		ranges     []Range
		octets     []int64
		disallowed []string
		allowed    []string
	}{
		{[]Range{{0, 1}}, nil, []string{"10.0.0.0"}, []string{"10.0.0.1"}},
		{[]Range{{-3, 2}}, nil, []string{"10.0.0.5", "10.0.0.6"}, []string{"10.0.0.4"}},
		{[]Range{{-3, 3}}, nil, []string{"10.0.0.5", "10.0.0.6"}, []string{"10.0.0.4"}}, // .7 is the broadcast anyway
		{[]Range{{0, 2}, {3, 2}}, nil, []string{"10.0.0.1", "10.0.0.4"}, []string{"10.0.0.2", "10.0.0.6"}},
		{[]Range{{-100, 1}}, nil, nil, []string{"10.0.0.0"}}, // clamped: empty slice
		{[]Range{{-100, 101}}, nil, []string{"10.0.0.0", "10.0.0.6"}, nil},
		{[]Range{{6, 100}}, nil, []string{"10.0.0.6"}, []string{"10.0.0.5"}},
		{[]Range{{0, 0}}, nil, nil, []string{"10.0.0.0"}},
	}
	for i, c := range cases {
		b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/29"), Policy: Policy{Ranges: c.ranges, Octets: c.octets}})
		for _, a := range c.disallowed {
			if r := b.Why(ip(a)); r != ReasonPolicyRange {
				t.Errorf("case %d: %s is %v; want disallowed", i, a, r)
			}
		}
		for _, a := range c.allowed {
			if r := b.Why(ip(a)); r != ReasonNone {
				t.Errorf("case %d: %s is %v; want allowed", i, a, r)
			}
		}
	}
	// The .7 of case 3 is also inside the range: the broadcast check comes first.
	b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/29"), Policy: Policy{Ranges: []Range{{-3, 3}}}})
	if r := b.Why(ip("10.0.0.7")); r != ReasonBroadcast {
		t.Fatal(r)
	}
	// Octets 123 and 124 (any block).
	o := mustBlock(t, Config{Prefix: pfx("10.0.0.0/8"), Policy: Policy{Octets: []int64{123, 124}}})
	if o.Why(ip("10.0.0.123")) != ReasonPolicyOctet || o.Why(ip("10.124.123.6")) != ReasonNone {
		t.Fatal("octets")
	}
	// IPv6: the octet is the last 16-bit group; ranges apply too.
	v6 := mustBlock(t, Config{Prefix: pfx("fe::/64"), Policy: Policy{Octets: []int64{0x7b}, Ranges: []Range{{0, 1}}}})
	if v6.Why(ip("fe::1:7b")) != ReasonPolicyOctet || v6.Why(ip("fe::7b:1")) != ReasonNone || v6.Why(ip("fe::")) != ReasonPolicyRange {
		t.Fatal("v6 policy")
	}
	if _, err := NewBlock(Config{Prefix: pfx("10.0.0.0/29"), Policy: Policy{Ranges: []Range{{0, -1}}}}); !errors.Is(err, ErrInvalid) {
		t.Fatal("negative length accepted")
	}
}

func TestSequentialSkipsPolicy(t *testing.T) {
	// Generated IPv4 addresses skip policy ranges and octets.
	b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/24"), Gateway: ip("10.0.0.1"),
		Policy: Policy{Ranges: []Range{{0, 1}, {3, 2}}, Octets: []int64{2, 6, 7, 8}}})
	got, _ := allocN(t, b, 3)
	if want := []string{"10.0.0.5", "10.0.0.9", "10.0.0.10"}; !slices.Equal(got, want) {
		t.Fatalf("%v; want %v", got, want)
	}
	// Octet jumps cross /24 boundaries arithmetically.
	big := mustBlock(t, Config{Prefix: pfx("10.0.0.0/8"), Policy: Policy{Octets: []int64{0, 255, 254}}})
	if err := big.Load(nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 253; i++ {
		if err := big.Allocate(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	if a, _ := big.NextFree(Request{}); a.String() != "10.0.1.1" {
		t.Fatalf("next after a full /24: %s", a)
	}
	// Every octet disallowed: nothing usable, immediately full.
	all := make([]int64, 256)
	for i := range all {
		all[i] = int64(i)
	}
	none := mustBlock(t, Config{Prefix: pfx("10.0.0.0/8"), Policy: Policy{Octets: all}})
	if _, err := none.NextFree(Request{}); !errors.Is(err, ErrFull) || !none.Utilisation().Usable.IsZero() {
		t.Fatal("all octets disallowed")
	}
}

func TestOctetPolicyStaysFlatWhenFull(t *testing.T) {
	// The case that defeats a naive skip loop: octets 0 and 255 disallowed
	// and every allowed address of many /24s allocated, so the held runs
	// are separated only by disallowed addresses. The glue index keeps
	// NextFree at one look-up.
	b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/8"), Policy: Policy{Octets: []int64{0, 255}}, Seed: 9})
	var held []netip.Addr
	for x := 0; x < 2000; x++ {
		for o := 1; o <= 254; o++ {
			held = append(held, netip.AddrFrom4([4]byte{10, byte(x >> 8), byte(x), byte(o)}))
		}
	}
	if err := b.Load(held, nil); err != nil {
		t.Fatal(err)
	}
	if n := b.blocked.Len(); n != 1 {
		t.Fatalf("blocked has %d intervals; want 1", n)
	}
	a, err := b.NextFree(Request{})
	if err != nil || a.String() != "10.7.208.1" {
		t.Fatalf("NextFree = %v %v", a, err)
	}
	// Purging one address in the middle makes it next.
	if err := b.Release(ip("10.3.3.3"), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	b.Purge(time.Unix(1, 0))
	if a, _ := b.NextFree(Request{}); a.String() != "10.3.3.3" {
		t.Fatalf("after purge: %s", a)
	}
	if got, _ := allocN(t, b, 2); !slices.Equal(got, []string{"10.3.3.3", "10.7.208.1"}) {
		t.Fatal(got)
	}
	if n := b.blocked.Len(); n != 1 {
		t.Fatalf("blocked has %d intervals after refill; want 1", n)
	}
}

func TestReleaseRestorePurge(t *testing.T) {
	b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/28"), Seed: 3})
	got, _ := allocN(t, b, 6) // .0 … .5
	if len(got) != 6 {
		t.Fatal(got)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Release(ip("10.0.0.4"), t0))
	must(b.Release(ip("10.0.0.1"), t0.Add(day)))
	must(b.Release(ip("10.0.0.2"), t0.Add(2*day)))
	if err := b.Release(ip("10.0.0.2"), t0); !errors.Is(err, ErrReleased) {
		t.Fatalf("double release: %v", err)
	}
	if err := b.Release(ip("10.0.0.9"), t0); !errors.Is(err, ErrNotAllocated) {
		t.Fatalf("release of free: %v", err)
	}
	if err := b.Release(ip("10.0.1.9"), t0); !errors.Is(err, ErrOutside) {
		t.Fatalf("release outside: %v", err)
	}
	if err := b.Restore(ip("10.0.0.3")); !errors.Is(err, ErrNotReleased) {
		t.Fatalf("restore of allocated: %v", err)
	}
	if st, at := b.State(ip("10.0.0.1")); st != Deallocated || !at.Equal(t0.Add(day)) {
		t.Fatalf("state %v %v", st, at)
	}
	must(b.Restore(ip("10.0.0.1")))
	if st, _ := b.State(ip("10.0.0.1")); st != Allocated {
		t.Fatal(st)
	}
	u := b.Utilisation()
	if u.Allocated != netx.U64(4) || u.Deallocated != netx.U64(2) {
		t.Fatalf("%+v", u)
	}
	// Purge is inclusive: keep = 1 day at t0+3d deletes what was released
	// at t0+2d exactly, and everything older.
	purged := b.Purge(t0.Add(3 * day).Add(-day))
	if len(purged) != 2 || purged[0].Addr.String() != "10.0.0.2" || purged[1].Addr.String() != "10.0.0.4" || !purged[1].At.Equal(t0) {
		t.Fatalf("purged %v", purged)
	}
	if b.Purge(t0.Add(10*day)) != nil {
		t.Fatal("second purge found something")
	}
	// Freed addresses are reused, lowest first.
	if got, _ := allocN(t, b, 3); !slices.Equal(got, []string{"10.0.0.2", "10.0.0.4", "10.0.0.6"}) {
		t.Fatalf("reuse %v", got)
	}
	if err := b.Restore(ip("10.0.0.9")); !errors.Is(err, ErrNotAllocated) {
		t.Fatal(err)
	}
}

func TestIPv6GeneratorVectors(t *testing.T) {
	// melange-facts §7.
	if iid := EUI64IID(0x12ff12896734); iid != 0x10ff12fffe896734 {
		t.Fatalf("EUI64IID %x", iid)
	}
	if iid := TenantIID("1234", 0x00ff12896734); iid != 0x7110eda4ff896734 {
		t.Fatalf("TenantIID %x", iid)
	}
	cases := []struct {
		gen           Generator
		prefix        string
		tenant, mac   string
		first, second string
	}{
		{EUI64, "fe::/64", "", "12:ff:12:89:67:34", "fe::10ff:12ff:fe89:6734", "fe::10ff:12ff:fe89:6735"},
		{EUI64, "fe::/72", "", "12:ff:12:89:67:34", "fe::ff:12ff:fe89:6734", "fe::ff:12ff:fe89:6735"},
		{TenantHash, "fe::/64", "1234", "00:ff:12:89:67:34", "fe::7110:eda4:ff89:6734", "fe::7110:eda4:ff89:6735"},
		{TenantHash, "fe::/72", "1234", "00:ff:12:89:67:34", "fe::10:eda4:ff89:6734", "fe::10:eda4:ff89:6735"},
	}
	for _, c := range cases {
		mac, err := netx.ParseMAC(c.mac)
		if err != nil {
			t.Fatal(err)
		}
		b := mustBlock(t, Config{Prefix: pfx(c.prefix), Generator: c.gen})
		req := Request{MAC: mac, HasMAC: true, Tenant: c.tenant}
		first, err := b.AllocateNext(req)
		if err != nil || first.String() != c.first {
			t.Errorf("%v %s: first %v %v; want %s", c.gen, c.prefix, first, err, c.first)
		}
		// Same MAC again: the first candidate exists, so MAC+1.
		second, err := b.AllocateNext(req)
		if err != nil || second.String() != c.second {
			t.Errorf("%v %s: second %v %v; want %s", c.gen, c.prefix, second, err, c.second)
		}
		if netx.Expand(first) == first.String() {
			t.Error("expanded form")
		}
	}
	b := mustBlock(t, Config{Prefix: pfx("fe::/64"), Generator: TenantHash})
	if _, err := b.NextFree(Request{}); !errors.Is(err, ErrMACRequired) {
		t.Fatalf("no MAC: %v", err)
	}
	if _, err := NewBlock(Config{Prefix: pfx("10.0.0.0/24"), Generator: EUI64}); !errors.Is(err, ErrInvalid) {
		t.Fatal("EUI64 on IPv4 accepted")
	}
}

func TestIPv6GeneratorSkipsAndWraps(t *testing.T) {
	mac := netx.MAC(0x00ff128967ff)
	// The gateway and the last address are skipped; the policy is not
	// applied to generated addresses (melange-facts §6).
	b := mustBlock(t, Config{Prefix: pfx("fe::/120"), Gateway: ip("fe::ff"), Generator: TenantHash,
		Policy: Policy{Octets: []int64{0}, Ranges: []Range{{0, 10}}}})
	req := Request{MAC: mac, HasMAC: true, Tenant: "t"}
	// /120: the candidates are the low 8 bits of the MAC: ff (gateway and
	// broadcast), then wrap to 00, 01, …
	got := []string{}
	for i := 0; i < 3; i++ {
		a, err := b.AllocateNext(req)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	if !slices.Equal(got, []string{"fe::", "fe::1", "fe::2"}) {
		t.Fatalf("%v", got)
	}
	// Fill: 256 − 3 taken − gateway = 252 more, then full.
	n := 0
	for {
		if _, err := b.AllocateNext(req); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
			break
		}
		n++
	}
	if n != 252 {
		t.Fatalf("filled %d", n)
	}
	// EUI-64 in a /64 moves to the next segment when a 2^24 window is
	// exhausted: hold the whole window above the MAC's candidate.
	e := mustBlock(t, Config{Prefix: pfx("fe::/64"), Generator: EUI64})
	start := netx.AddrToU128(AddrFromIID(pfx("fe::/64"), EUI64IID(0x12ff12fffffe)))
	if err := e.Load([]netip.Addr{netx.MustU128ToAddr(start, 128), netx.MustU128ToAddr(start.Add64(1), 128)}, nil); err != nil {
		t.Fatal(err)
	}
	a, err := e.NextFree(Request{MAC: 0x12ff12fffffe, HasMAC: true})
	if err != nil || a != AddrFromIID(pfx("fe::/64"), EUI64IID(0x12ff13000000)) {
		t.Fatalf("segment carry: %v %v", a, err)
	}
}

func TestCloneIsolation(t *testing.T) {
	b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/24")})
	allocN(t, b, 5)
	snap := b.Clone()
	allocN(t, b, 5)
	if err := b.Release(ip("10.0.0.1"), time.Unix(5, 0)); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPolicy(Policy{Octets: []int64{7}}); err != nil {
		t.Fatal(err)
	}
	if snap.Utilisation().Allocated != netx.U64(5) || snap.Utilisation().Deallocated != (netx.U128{}) {
		t.Fatalf("snapshot changed: %+v", snap.Utilisation())
	}
	if a, _ := snap.NextFree(Request{}); a.String() != "10.0.0.5" {
		t.Fatal(a)
	}
	if len(snap.Config().Policy.Octets) != 0 {
		t.Fatal("policy leaked into the snapshot")
	}
}

func TestPolicyEditAfterAllocation(t *testing.T) {
	b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/24")})
	allocN(t, b, 10) // .0 … .9
	// A new policy disallows held addresses; they stay held.
	if err := b.SetPolicy(Policy{Ranges: []Range{{5, 10}}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.State(ip("10.0.0.7")); st != Allocated {
		t.Fatal(st)
	}
	if a, _ := b.NextFree(Request{}); a.String() != "10.0.0.15" {
		t.Fatalf("next %s", a)
	}
	// Purging a held address the policy now disallows does not make it
	// available.
	if err := b.Release(ip("10.0.0.7"), time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	b.Purge(time.Unix(0, 0))
	if a, _ := b.NextFree(Request{}); a.String() != "10.0.0.15" {
		t.Fatalf("next after purge %s", a)
	}
	// Lifting the policy makes the gap usable again.
	if err := b.SetPolicy(Policy{}); err != nil {
		t.Fatal(err)
	}
	if a, _ := b.NextFree(Request{}); a.String() != "10.0.0.7" {
		t.Fatalf("next after lifting %s", a)
	}
	// A gateway change too.
	if err := b.SetGateway(ip("10.0.0.7")); err != nil {
		t.Fatal(err)
	}
	if a, _ := b.NextFree(Request{}); a.String() != "10.0.0.10" {
		t.Fatalf("next after gateway %s", a)
	}
	if err := b.SetGateway(ip("fe::1")); !errors.Is(err, ErrInvalid) {
		t.Fatal("v6 gateway on v4 block")
	}
}

func TestUtilisation(t *testing.T) {
	cases := []struct {
		cfg  Config
		want uint64
	}{
		{Config{Prefix: pfx("10.0.0.0/24"), Gateway: ip("10.0.0.1")}, 254},
		{Config{Prefix: pfx("10.0.0.0/24"), Gateway: ip("10.0.0.1"), Dialect: CloudCIX}, 253},
		// 65536 − 512 (octets 0, 255; the broadcast has octet 255) − gateway.
		{Config{Prefix: pfx("10.0.0.0/16"), Gateway: ip("10.0.0.1"), Policy: Policy{Octets: []int64{0, 255}}}, 65023},
		// Range .0–.9 overlaps octet 0 at .0.
		{Config{Prefix: pfx("10.0.0.0/16"), Policy: Policy{Octets: []int64{0}, Ranges: []Range{{0, 10}}}}, 65536 - 256 - 9 - 1},
		{Config{Prefix: pfx("fe::/64")}, 1<<64 - 1},
	}
	for i, c := range cases {
		b := mustBlock(t, c.cfg)
		if got := b.Utilisation().Usable; got != netx.U64(c.want) {
			t.Errorf("case %d: usable %v; want %d", i, got, c.want)
		}
	}
	if u := mustBlock(t, Config{Prefix: pfx("::/0")}).Utilisation().Usable; u != netx.MaxU128 {
		t.Errorf("::/0 usable %v", u)
	}
}

func TestLoad(t *testing.T) {
	b := mustBlock(t, Config{Prefix: pfx("10.0.0.0/24"), Gateway: ip("10.0.0.1")})
	rel := []Released{{Addr: ip("10.0.0.3"), At: time.Unix(9, 0)}}
	// The gateway can be loaded: rows may predate a gateway change.
	if err := b.Load([]netip.Addr{ip("10.0.0.0"), ip("10.0.0.1"), ip("10.0.0.2")}, rel); err != nil {
		t.Fatal(err)
	}
	if a, _ := b.NextFree(Request{}); a.String() != "10.0.0.4" {
		t.Fatal(a)
	}
	if got := b.ReleasedAddrs(); len(got) != 1 || got[0].Addr.String() != "10.0.0.3" {
		t.Fatal(got)
	}
	var walked []string
	b.Walk(func(a netip.Addr, s State, _ time.Time) bool {
		walked = append(walked, a.String()+"="+s.String())
		return true
	})
	if want := []string{"10.0.0.0=allocated", "10.0.0.1=allocated", "10.0.0.2=allocated", "10.0.0.3=deallocated"}; !slices.Equal(walked, want) {
		t.Fatal(walked)
	}
	if err := b.Load([]netip.Addr{ip("10.0.0.5"), ip("10.0.0.5")}, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("duplicate load: %v", err)
	}
	if err := b.Load([]netip.Addr{ip("10.0.1.5")}, nil); !errors.Is(err, ErrOutside) {
		t.Fatalf("outside load: %v", err)
	}
}

// TestReconfigureRebuildsOnlyOnChange: Reconfigure rebuilds the derived
// index once when the gateway or the policy changes (both at once: once),
// and not at all when only the generator, or nothing, changes; what the
// block hands out is then what a block made with that configuration hands
// out. Invalid values are refused with SetGateway's, SetGenerator's and
// SetPolicy's errors and change nothing.
func TestReconfigureRebuildsOnlyOnChange(t *testing.T) {
	cfg := Config{Prefix: pfx("2001:db8::/120"), Gateway: ip("2001:db8::1"), Policy: Policy{Octets: []int64{5}}, Seed: 4}
	b := mustBlock(t, cfg)
	for _, a := range []string{"2001:db8::2", "2001:db8::4", "2001:db8::9"} {
		if err := b.Allocate(ip(a)); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		gw       string
		gen      Generator
		pol      Policy
		rebuilds int
	}{
		{"2001:db8::1", Sequential, Policy{Octets: []int64{5}}, 0},
		{"2001:db8::1", EUI64, Policy{Octets: []int64{5}}, 0},
		{"2001:db8::3", Sequential, Policy{Octets: []int64{5}}, 1},
		{"2001:db8::3", Sequential, Policy{Octets: []int64{6}}, 1},
		{"2001:db8::1", Sequential, Policy{}, 1},
	}
	for i, s := range steps {
		before := b.Rebuilds()
		if err := b.Reconfigure(ip(s.gw), s.gen, s.pol); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if n := b.Rebuilds() - before; n != s.rebuilds {
			t.Errorf("step %d: %d rebuilds, want %d", i, n, s.rebuilds)
		}
		fresh := mustBlock(t, Config{Prefix: cfg.Prefix, Gateway: ip(s.gw), Generator: s.gen, Policy: s.pol, Seed: 4})
		for _, a := range []string{"2001:db8::2", "2001:db8::4", "2001:db8::9"} {
			_ = fresh.Allocate(ip(a))
		}
		got, _ := b.Clone().NextFree(Request{})
		want, _ := fresh.NextFree(Request{})
		if got != want || b.Config().Generator != s.gen {
			t.Errorf("step %d: NextFree %v, a new block's %v (generator %v)", i, got, want, b.Config().Generator)
		}
	}
	cur := b.Config()
	err := b.Reconfigure(ip("10.0.0.1"), TenantHash, Policy{Ranges: []Range{{Offset: 1, Length: -1}}})
	want := errors.Join(b.Clone().SetGateway(ip("10.0.0.1")), b.Clone().SetGenerator(TenantHash), b.Clone().SetPolicy(Policy{Ranges: []Range{{Offset: 1, Length: -1}}}))
	if err == nil || err.Error() != want.Error() {
		t.Errorf("invalid values: %v, want %v", err, want)
	}
	if got := b.Config(); got.Gateway != cur.Gateway || got.Generator != cur.Generator {
		t.Errorf("a refused Reconfigure changed the block: %+v", got)
	}
}
