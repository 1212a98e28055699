package ipam

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix { return mustPrefixes(ss...) }

func joinPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

func TestSubnetSpace(t *testing.T) {
	cases := []struct {
		parent string
		used   []string
		want   string
	}{
		// melange-facts §17.3 / cloudcix-facts subnet_space vector.
		{"10.0.0.0/24", []string{"10.0.0.64/26", "10.0.0.192/27"}, "10.0.0.0/26 10.0.0.128/26 10.0.0.224/27"},
		{"10.0.0.0/24", nil, "10.0.0.0/24"},
		{"10.0.0.0/24", []string{"10.0.0.0/24"}, ""},
		{"10.0.0.0/24", []string{"10.0.0.0/8"}, ""},
		{"10.0.0.0/24", []string{"10.0.0.1/32"}, "10.0.0.0/32 10.0.0.2/31 10.0.0.4/30 10.0.0.8/29 10.0.0.16/28 10.0.0.32/27 10.0.0.64/26 10.0.0.128/25"},
		// Host bits (gateway notation) and foreign prefixes are ignored.
		{"10.0.0.0/24", []string{"10.0.0.129/25", "192.168.0.0/24", "fd00::/8"}, "10.0.0.0/25"},
		{"10.0.0.0/24", []string{"10.0.0.64/26", "10.0.0.96/27"}, "10.0.0.0/26 10.0.0.128/25"},
		{"fd00::/48", []string{"fd00::/64"}, "fd00:0:0:1::/64 fd00:0:0:2::/63 fd00:0:0:4::/62 fd00:0:0:8::/61 fd00:0:0:10::/60 fd00:0:0:20::/59 fd00:0:0:40::/58 fd00:0:0:80::/57 fd00:0:0:100::/56 fd00:0:0:200::/55 fd00:0:0:400::/54 fd00:0:0:800::/53 fd00:0:0:1000::/52 fd00:0:0:2000::/51 fd00:0:0:4000::/50 fd00:0:0:8000::/49"},
		{"::/0", []string{"::/1"}, "8000::/1"},
	}
	for _, c := range cases {
		got := joinPrefixes(SubnetSpace(pfx(c.parent), prefixes(c.used...)))
		if got != c.want {
			t.Errorf("SubnetSpace(%s - %v) = %s; want %s", c.parent, c.used, got, c.want)
		}
	}
	all := SubnetSpaceAll(pfx("10.0.0.0/24"), prefixes("10.0.0.192/27", "10.0.0.64/26", "10.1.0.0/24"))
	var rows []string
	for _, e := range all {
		kind := "existing"
		if e.Free {
			kind = "free"
		}
		rows = append(rows, e.Prefix.String()+"="+kind)
	}
	want := []string{"10.0.0.0/26=free", "10.0.0.64/26=existing", "10.0.0.128/26=free", "10.0.0.192/27=existing", "10.0.0.224/27=free"}
	if !slices.Equal(rows, want) || all[1].Index != 1 || all[3].Index != 0 || all[0].Index != -1 {
		t.Fatalf("%v %+v", rows, all)
	}
}

func TestCarve(t *testing.T) {
	// Four /30 from a /28: .0 .4 .8 .12, the fifth fails (NetBox first-fit).
	parent := pfx("10.0.0.0/28")
	var used []netip.Prefix
	for _, want := range []string{"10.0.0.0/30", "10.0.0.4/30", "10.0.0.8/30", "10.0.0.12/30"} {
		p, ok := Carve(parent, used, 30, false)
		if !ok || p.String() != want {
			t.Fatalf("carve %v %v; want %s", p, ok, want)
		}
		used = append(used, p)
	}
	if _, ok := Carve(parent, used, 30, false); ok {
		t.Fatal("fifth /30")
	}
	// Best-fit takes the smallest block that fits.
	used = prefixes("10.0.0.0/26", "10.0.0.72/29", "10.0.0.80/28", "10.0.0.96/27")
	// free: 10.0.0.64/29 and 10.0.0.128/25
	if p, _ := Carve(pfx("10.0.0.0/24"), used, 30, true); p.String() != "10.0.0.64/30" {
		t.Fatal(p)
	}
	if p, _ := Carve(pfx("10.0.0.0/24"), used, 26, true); p.String() != "10.0.0.128/26" {
		t.Fatal(p)
	}
	if p, _ := Carve(pfx("10.0.0.0/24"), used[1:], 26, false); p.String() != "10.0.0.0/26" {
		t.Fatal(p)
	}
	if _, ok := Carve(pfx("10.0.0.0/24"), nil, 23, false); ok {
		t.Fatal("larger than parent")
	}
}

