package netrouter

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/vishvananda/netlink"
)

var testNames = naming{prefix: "rg", nsPrefix: "P"}

func sampleSpec() *api.RouterSpec {
	return &api.RouterSpec{
		ID: 7, ProjectID: 42,
		PublicIP: "198.51.100.10/24", PublicGateway: "198.51.100.1",
		NAT: []api.NATSpec{{Private: "10.0.0.5", Public: "198.51.100.20"}},
		Subnets: []api.RouterSubnetSpec{{
			ID: 3, AddressRange: "10.0.0.1/24", VNI: 5003, VLAN: 103,
			VTEPs: []string{"192.0.2.2", "192.0.2.1", "192.0.2.2"},
			DNS:   []string{"9.9.9.9"},
			DHCP: []api.DHCPHostSpec{
				{MAC: "02:00:00:00:00:06", IP: "10.0.0.6", Hostname: "vm6"},
				{MAC: "02:00:00:00:00:05", IP: "10.0.0.5"},
			},
		}},
		FirewallRules: []api.FirewallRuleSpec{
			{Order: 2, Allow: false, Protocol: "tcp", Source: "10.0.0.0/24", Destination: "*", Port: "25", Log: true},
			{Order: 1, Allow: true, Protocol: "tcp", Source: "*", Destination: "10.0.0.5", Port: "22"},
			{Order: 3, Allow: true, Protocol: "icmp", Source: "203.0.113.0/24", Destination: "10.0.0.0/24"},
		},
		Metadata: []api.MetadataSpec{{Address: "10.0.0.5", InstanceID: "42_5", Hostname: "vm5"}},
	}
}

