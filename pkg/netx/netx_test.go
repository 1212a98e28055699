package netx

import (
	"errors"
	"math/big"
	"math/rand"
	"net/netip"
	"strings"
	"testing"
)

func TestU128Arithmetic(t *testing.T) {
	one := U64(1)
	if s, o := MaxU128.AddOverflow(one); !o || !s.IsZero() {
		t.Fatalf("max+1 = %v, %v", s, o)
	}
	if d, u := (U128{}).SubUnderflow(one); !u || !d.IsMax() {
		t.Fatalf("0-1 = %v, %v", d, u)
	}
	if got := U64(^uint64(0)).Add64(1); got != (U128{Hi: 1}) {
		t.Fatalf("carry: %v", got)
	}
	if got := (U128{Hi: 1}).Sub64(1); got != U64(^uint64(0)) {
		t.Fatalf("borrow: %v", got)
	}
	if MaxU128.AddSat(one) != MaxU128 {
		t.Fatal("AddSat")
	}
	for _, n := range []uint{0, 1, 63, 64, 65, 127, 128, 200} {
		b := new(big.Int).Lsh(big.NewInt(1), n)
		b.Sub(b, big.NewInt(1))
		if n > 128 {
			b = MaxU128.Big()
		}
		if LowMask(n).Big().Cmp(b) != 0 {
			t.Fatalf("LowMask(%d) = %v", n, LowMask(n))
		}
	}
	x := U128{Hi: 0x0123456789abcdef, Lo: 0xfedcba9876543210}
	for n := uint(0); n <= 130; n++ {
		want := new(big.Int).Lsh(x.Big(), n)
		want.And(want, MaxU128.Big())
		if x.Lsh(n).Big().Cmp(want) != 0 {
			t.Fatalf("Lsh %d", n)
		}
		if x.Rsh(n).Big().Cmp(new(big.Int).Rsh(x.Big(), n)) != 0 {
			t.Fatalf("Rsh %d", n)
		}
	}
	if x.String() != x.Big().String() || U64(42).String() != "42" {
		t.Fatal("String")
	}
	if u, ok := U128FromBig(MaxU128.Big()); !ok || u != MaxU128 {
		t.Fatal("FromBig")
	}
	if _, ok := U128FromBig(new(big.Int).Lsh(big.NewInt(1), 128)); ok {
		t.Fatal("FromBig overflow accepted")
	}
	if (U128{}).TrailingZeros() != 128 || (U128{Hi: 2}).TrailingZeros() != 65 {
		t.Fatal("TrailingZeros")
	}
}

