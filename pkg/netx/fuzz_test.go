package netx

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8", "10.0.0.1/31", "10.1.1.1////", "10...", "10.0.0.0/33", "fe::/129", "fe::1/64",
		"::/0", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/08", "fe80::1%eth0/64", "::ffff:1.2.3.4/120", "",
		"::ffff:10.0.0.0/104", "::ffff:0:0/96", "::ffff:a00:1/64", "::fffe:0:0/95", "::ffff:0:0/95", "64:ff9b::a00:0/120",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		ref, refErr := netip.ParsePrefix(s)
		if _, unErr := ParsePrefixRawUnmapped(s); err != nil && (unErr == nil || errors.Is(unErr, ErrMapped)) {
			t.Fatalf("ParsePrefixRawUnmapped(%q) = %v where ParsePrefix fails: %v", s, unErr, err)
		}
		if err != nil {
			if refErr == nil && !strings.Contains(s, "%") {
				t.Fatalf("ParsePrefix(%q) rejected what netip accepts: %v", s, err)
			}
			return
		}
		if refErr != nil {
			t.Fatalf("ParsePrefix(%q) = %v accepted what netip rejects: %v", s, p, refErr)
		}
		if p != ref.Masked() || p != p.Masked() {
			t.Fatalf("ParsePrefix(%q) = %v, netip %v", s, p, ref)
		}
		again, err := ParsePrefix(p.String())
		if err != nil || again != p {
			t.Fatalf("round trip of %v: %v %v", p, again, err)
		}
		if !p.Contains(First(p)) || !p.Contains(Last(p)) || LastU128(p).Less(FirstU128(p)) {
			t.Fatalf("first/last of %v", p)
		}
		raw, err := ParsePrefixRaw(s)
		if err != nil || raw.Masked() != p {
			t.Fatalf("raw %v %v", raw, err)
		}
		// The Unmapped form refuses exactly the IPv4-mapped address parts.
		un, err := ParsePrefixRawUnmapped(s)
		if mapped := raw.Addr().Is4In6(); mapped != errors.Is(err, ErrMapped) || (err != nil) != mapped || (!mapped && un != raw) {
			t.Fatalf("ParsePrefixRawUnmapped(%q) = %v, %v (raw %v)", s, un, err, raw)
		}
	})
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{
		"BC:76:4E:20:00:00", "ad:bc:ce:0:0:0", "10-23-56-78-90-01", "bc76.4e20.0000", "bc764e:200000",
		"bc764e200000", "12ff1289673", "bc:76-4e:20:00:00", "", "::::::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		if !m.Valid() {
			t.Fatalf("ParseMAC(%q) = %x beyond 48 bits", s, uint64(m))
		}
		for _, form := range []string{m.String(), m.EUI(), m.Format('-', false)} {
			if again, err := ParseMAC(form); err != nil || again != m {
				t.Fatalf("round trip %q via %q: %v %v", s, form, again, err)
			}
		}
	})
}

func FuzzParseMACRange(f *testing.F) {
	for _, s := range []string{
		"BC:76:4E:20:00:00/27", "ab-bc-cd-12-23-34/40", "AD:BC:CE:0:0:0/24", "BC:76:4E:20:00:00/48",
		"BC:76:4E:20:00:00/49", "x/1", "/", "00:00:00:00:00:00/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseMACRange(s)
		if err != nil {
			return
		}
		if r.Bits < 0 || r.Bits > 48 || !r.Last().Valid() || r.Last() < r.First() {
			t.Fatalf("ParseMACRange(%q) = %+v", s, r)
		}
		if uint64(r.Last()-r.First())+1 != r.Size() || !r.Contains(r.First()) || !r.Contains(r.Last()) {
			t.Fatalf("size of %+v", r)
		}
		if again, err := ParseMACRange(r.String()); err != nil || again != r {
			t.Fatalf("round trip %+v: %+v %v", r, again, err)
		}
	})
}

func FuzzParseGatewayPrefix(f *testing.F) {
	for _, s := range []string{"10.0.0.1/24", "10.0.0.0/24", "fd00::1/64", "10.0.0.1", "1.2.3.4/32"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, gw, err := ParseGatewayPrefix(s)
		if err != nil {
			return
		}
		if !p.Contains(gw) || p != p.Masked() {
			t.Fatalf("%q: %v %v", s, p, gw)
		}
		if FormatGatewayPrefix(p, gw) != netip.PrefixFrom(gw, p.Bits()).String() {
			t.Fatal("format")
		}
	})
}
