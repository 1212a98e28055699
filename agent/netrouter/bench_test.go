package netrouter

import (
	"context"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

// BenchmarkRouterBuild measures a complete build of a one-subnet router
// (namespace, public and segment links, nft ruleset, dnsmasq, metadata);
// the scrub after each build is not timed.
func BenchmarkRouterBuild(b *testing.B) {
	e := newSysenv(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		spec := e.spec(e.projectID())
		spec.Subnets[0].VNI = e.vni + uint32(i%1000)
		e.ensure(e.b, spec)
		b.StopTimer()
		if err := e.b.Scrub(ctx, spec.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkRouterUpdate measures an update of a built router: a firewall
// rule and a 1:1 NAT pair added or removed (nft swap plus an address
// change on the public veth).
func BenchmarkRouterUpdate(b *testing.B) {
	e := newSysenv(b)
	spec := e.spec(e.projectID())
	e.ensure(e.b, spec)
	base := *spec
	changed := *spec
	changed.FirewallRules = append([]api.FirewallRuleSpec{{Order: 0, Allow: true, Protocol: "tcp", Source: "*", Destination: e.priv3 + ".6", Port: "443"}}, spec.FirewallRules...)
	changed.NAT = append([]api.NATSpec{{Private: e.priv3 + ".6", Public: e.net3 + ".21"}}, spec.NAT...)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := &base
		if i%2 == 0 {
			s = &changed
		}
		if r := e.ensure(e.b, s); len(r.Changes) == 0 {
			b.Fatal("update changed nothing")
		}
	}
}