func TestAddrConversions(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "10.1.2.3", "255.255.255.255", "::", "fe::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:10.0.0.1"} {
		a := netip.MustParseAddr(s)
		back, ok := U128ToAddr(AddrToU128(a), a.BitLen())
		if !ok || back != a {
			t.Fatalf("%s round trip: %v", s, back)
		}
	}
	if _, ok := U128ToAddr(U64(1<<32), 32); ok {
		t.Fatal("2^32 fits IPv4")
	}
	a := netip.MustParseAddr("10.0.0.255")
	if n, ok := AddrAdd(a, U64(1)); !ok || n.String() != "10.0.1.0" {
		t.Fatalf("AddrAdd %v", n)
	}
	if _, ok := AddrAdd(netip.MustParseAddr("255.255.255.255"), U64(1)); ok {
		t.Fatal("AddrAdd overflow")
	}
	if n, ok := AddrSub(a, U64(256)); !ok || n.String() != "9.255.255.255" {
		t.Fatalf("AddrSub %v", n)
	}
	if d, err := AddrDiff(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.1.0")); err != nil || d != U64(255) {
		t.Fatalf("AddrDiff %v %v", d, err)
	}
	if _, err := AddrDiff(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::1")); !errors.Is(err, ErrFamilyMismatch) {
		t.Fatalf("AddrDiff mismatch: %v", err)
	}
	if got := Expand(netip.MustParseAddr("ff::1")); got != "00ff:0000:0000:0000:0000:0000:0000:0001" {
		t.Fatal(got)
	}
	if LastWord(netip.MustParseAddr("10.0.0.123")) != 123 || LastWord(netip.MustParseAddr("fe::1:7b")) != 0x7b {
		t.Fatal("LastWord")
	}
	if err := CheckFamily(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("::1")); !errors.Is(err, ErrFamilyMismatch) {
		t.Fatal("CheckFamily")
	}
	for _, s := range []string{"", "fe80::1%eth0", " 10.0.0.1", "10...", "1.2.3.4.5"} {
		if _, err := ParseAddr(s); err == nil {
			t.Fatalf("ParseAddr(%q) accepted", s)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	ok := []struct{ in, want string }{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.0.0.1/31", "10.0.0.0/31"}, // Melange normalisation
		{"10.1.1.1/32", "10.1.1.1/32"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"fe::/64", "fe::/64"},
		{"fe::1/64", "fe::/64"},
		{"2001:db8::1/128", "2001:db8::1/128"},
		{"::/0", "::/0"},
		{"::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"},
	}
	for _, c := range ok {
		p, err := ParsePrefix(c.in)
		if err != nil || p.String() != c.want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", c.in, p, err, c.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty"},
		{"10...", "missing prefix length"},
		{"10.0.0.0", "missing prefix length"},
		{"10.0.0.0/", "missing prefix length"},
		{"10.1.1.1////", "more than one '/'"},
		{"10.0.0.0/33", "out of range for IPv4 (0-32)"},
		{"fe::/129", "out of range for IPv6 (0-128)"},
		{"10.0.0.0/-1", "negative"},
		{"10.0.0.0/+8", "not a decimal integer"},
		{"10.0.0.0/ 8", "not a decimal integer"},
		{"10.0.0.0/08", "leading zeros"},
		{"10.0.0.0/99999999999999999999", "out of range"},
		{"/24", "missing address"},
		{"10.0.0/24", "bad address"},
		{"fe80::1%eth0/64", "zones"},
		{"10...0/24", "bad address"},
	}
	for _, c := range bad {
		_, err := ParsePrefix(c.in)
		var pe *ParseError
		if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParsePrefix(%q) error = %v; want %q", c.in, err, c.msg)
		}
	}
	if p, err := ParsePrefixRaw("10.0.0.1/24"); err != nil || p.Addr().String() != "10.0.0.1" {
		t.Fatal("raw keeps host bits")
	}
	if p, err := ParsePrefixOrAddr("10.1.1.1"); err != nil || p.String() != "10.1.1.1/32" {
		t.Fatal("ParsePrefixOrAddr")
	}
}