func TestPlanNamesAndOrder(t *testing.T) {
	d, err := plan(sampleSpec(), testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	if d.namespace != "P42" || d.publicVeth != "rgp42" || d.tag != "regent:rg:router:7:42" {
		t.Fatalf("names: %q %q %q", d.namespace, d.publicVeth, d.tag)
	}
	s := d.subnets[0]
	if s.bridge != "rgb5003" || s.segDev != "rgx5003" || s.hostVeth != "rgs3" || s.nsVeth != "sub3" {
		t.Fatalf("subnet names: %+v", s)
	}
	if len(s.vteps) != 2 || s.vteps[0].String() != "192.0.2.1" {
		t.Fatalf("vteps not sorted and deduplicated: %v", s.vteps)
	}
	if s.dhcp[0].ip.String() != "10.0.0.5" {
		t.Fatalf("dhcp not sorted: %v", s.dhcp)
	}
	if d.rules[0].order != 1 || !d.rules[0].inbound || d.rules[1].inbound {
		t.Fatalf("rules: %+v", d.rules)
	}
	v, err := plan(sampleSpec(), testNames, ModeVLAN)
	if err != nil {
		t.Fatal(err)
	}
	if v.subnets[0].bridge != "rgl103" || v.subnets[0].segDev != "rgv103" {
		t.Fatalf("vlan names: %+v", v.subnets[0])
	}
}

func TestNamesFitIFNAMSIZ(t *testing.T) {
	for _, id := range []uint64{1, 99999999999, 1<<64 - 1} {
		for _, n := range []string{testNames.publicVeth(id), testNames.subnetVeth(id), nsSubnetName(id), testNames.vxlanBridge(1<<24 - 1)} {
			if len(n) > maxIfName {
				t.Errorf("%q is longer than %d", n, maxIfName)
			}
		}
	}
	if testNames.subnetVeth(1<<64-1) == testNames.subnetVeth(1<<64-2) {
		t.Error("hashed names collide")
	}
	r, p, ok := testNames.parseRouterTag(testNames.routerTag(5, 9))
	if !ok || r != 5 || p != 9 {
		t.Fatal("router tag does not round-trip")
	}
	if _, _, ok := (naming{prefix: "xy"}).parseRouterTag(testNames.routerTag(5, 9)); ok {
		t.Fatal("another prefix's tag parsed as ours")
	}
}

func TestPlanRejectsBadSpecs(t *testing.T) {
	cases := map[string]func(s *api.RouterSpec){
		"public_ip":       func(s *api.RouterSpec) { s.PublicIP = "198.51.100.10" },
		"outside":         func(s *api.RouterSpec) { s.PublicGateway = "192.0.2.1" },
		"vni":             func(s *api.RouterSpec) { s.Subnets[0].VNI = 0 },
		"network address": func(s *api.RouterSpec) { s.Subnets[0].AddressRange = "10.0.0.0/24" },
		"exactly one":     func(s *api.RouterSpec) { s.FirewallRules[0].Destination = "10.0.0.9" },
		"port":            func(s *api.RouterSpec) { s.FirewallRules[0].Port = "70000" },
		"protocol":        func(s *api.RouterSpec) { s.FirewallRules[0].Protocol = "gre" },
		"not a MAC":       func(s *api.RouterSpec) { s.Subnets[0].DHCP[0].IP = "10.9.9.9" },
		"used twice": func(s *api.RouterSpec) {
			s.NAT = append(s.NAT, api.NATSpec{Private: "10.0.0.6", Public: "198.51.100.20"})
		},
		"is the router's address": func(s *api.RouterSpec) {
			s.NAT = append(s.NAT, api.NATSpec{Private: "10.0.0.6", Public: "198.51.100.10"})
		},
		"not in a subnet of the router": func(s *api.RouterSpec) {
			s.NAT = append(s.NAT, api.NATSpec{Private: "10.9.0.6", Public: "198.51.100.21"})
		},
		"is a subnet's gateway": func(s *api.RouterSpec) {
			s.NAT = append(s.NAT, api.NATSpec{Private: "10.0.0.1", Public: "198.51.100.21"})
		},
		"private address 10.0.0.5 has two public": func(s *api.RouterSpec) {
			s.NAT = append(s.NAT, api.NATSpec{Private: "10.0.0.5", Public: "198.51.100.21"})
		},
		"overlaps": func(s *api.RouterSpec) {
			s.Subnets = append(s.Subnets, api.RouterSubnetSpec{ID: 4, AddressRange: "10.0.0.129/25", VNI: 9})
		},
		"different IP vers":  func(s *api.RouterSpec) { s.FirewallRules[0].Destination = "2001:db8::/32" },
		"metadata[0].addres": func(s *api.RouterSpec) { s.Metadata[0].Address = "x" },
	}
	for want, mutate := range cases {
		s := sampleSpec()
		mutate(s)
		_, err := plan(s, testNames, ModeVXLAN)
		var se *SpecError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestSegmentLinks(t *testing.T) {
	d, err := plan(sampleSpec(), testNames, ModeVLAN)
	if err != nil {
		t.Fatal(err)
	}
	l := segmentLink(ModeVLAN, d.subnets[0].segment, 4, d.publicGW, 4789)
	v, ok := l.(*netlink.Vlan)
	if !ok || v.VlanId != 103 || v.ParentIndex != 4 || v.Name != "rgv103" {
		t.Fatalf("vlan link: %#v", l)
	}
	if !segmentMatches(&netlink.Vlan{VlanId: 103, LinkAttrs: netlink.LinkAttrs{ParentIndex: 4}}, l) {
		t.Fatal("identical vlan link does not match")
	}
	if segmentMatches(&netlink.Vlan{VlanId: 104, LinkAttrs: netlink.LinkAttrs{ParentIndex: 4}}, l) {
		t.Fatal("other VLAN id matches")
	}
	d, _ = plan(sampleSpec(), testNames, ModeVXLAN)
	x, ok := segmentLink(ModeVXLAN, d.subnets[0].segment, 2, d.publicGW, 4789).(*netlink.Vxlan)
	if !ok || x.VxlanId != 5003 || x.Learning || x.VtepDevIndex != 2 || x.Port != 4789 || x.SrcAddr.String() != "198.51.100.1" {
		t.Fatalf("vxlan link: %#v", x)
	}
}

// TestPlanNATPrefixLength: a 1:1 NAT address carries its own floating
// subnet's prefix length on pub0, not the router's (a router draws NAT
// addresses from several floating subnets); without one (an older
// controller) the router's when it is in the router's subnet, else /32.
func TestPlanNATPrefixLength(t *testing.T) {
	s := sampleSpec()
	s.Subnets[0].AddressRange = "10.0.0.1/24"
	s.NAT = []api.NATSpec{
		{Private: "10.0.0.5", Public: "198.51.100.20", PublicPrefixLength: 24},
		{Private: "10.0.0.6", Public: "203.0.113.20", PublicPrefixLength: 28},
		{Private: "10.0.0.7", Public: "198.51.100.21"},
		{Private: "10.0.0.8", Public: "203.0.113.21"},
	}
	d, err := plan(s, testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"198.51.100.20": 24, "203.0.113.20": 28, "198.51.100.21": 24, "203.0.113.21": 32}
	for _, n := range d.nat {
		if n.bits != want[n.public.String()] {
			t.Errorf("NAT %s: /%d, want /%d", n.public, n.bits, want[n.public.String()])
		}
	}
	for _, bad := range []api.NATSpec{
		{Private: "10.0.0.6", Public: "198.51.100.30", PublicPrefixLength: 25},
		{Private: "10.0.0.6", Public: "203.0.113.20", PublicPrefixLength: 33},
	} {
		s := sampleSpec()
		s.NAT = append(s.NAT, bad)
		if _, err := plan(s, testNames, ModeVXLAN); err == nil {
			t.Errorf("NAT %+v accepted", bad)
		}
	}
}

// TestKernelFallbackLinks: the fallback tunnel devices the kernel makes in
// a new namespace (tunl0, sit0, gre0, ...) are told by name and kind, so
// Ensure leaves them (the kernel keeps them whatever it is told: they were
// "removed" at every Ensure). A link of another kind under such a name, or
// a tunnel of another name, is no fallback device. This kernel has no
// tunnel modules, so the filter is tested on the links netlink would
// report.
func TestKernelFallbackLinks(t *testing.T) {
	attrs := func(name string) netlink.LinkAttrs { return netlink.LinkAttrs{Name: name} }
	v4, v6 := net.IPv4zero, net.IPv6zero
	for _, c := range []struct {
		l    netlink.Link
		want bool
	}{
		{&netlink.Iptun{LinkAttrs: attrs("tunl0")}, true},
		{&netlink.Sittun{LinkAttrs: attrs("sit0")}, true},
		{&netlink.Ip6tnl{LinkAttrs: attrs("ip6tnl0")}, true},
		{&netlink.Gretun{LinkAttrs: attrs("gre0"), Local: v4}, true},
		{&netlink.Gretap{LinkAttrs: attrs("gretap0"), Local: v4}, true},
		{&netlink.GenericLink{LinkAttrs: attrs("erspan0"), LinkType: "erspan"}, true},
		{&netlink.Gretun{LinkAttrs: attrs("ip6gre0"), Local: v6}, true},
		{&netlink.Gretap{LinkAttrs: attrs("ip6gretap0"), Local: v6}, true},
		{&netlink.GenericLink{LinkAttrs: attrs("ip6erspan0"), LinkType: "ip6erspan"}, true},
		{&netlink.Vti{LinkAttrs: attrs("ip_vti0"), Local: v4}, true},
		{&netlink.Vti{LinkAttrs: attrs("ip6_vti0"), Local: v6}, true},
		{&netlink.Veth{LinkAttrs: attrs("tunl0")}, false},
		{&netlink.Bridge{LinkAttrs: attrs("gre0")}, false},
		{&netlink.Iptun{LinkAttrs: attrs("tunl1")}, false},
		{&netlink.Veth{LinkAttrs: attrs("sub3")}, false},
		{&netlink.Xfrmi{LinkAttrs: attrs("xfrm7")}, false},
	} {
		if got := kernelFallback(c.l); got != c.want {
			t.Errorf("%s (%s): fallback %v, want %v", c.l.Attrs().Name, c.l.Type(), got, c.want)
		}
	}
}