func TestMelangeCIDRCheck(t *testing.T) {
	cases := []struct {
		name string
		c    MelangeCIDRCheck
		want []string
	}{
		{"public roots", MelangeCIDRCheck{CIDR: pfx("10.0.0.0/16"), Public: true, TopLevelInNetwork: true,
			PublicRoots: prefixes("192.168.0.0/16", "10.0.0.0/8")},
			[]string{"cidr overlaps with public block 10.0.0.0/8"}},
		{"private roots may overlap across networks", MelangeCIDRCheck{CIDR: pfx("10.0.0.0/16"), TopLevelInNetwork: true,
			PublicRoots: prefixes("10.0.0.0/8")}, nil},
		{"not within parent", MelangeCIDRCheck{CIDR: pfx("10.1.0.0/24"), Parent: pfx("10.0.0.0/16")},
			[]string{"cidr should be within parent block's cidr"}},
		{"sibling", MelangeCIDRCheck{CIDR: pfx("10.0.0.128/25"), Parent: pfx("10.0.0.0/16"),
			Siblings: prefixes("10.0.1.0/24", "10.0.0.0/24", "10.0.0.128/26")},
			[]string{"cidr overlaps with sibling 10.0.0.0/24"}},
		{"same network", MelangeCIDRCheck{CIDR: pfx("10.0.0.0/24"), TopLevelInNetwork: true,
			NetworkTopLevel: prefixes("10.0.0.0/16")},
			[]string{"cidr overlaps with block 10.0.0.0/16 in same network"}},
		{"subnet in another network is top level", MelangeCIDRCheck{CIDR: pfx("10.1.0.0/24"), Parent: pfx("10.0.0.0/16"),
			TopLevelInNetwork: true, NetworkTopLevel: prefixes("10.1.0.0/16")},
			[]string{"cidr should be within parent block's cidr", "cidr overlaps with block 10.1.0.0/16 in same network"}},
		{"fine", MelangeCIDRCheck{CIDR: pfx("10.0.2.0/24"), Parent: pfx("10.0.0.0/16"), Siblings: prefixes("10.0.1.0/24")}, nil},
	}
	for _, c := range cases {
		if got := c.c.Errors(); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q; want %q", c.name, got, c.want)
		}
	}
}

func TestCloudCIXSubnetRules(t *testing.T) {
	raw := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	alloc := raw("10.0.0.0/8")
	sib := []netip.Prefix{raw("10.0.0.1/24"), raw("10.0.2.1/24")}
	cases := []struct {
		cand      string
		container netip.Prefix
		isParent  bool
		want      CloudCIXSubnetReason
	}{
		{"fd00::1/64", alloc, false, SubnetVersion},
		{"11.0.0.1/24", alloc, false, SubnetOutside},
		{"10.0.0.1/24", alloc, false, SubnetDuplicate},
		{"10.0.0.129/25", alloc, false, SubnetOverlap},
		{"10.0.0.2/24", alloc, false, SubnetOverlap},
		{"10.0.1.1/24", alloc, false, SubnetOK},
		{"10.0.0.1/24", raw("10.0.0.1/24"), true, SubnetSameAsParent},
		{"10.0.0.2/24", raw("10.0.0.1/24"), true, SubnetOK}, // CloudCIX compares the raw strings
		{"10.0.0.1/16", raw("10.0.0.1/24"), true, SubnetOutside},
	}
	for _, c := range cases {
		s := sib
		if c.isParent {
			s = nil
		}
		if got := CheckCloudCIXSubnet(raw(c.cand), c.container, c.isParent, s); got != c.want {
			t.Errorf("%s: %v; want %v", c.cand, got, c.want)
		}
	}
	for in, want := range map[string]ProjectSubnetReason{
		"10.0.0.1/24":   ProjectSubnetOK,
		"10.0.0.0/24":   ProjectSubnetNoGateway,
		"10.0.0.255/24": ProjectSubnetBroadcast,
		"8.8.8.1/24":    ProjectSubnetNotPrivate,
		"172.16.5.1/24": ProjectSubnetOK,
		"10.0.0.1/7":    ProjectSubnetNotPrivate,
	} {
		if got := CheckProjectSubnet(netip.MustParsePrefix(in)); got != want {
			t.Errorf("CheckProjectSubnet(%s) = %v; want %v", in, got, want)
		}
	}
}