func TestPrefixMath(t *testing.T) {
	p := netip.MustParsePrefix("10.0.0.0/24")
	if First(p).String() != "10.0.0.0" || Last(p).String() != "10.0.0.255" {
		t.Fatal("first/last")
	}
	if Size(p) != U64(256) || Span(p) != U64(255) || HostBits(p) != 8 {
		t.Fatal("size")
	}
	if Netmask(p).String() != "255.255.255.0" || Hostmask(p).String() != "0.0.0.255" {
		t.Fatal("masks")
	}
	v6 := netip.MustParsePrefix("fe::/64")
	if Last(v6).String() != "fe::ffff:ffff:ffff:ffff" || Netmask(v6).String() != "ffff:ffff:ffff:ffff::" {
		t.Fatalf("v6 last %s", Last(v6))
	}
	if Size(netip.MustParsePrefix("::/0")) != MaxU128 || Span(netip.MustParsePrefix("::/0")) != MaxU128 {
		t.Fatal("::/0 size")
	}
	if Size(netip.MustParsePrefix("::/1")) != (U128{Hi: 1 << 63}) {
		t.Fatal("::/1 size")
	}
	a, ok := AddrAt(p, U64(255))
	if !ok || a.String() != "10.0.0.255" {
		t.Fatal("AddrAt")
	}
	if _, ok := AddrAt(p, U64(256)); ok {
		t.Fatal("AddrAt outside")
	}
	if off, ok := OffsetOf(p, netip.MustParseAddr("10.0.0.7")); !ok || off != U64(7) {
		t.Fatal("OffsetOf")
	}
	in := netip.MustParsePrefix("10.0.0.64/26")
	if !ContainsPrefix(p, in) || ContainsPrefix(in, p) || !ContainsPrefix(p, p) {
		t.Fatal("ContainsPrefix")
	}
	if !Overlaps(p, in) || Overlaps(in, netip.MustParsePrefix("10.0.0.128/26")) || Overlaps(p, v6) {
		t.Fatal("Overlaps")
	}
	if ComparePrefix(p, in) >= 0 || ComparePrefix(p, v6) >= 0 || ComparePrefix(in, in) != 0 {
		t.Fatal("ComparePrefix")
	}
}

