package netrouter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/regentcloud/regent/agent/vpn"
	"github.com/regentcloud/regent/pkg/api"
	"sigs.k8s.io/knftables"
)

func vpnSpec() *api.RouterSpec {
	s := sampleSpec()
	s.VPNs = []api.VPNSpec{
		{ID: 12, Routes: []api.VPNRouteSpec{{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "192.168.9.0/24"}}},
		{ID: 11, Routes: []api.VPNRouteSpec{
			{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "172.16.1.0/24"},
			{LocalSubnet: "10.0.0.0/25", RemoteSubnet: "172.16.2.5/24"},
		}},
	}
	return s
}

func TestVPNPlan(t *testing.T) {
	d, err := plan(vpnSpec(), testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.vpnRoutes) != 3 || d.vpnRoutes[0].vpnID != 11 || d.vpnRoutes[1].remote.String() != "172.16.2.0/24" {
		t.Fatalf("vpn routes %+v", d.vpnRoutes)
	}
	for _, tc := range []struct {
		mode, links, routes string
	}{
		{vpn.ModeLibIPsec, "[]", "[172.16.1.0/24>ipsec0 172.16.2.0/24>ipsec0 192.168.9.0/24>ipsec0]"},
		{vpn.ModeXFRM, "[xfrm11/11 xfrm12/12]", "[172.16.1.0/24>xfrm11 172.16.2.0/24>xfrm11 192.168.9.0/24>xfrm12]"},
	} {
		links, routes := vpnPlan(d, tc.mode)
		var ls, rs []string
		for _, l := range links {
			ls = append(ls, fmt.Sprintf("%s/%d", l.name, l.ifID))
		}
		for _, r := range routes {
			rs = append(rs, r.dst.String()+">"+r.dev)
		}
		if got := fmt.Sprint(ls); got != tc.links && !(tc.links == "[]" && len(ls) == 0) {
			t.Errorf("%s links %s, want %s", tc.mode, got, tc.links)
		}
		if got := fmt.Sprint(rs); got != tc.routes {
			t.Errorf("%s routes %s, want %s", tc.mode, got, tc.routes)
		}
		keep := map[string]bool{}
		keepVPNLinks(d, tc.mode, keep)
		if !keep["ipsec0"] || (tc.mode == vpn.ModeXFRM && !keep["xfrm12"]) {
			t.Errorf("%s keeps %v", tc.mode, keep)
		}
	}
}

// TestVPNPlanErrors: a VPN with a bad route fails alone: the router plans
// without the bad route and the failure is a *vpn.SpecError of that VPN
// for the VPN manager to report; its valid routes (into the tunnel device,
// and fenced by vpn_egress, so traffic of a VPN that does not run is
// dropped) and the router's other VPNs stay.
func TestVPNPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		route api.VPNRouteSpec
		err   string
	}{
		{api.VPNRouteSpec{LocalSubnet: "10.9.0.0/24", RemoteSubnet: "192.168.1.0/24"}, "not in a subnet of the router"},
		{api.VPNRouteSpec{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "10.0.0.128/25"}, "overlaps subnet"},
		{api.VPNRouteSpec{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "nope"}, "not a pair of IPv4 networks"},
	} {
		s := sampleSpec()
		s.VPNs = []api.VPNSpec{
			{ID: 1, Routes: []api.VPNRouteSpec{{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "172.16.5.0/24"}, tc.route}},
			{ID: 2, Routes: []api.VPNRouteSpec{{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "172.16.6.0/24"}}},
		}
		d, err := plan(s, testNames, ModeVXLAN)
		if err != nil {
			t.Errorf("%+v: the router fails: %v", tc.route, err)
			continue
		}
		var se *vpn.SpecError
		if len(d.vpnFailed) != 1 || !errors.As(d.vpnFailed[0], &se) || se.VPNID != 1 || !strings.Contains(se.Error(), tc.err) {
			t.Errorf("%+v: failed VPNs %v, want VPN 1 with %q", tc.route, d.vpnFailed, tc.err)
		}
		if len(d.vpnRoutes) != 2 || d.vpnRoutes[0].remote.String() != "172.16.5.0/24" || d.vpnRoutes[1].vpnID != 2 {
			t.Errorf("%+v: routes %+v, want VPN 1's valid one and VPN 2's", tc.route, d.vpnRoutes)
		}
	}
	// A VPN without an id cannot be reported on its own: the spec is bad.
	s := sampleSpec()
	s.VPNs = []api.VPNSpec{{Routes: []api.VPNRouteSpec{{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "172.16.6.0/24"}}}}
	if _, err := plan(s, testNames, ModeVXLAN); err == nil || !strings.Contains(err.Error(), "vpns[0].id: required") {
		t.Errorf("VPN without id: %v", err)
	}
}

