package netrouter

import (
	"context"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

func renderFake(t *testing.T, fake *knftables.Fake, d *desired) string {
	t.Helper()
	tx := fake.NewTransaction()
	digest := renderRuleset(tx, d, rulesetOpts{nflogGroup: 100})
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("ruleset does not apply: %v\n%s", err, tx)
	}
	return digest
}

func TestRulesetRendering(t *testing.T) {
	d, err := plan(sampleSpec(), testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	fake := knftables.NewFake(knftables.InetFamily, tableName)
	digest := renderFake(t, fake, d)
	dump := fake.Dump()
	for _, want := range []string{
		`add table inet regent { comment "regent:rg:router:7:42" ; }`,
		`add chain inet regent forward { type filter hook forward priority 0 ; policy drop ; }`,
		`add chain inet regent input { type filter hook input priority 0 ; policy drop ; }`,
		`add rule inet regent global ct state established,related accept`,
		`add rule inet regent prerouting iifname "pub0" ip daddr 198.51.100.20 dnat ip to 10.0.0.5`,
		`add rule inet regent postrouting oifname "pub0" ip saddr 10.0.0.5 snat ip to 198.51.100.20`,
		`add rule inet regent postrouting oifname "pub0" ip saddr 10.0.0.0/24 snat ip to 198.51.100.10`,
		`add rule inet regent inbound ip daddr 10.0.0.5/32 tcp dport 22 accept`,
		`add rule inet regent inbound ip saddr 203.0.113.0/24 ip daddr 10.0.0.0/24 meta l4proto icmp jump icmp_allow`,
		`add rule inet regent outbound ip saddr 10.0.0.0/24 tcp dport 25 log prefix "r7 out 2 block " group 100 drop`,
		`add element inet regent private_ifs { sub3 }`,
		`add rule inet regent forward iifname @private_ifs oifname "pub0" meta l4proto { tcp, udp } th dport 53 accept`,
		// hairpin: DNAT from the project's own interfaces, the inbound
		// rules decide, SNAT to the caller's public address
		`add rule inet regent prerouting iifname @private_ifs ip daddr 198.51.100.20 dnat ip to 10.0.0.5`,
		`add rule inet regent forward iifname @private_ifs oifname @private_ifs ct status dnat goto inbound`,
		`add rule inet regent postrouting oifname @private_ifs ct status dnat ip saddr 10.0.0.5 snat ip to 198.51.100.20`,
		`add rule inet regent postrouting oifname @private_ifs ct status dnat ip saddr 10.0.0.0/24 snat ip to 198.51.100.10`,
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("missing %q in\n%s", want, dump)
		}
	}
	// SNAT for one-to-one NAT precedes the catch-all SNAT of its subnet.
	if strings.Index(dump, "snat ip to 198.51.100.20") > strings.Index(dump, "snat ip to 198.51.100.10") {
		t.Error("catch-all SNAT before 1:1 SNAT")
	}
	// Hairpinned traffic meets the inbound rules before private ↔ private
	// is accepted.
	fwd := chainRules(dump, "forward")
	hp := slices.Index(fwd, "iifname @private_ifs oifname @private_ifs ct status dnat goto inbound")
	pp := slices.Index(fwd, "iifname @private_ifs oifname @private_ifs accept")
	if hp < 0 || pp < 0 || hp > pp {
		t.Errorf("forward chain: hairpin at %d, private accept at %d: %q", hp, pp, fwd)
	}
	// outbound: user rules, then the final accept.
	out := chainRules(dump, "outbound")
	if len(out) != 2 || out[len(out)-1] != "accept" {
		t.Errorf("outbound chain: %q", out)
	}
	if got := appliedDigest(context.Background(), fake); got != digest {
		t.Errorf("applied digest %q, rendered %q", got, digest)
	}

	// Re-rendering the same spec is the same digest; the table is
	// flushed and refilled, never duplicated.
	d2, _ := plan(sampleSpec(), testNames, ModeVXLAN)
	if renderFake(t, fake, d2) != digest {
		t.Error("same spec, different digest")
	}
	if fake.Dump() != dump {
		t.Errorf("second apply changed the table:\n%s", fake.Dump())
	}

	// A rule change changes the digest and drops the old rule.
	s := sampleSpec()
	s.FirewallRules[1].Port = "2222"
	d3, _ := plan(s, testNames, ModeVXLAN)
	if renderFake(t, fake, d3) == digest {
		t.Error("changed spec, same digest")
	}
	dump = fake.Dump()
	if strings.Contains(dump, "dport 22 accept") || !strings.Contains(dump, "dport 2222 accept") {
		t.Errorf("rule not replaced:\n%s", dump)
	}
	if n := strings.Count(dump, "add element"); n != 1 {
		t.Errorf("%d set elements after three applies", n)
	}
}

func chainRules(dump, chain string) []string {
	var out []string
	prefix := "add rule inet regent " + chain + " "
	for _, l := range strings.Split(dump, "\n") {
		if r, ok := strings.CutPrefix(l, prefix); ok {
			out = append(out, r)
		}
	}
	return out
}

func TestRenderRule(t *testing.T) {
	for _, c := range []struct {
		r    rule
		want string
	}{
		{rule{allow: true, inbound: true, proto: "udp", portLo: 1000, portHi: 2000, dst: mustPrefix("10.0.0.0/24")}, "ip daddr 10.0.0.0/24 udp dport 1000-2000 accept"},
		{rule{allow: false, proto: "", src: mustPrefix("10.0.0.0/24"), dst: mustPrefix("192.0.2.9/32")}, "ip saddr 10.0.0.0/24 ip daddr 192.0.2.9/32 drop"},
		{rule{allow: false, proto: "icmp", v6: true, src: mustPrefix("2001:db8::/64")}, "ip6 saddr 2001:db8::/64 meta l4proto ipv6-icmp drop"},
		{rule{allow: true, order: 4, inbound: true, log: true, dst: mustPrefix("10.0.0.0/24")}, `ip daddr 10.0.0.0/24 log prefix "r9 in 4 allow " group 7 accept`},
	} {
		if got := renderRule(c.r, 9, 7); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

func newFakeNft() *knftables.Fake { return knftables.NewFake(knftables.InetFamily, tableName) }