func TestRangeToPrefixes(t *testing.T) {
	cases := []struct {
		lo, hi string
		want   string
	}{
		{"10.0.0.0", "10.0.0.255", "10.0.0.0/24"},
		{"10.0.0.1", "10.0.0.6", "10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"255.255.255.255", "255.255.255.255", "255.255.255.255/32"},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"},
		{"::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
	}
	for _, c := range cases {
		lo, hi := netip.MustParseAddr(c.lo), netip.MustParseAddr(c.hi)
		got := RangeToPrefixes(AddrToU128(lo), AddrToU128(hi), lo.BitLen())
		var parts []string
		for _, p := range got {
			parts = append(parts, p.String())
		}
		if c.want == "" {
			if len(got) != 128 || got[0].String() != "::1/128" || got[127].String() != "8000::/1" {
				t.Errorf("::1-max: %v", parts)
			}
			continue
		}
		if strings.Join(parts, " ") != c.want {
			t.Errorf("%s-%s = %v; want %s", c.lo, c.hi, parts, c.want)
		}
	}
}

func TestGatewayPrefix(t *testing.T) {
	p, gw, err := ParseGatewayPrefix("10.0.0.1/24")
	if err != nil || p.String() != "10.0.0.0/24" || gw.String() != "10.0.0.1" {
		t.Fatalf("%v %v %v", p, gw, err)
	}
	if FormatGatewayPrefix(p, gw) != "10.0.0.1/24" {
		t.Fatal("format")
	}
	if _, _, err := ParseGatewayPrefix("10.0.0.1"); err == nil {
		t.Fatal("no length accepted")
	}
}

func TestParseMAC(t *testing.T) {
	want := MAC(0xbc764e200000)
	for _, s := range []string{
		"BC:76:4E:20:00:00", "bc:76:4e:20:0:0", "BC-76-4E-20-00-00", "bc764e200000",
		"bc76.4e20.0000", "bc76:4e20:0", "bc76-4e20-0000", "bc764e:200000", "bc764e-200000",
	} {
		m, err := ParseMAC(s)
		if err != nil || m != want {
			t.Errorf("ParseMAC(%q) = %v, %v", s, m, err)
		}
	}
	if m, err := ParseMAC("bc764:e20000"); err != nil || m != 0x0bc764e20000 {
		t.Errorf("pgsql 5+6 digits: %v %v", m, err)
	}
	if m, err := ParseMAC("12ff1289673"); err != nil || m != 0x012ff1289673 {
		t.Errorf("11 digits: %v %v", m, err)
	}
	if m, err := ParseMAC("AD:BC:CE:0:0:0"); err != nil || m.EUI() != "AD-BC-CE-00-00-00" || m.String() != "ad:bc:ce:00:00:00" {
		t.Errorf("checklist 53: %v %v", m, err)
	}
	for _, s := range []string{
		"", "bc:76:4e:20:00", "bc:76:4e:20:00:00:00", "bc:76-4e:20:00:00", "bc:76:4e:20:00:000",
		"g0:76:4e:20:00:00", "bc764e20000", "bc764e2000000", " bc:76:4e:20:00:00", "bc.76.4e.20.00.00",
		"bc76.4e20.00000", "bc7:64e20000", "::::::", "bc:76:4e:20:00:",
	} {
		if _, err := ParseMAC(s); err == nil && s != "bc764e20000" {
			t.Errorf("ParseMAC(%q) accepted", s)
		}
	}
	m := MAC(0x52540000abcd)
	if !m.IsLocalUnicast() || MAC(0x010000000000).IsUnicast() || MAC(0x00163e000000).IsLocal() {
		t.Fatal("bit rules")
	}
	if MACFromBytes(m.Bytes()) != m {
		t.Fatal("bytes round trip")
	}
}

func TestParseMACRange(t *testing.T) {
	r, err := ParseMACRange("BC:76:4E:20:00:00/27")
	if err != nil || r.Bits != 27 || r.Size() != 1<<21 || r.First() != 0xbc764e200000 || r.Last() != 0xbc764e3fffff {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = ParseMACRange("ab-bc-cd-12-23-34/40") // checklist 70: base is normalised
	if err != nil || r.First() != 0xabbccd122300 || r.Size() != 256 {
		t.Fatalf("%+v %v", r, err)
	}
	if r, _ := ParseMACRange("BC:76:4E:20:00:00/48"); r.Size() != 1 {
		t.Fatal("/48 holds one MAC")
	}
	if r, _ := ParseMACRange("BC:76:4E:20:00:00/47"); r.Size() != 2 || !r.Contains(0xbc764e200001) || r.Contains(0xbc764e200002) {
		t.Fatal("/47")
	}
	for _, s := range []string{"", "BC:76:4E:20:00:00", "BC:76:4E:20:00:00/49", "BC:76:4E:20:00:00/-1", "x/8", "BC:76:4E:20:00:00/8/8", "BC:76:4E:20:00:00/"} {
		if _, err := ParseMACRange(s); err == nil {
			t.Errorf("ParseMACRange(%q) accepted", s)
		}
	}
	if !(MACRange{Base: 0x020000000000, Bits: 8}).IsLocalUnicast() || (MACRange{Base: 0x020000000000, Bits: 7}).IsLocalUnicast() {
		t.Fatal("range LA rule")
	}
}

func TestReverse(t *testing.T) {
	if got := ReverseName(netip.MustParseAddr("192.0.2.1")); got != "1.2.0.192.in-addr.arpa." {
		t.Fatal(got)
	}
	want := "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
	if got := ReverseName(netip.MustParseAddr("2001:db8::1")); got != want {
		t.Fatal(got)
	}
	if got := ReverseName(netip.MustParseAddr("::ffff:192.0.2.1")); got != "1.2.0.192.in-addr.arpa." {
		t.Fatal(got)
	}
	if ReverseName(netip.Addr{}) != "" {
		t.Fatal("invalid")
	}
	for in, want := range map[string]string{
		"10.1.2.0/24":   "2.1.10.in-addr.arpa.",
		"10.1.2.128/25": "2.1.10.in-addr.arpa.",
		"10.0.0.0/8":    "10.in-addr.arpa.",
		"10.0.0.0/12":   "10.in-addr.arpa.",
		"0.0.0.0/0":     "in-addr.arpa.",
		"2001:db8::/32": "8.b.d.0.1.0.0.2.ip6.arpa.",
		"2001:db8::/34": "8.b.d.0.1.0.0.2.ip6.arpa.",
		"2001:db8::/36": "0.8.b.d.0.1.0.0.2.ip6.arpa.",
	} {
		if got := ReverseZone(netip.MustParsePrefix(in)); got != want {
			t.Errorf("ReverseZone(%s) = %s; want %s", in, got, want)
		}
	}
	if got := CloudCIXReverseZone(netip.MustParseAddr("192.0.2.1")); got != "2.0.192.in-addr.arpa" {
		t.Fatal(got)
	}
	if got := CloudCIXReverseZone(netip.MustParseAddr("2001:db8:1::1")); got != "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa" {
		t.Fatal(got)
	}
}

// TestIntervalSetModel checks IntervalSet against a bitmap model over a small
// universe with random inserts and removes, and checks persistence: every
// older version still answers as it did.
func TestIntervalSetModel(t *testing.T) {
	const universe = 300
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		s := NewIntervalSet(uint64(seed))
		var model [universe]bool
		type version struct {
			set   IntervalSet
			model [universe]bool
		}
		var versions []version
		for step := 0; step < 400; step++ {
			lo := uint64(rng.Intn(universe))
			hi := lo + uint64(rng.Intn(12))
			if hi >= universe {
				hi = universe - 1
			}
			if rng.Intn(3) == 0 {
				s = s.Remove(U64(lo), U64(hi))
				for i := lo; i <= hi; i++ {
					model[i] = false
				}
			} else {
				s = s.Insert(U64(lo), U64(hi))
				for i := lo; i <= hi; i++ {
					model[i] = true
				}
			}
			if err := s.Check(); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			checkAgainstModel(t, s, model[:])
			if step%40 == 0 {
				versions = append(versions, version{s, model})
			}
		}
		for _, v := range versions {
			checkAgainstModel(t, v.set, v.model[:])
		}
		// FromIntervals rebuilds the same contents.
		rebuilt := FromIntervals(s.Seed(), s.Intervals())
		if err := rebuilt.Check(); err != nil || !rebuilt.Equal(s) {
			t.Fatalf("FromIntervals: %v", err)
		}
	}
}

func checkAgainstModel(t *testing.T, s IntervalSet, model []bool) {
	t.Helper()
	n := uint64(len(model))
	count := uint64(0)
	for i := uint64(0); i < n; i++ {
		if s.Contains(U64(i)) != model[i] {
			t.Fatalf("Contains(%d) = %v", i, !model[i])
		}
		if s.CountBelow(U64(i)) != U64(count) {
			t.Fatalf("CountBelow(%d) = %v, want %d", i, s.CountBelow(U64(i)), count)
		}
		if model[i] {
			count++
		}
		nf, ok := s.NextFree(U64(i))
		j := i
		for j < n && model[j] {
			j++
		}
		if !ok || nf != U64(j) {
			t.Fatalf("NextFree(%d) = %v; want %d", i, nf, j)
		}
	}
	if s.Count() != U64(count) {
		t.Fatalf("Count = %v, want %d", s.Count(), count)
	}
	// Gaps over a window equal the model's complement.
	lo, hi := uint64(17), uint64(250)
	var want []Interval
	for i := lo; i <= hi; i++ {
		if !model[i] {
			if k := len(want); k > 0 && want[k-1].Hi == U64(i-1) {
				want[k-1].Hi = U64(i)
			} else {
				want = append(want, Interval{U64(i), U64(i)})
			}
		}
	}
	got := s.Gaps(U64(lo), U64(hi))
	if len(got) != len(want) {
		t.Fatalf("Gaps = %v; want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("Gaps = %v; want %v", got, want)
		}
	}
	if s.CountIn(U64(lo), U64(hi)).Add(countFalse(model[lo:hi+1])) != U64(hi-lo+1) {
		t.Fatal("CountIn")
	}
}

func countFalse(m []bool) U128 {
	var c uint64
	for _, b := range m {
		if !b {
			c++
		}
	}
	return U64(c)
}

func TestIntervalSetEdges(t *testing.T) {
	var s IntervalSet
	s = s.Insert(MaxU128.Sub64(5), MaxU128)
	if _, ok := s.NextFree(MaxU128.Sub64(2)); ok {
		t.Fatal("NextFree past the top")
	}
	s = s.Insert(U128{}, MaxU128)
	if s.Len() != 1 || s.Count() != MaxU128 || !s.Contains(U64(12345)) {
		t.Fatal("full range")
	}
	s = s.Remove(U64(10), U64(10))
	if s.Len() != 2 || s.Contains(U64(10)) || s.Count() != MaxU128 { // 2^128 − 1
		t.Fatalf("hole: %v", s.Intervals())
	}
	s = s.Remove(MaxU128, MaxU128)
	if s.Contains(MaxU128) || s.Len() != 2 {
		t.Fatal("remove max")
	}
	s = s.Add(MaxU128).Add(U64(10))
	if s.Len() != 1 {
		t.Fatalf("re-coalesce: %v", s.Intervals())
	}
	if g := s.Gaps(U128{}, MaxU128); len(g) != 0 {
		t.Fatalf("gaps %v", g)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// Remove of an absent range returns the same root (no allocation).
	e := NewIntervalSet(7).Insert(U64(100), U64(200))
	if e2 := e.Remove(U64(0), U64(50)); e2.root != e.root {
		t.Fatal("no-op remove copied")
	}
	if e2 := e.Insert(U64(120), U64(130)); e2.root != e.root {
		t.Fatal("no-op insert copied")
	}
	if iv, ok := e.Floor(U64(99)); ok {
		t.Fatalf("Floor %v", iv)
	}
	if iv, ok := e.Ceil(U64(201)); ok {
		t.Fatalf("Ceil %v", iv)
	}
}

func TestIntervalSetDeterministicShape(t *testing.T) {
	// Two sets built by the same operations have identical trees; sets with
	// the same contents built differently hold the same intervals.
	build := func() IntervalSet {
		s := NewIntervalSet(42)
		for i := uint64(0); i < 2000; i += 3 {
			s = s.Add(U64(i * 7 % 5000))
		}
		return s
	}
	a, b := build(), build()
	var same func(x, y *ivNode) bool
	same = func(x, y *ivNode) bool {
		if x == nil || y == nil {
			return x == y
		}
		return x.iv == y.iv && x.prio == y.prio && same(x.left, y.left) && same(x.right, y.right)
	}
	if !same(a.root, b.root) {
		t.Fatal("same operations, different trees")
	}
	if !FromIntervals(42, a.Intervals()).Equal(a) {
		t.Fatal("Equal")
	}
}

// TestUnmapped: the Unmapped parsers refuse IPv4-mapped IPv6, and only it.
func TestUnmapped(t *testing.T) {
	for _, tc := range []struct {
		in     string
		prefix bool
		mapped bool
	}{
		{"::ffff:10.0.0.0/104", true, true},
		{"::ffff:0:0/96", true, true},
		{"::ffff:10.0.0.1/120", true, true},
		{"10.0.0.0/8", true, false},
		{"2001:db8::/32", true, false},
		{"::/0", true, false},
		{"64:ff9b::a00:0/120", true, false}, // NAT64, not mapped
		{"::ffff:10.0.0.5", false, true},
		{"::ffff:a00:5", false, true},
		{"10.0.0.5", false, false},
		{"::1", false, false},
	} {
		var err error
		if tc.prefix {
			_, err = ParsePrefixRawUnmapped(tc.in)
		} else {
			_, err = ParseAddrUnmapped(tc.in)
		}
		if errors.Is(err, ErrMapped) != tc.mapped || (err != nil) != tc.mapped {
			t.Errorf("%q: %v", tc.in, err)
		}
		if err != nil && !strings.Contains(err.Error(), "IPv4-mapped") {
			t.Errorf("%q: unclear error %v", tc.in, err)
		}
	}
}