// TestVPNRuleset: IKE/ESP in, VPN subnets forwarded both ways before the
// user's chains (in only from the VPN's tunnel device, so a forged source
// from the internet meets the inbound rules), and no SNAT towards a remote
// subnet.
func TestVPNRuleset(t *testing.T) {
	d, err := plan(vpnSpec(), testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	fake := knftables.NewFake(knftables.InetFamily, tableName)
	digest := renderFake(t, fake, d)
	dump := fake.Dump()
	in := chainRules(dump, "input")
	if !slices.Contains(in, `iifname "pub0" meta l4proto esp accept`) || !slices.Contains(in, "udp dport { 500, 4500 } accept") {
		t.Errorf("input %q", in)
	}
	fw := chainRules(dump, "forward")
	i := slices.Index(fw, "iifname @private_ifs ip saddr 10.0.0.0/24 ip daddr 192.168.9.0/24 accept")
	j := slices.Index(fw, `iifname "ipsec0" ip saddr 192.168.9.0/24 ip daddr 10.0.0.0/24 accept`)
	k := slices.IndexFunc(fw, func(r string) bool { return strings.Contains(r, "jump inbound") })
	if i < 0 || j < 0 || k < 0 || i > k || j > k {
		t.Errorf("forward %q", fw)
	}
	for _, r := range fw {
		if strings.Contains(r, "ip saddr 192.168.9.0/24") && !strings.HasPrefix(r, `iifname "ipsec0"`) {
			t.Errorf("forward accepts a remote subnet by address alone: %q", r)
		}
	}
	// xfrm mode: in from the VPN's own XFRM interface.
	fakeX := knftables.NewFake(knftables.InetFamily, tableName)
	txX := fakeX.NewTransaction()
	renderRuleset(txX, d, rulesetOpts{nflogGroup: 100, vpnMode: vpn.ModeXFRM})
	if err := fakeX.Run(context.Background(), txX); err != nil {
		t.Fatal(err)
	}
	if fwX := chainRules(fakeX.Dump(), "forward"); !slices.ContainsFunc(fwX, func(r string) bool {
		return strings.HasPrefix(r, `iifname "xfrm`) && strings.Contains(r, "ip saddr 192.168.9.0/24 ip daddr 10.0.0.0/24 accept")
	}) {
		t.Errorf("xfrm forward %q", fwX)
	}
	post := chainRules(dump, "postrouting")
	if len(post) < 4 || post[0] != "ip saddr 10.0.0.0/24 ip daddr 172.16.1.0/24 accept" || !strings.Contains(post[len(post)-1], "snat") {
		t.Errorf("postrouting %q", post)
	}
	// Without VPNs: no ESP, no VPN rules, another digest.
	d0, _ := plan(sampleSpec(), testNames, ModeVXLAN)
	fake0 := knftables.NewFake(knftables.InetFamily, tableName)
	if renderFake(t, fake0, d0) == digest {
		t.Error("VPNs do not change the ruleset digest")
	}
	if strings.Contains(fake0.Dump(), "esp") {
		t.Error("ESP accepted without VPNs")
	}
}

// TestVPNEgressRuleset: a VPN's remote subnets leave the router only by
// the device vpnPlan routes them into, checked first in forward (before
// the established accept) and in output; anything else to them is
// dropped, so a missing device (charon not up or dead, the VPN not
// running) holds the traffic back instead of letting it follow the
// default route out unencrypted. A remote subnet shared by two VPNs goes
// to the lower id's device; nested ones (xfrm mode: different devices)
// are matched most specific first, as the kernel routes them.
func TestVPNEgressRuleset(t *testing.T) {
	egress := func(s *api.RouterSpec, mode string) (fw, out, chain []string) {
		t.Helper()
		d, err := plan(s, testNames, ModeVXLAN)
		if err != nil {
			t.Fatal(err)
		}
		fake := knftables.NewFake(knftables.InetFamily, tableName)
		tx := fake.NewTransaction()
		renderRuleset(tx, d, rulesetOpts{nflogGroup: 100, vpnMode: mode})
		if err := fake.Run(context.Background(), tx); err != nil {
			t.Fatal(err)
		}
		dump := fake.Dump()
		if !strings.Contains(dump, "add chain inet regent output { type filter hook output priority 0 ; policy accept ; }") {
			t.Errorf("no output base chain:\n%s", dump)
		}
		return chainRules(dump, chainForward), chainRules(dump, chainOutput), chainRules(dump, chainVPNEgress)
	}
	// verdict runs chain for a packet to dst leaving by oif: "drop" or
	// "return".
	verdict := func(chain []string, dst, oif string) string {
		a := netip.MustParseAddr(dst)
		for _, r := range chain {
			f := strings.Fields(r) // ip daddr <prefix> (oifname "<dev>" return | counter drop)
			if !netip.MustParsePrefix(f[2]).Contains(a) {
				continue
			}
			if f[3] == "oifname" {
				if f[4] == strconv.Quote(oif) {
					return "return"
				}
				continue
			}
			return f[len(f)-1]
		}
		return "return"
	}

	fw, out, chain := egress(vpnSpec(), vpn.ModeLibIPsec)
	if len(fw) < 2 || fw[0] != "jump "+chainVPNEgress || fw[1] != "jump "+chainGlobal {
		t.Errorf("forward does not start with the VPN egress check, then the established accept: %q", fw)
	}
	if !slices.Equal(out, []string{"jump " + chainVPNEgress}) {
		t.Errorf("output %q", out)
	}
	for _, c := range []struct{ dst, oif, want string }{
		{"192.168.9.7", "ipsec0", "return"},
		{"192.168.9.7", "pub0", "drop"},
		{"172.16.1.7", "pub0", "drop"},
		{"172.16.2.200", "sub3", "drop"},
		{"172.16.2.200", "ipsec0", "return"},
		{"198.18.0.1", "pub0", "return"}, // the internet
		{"10.0.0.5", "sub3", "return"},
	} {
		if got := verdict(chain, c.dst, c.oif); got != c.want {
			t.Errorf("libipsec: to %s out of %s: %s, want %s (chain %q)", c.dst, c.oif, got, c.want, chain)
		}
	}
	if slices.ContainsFunc(chain, func(r string) bool { return strings.HasSuffix(r, " drop") && !strings.HasSuffix(r, "counter drop") }) {
		t.Errorf("a drop without a counter: %q", chain)
	}

	// xfrm mode: VPN 11's 172.16.0.0/16 contains VPN 12's 172.16.1.0/24;
	// VPN 13 shares 172.16.0.0/16 with VPN 11 (routed into xfrm11).
	s := sampleSpec()
	s.VPNs = []api.VPNSpec{
		{ID: 13, Routes: []api.VPNRouteSpec{{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "172.16.0.0/16"}}},
		{ID: 11, Routes: []api.VPNRouteSpec{{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "172.16.0.0/16"}}},
		{ID: 12, Routes: []api.VPNRouteSpec{{LocalSubnet: "10.0.0.0/24", RemoteSubnet: "172.16.1.0/24"}}},
	}
	_, _, chain = egress(s, vpn.ModeXFRM)
	for _, c := range []struct{ dst, oif, want string }{
		{"172.16.1.5", "xfrm12", "return"},
		{"172.16.1.5", "xfrm11", "drop"}, // xfrm12 missing: the /16's route
		{"172.16.1.5", "pub0", "drop"},
		{"172.16.9.5", "xfrm11", "return"},
		{"172.16.9.5", "xfrm13", "drop"},
		{"172.16.9.5", "xfrm12", "drop"},
		{"172.16.9.5", "pub0", "drop"},
	} {
		if got := verdict(chain, c.dst, c.oif); got != c.want {
			t.Errorf("xfrm: to %s out of %s: %s, want %s (chain %q)", c.dst, c.oif, got, c.want, chain)
		}
	}

	// Without VPNs: the chain is empty and nothing jumps to it.
	fw, out, chain = egress(sampleSpec(), vpn.ModeLibIPsec)
	if len(chain) != 0 || len(out) != 0 || slices.Contains(fw, "jump "+chainVPNEgress) {
		t.Errorf("without VPNs: forward %q, output %q, vpn_egress %q", fw, out, chain)
	}
}
