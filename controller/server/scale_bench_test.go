package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// BenchmarkScaleIPAMMetrics: one collection of the IPAM series of /metrics
// over 20,000 subnets with 5 addresses each in 200 allocations
// (docs/benchmarks.md, "Scale audit").
func BenchmarkScaleIPAMMetrics(b *testing.B) {
	st := state.New()
	tx := st.Write(1, time.Unix(1_700_000_000, 0))
	must := func(err error) {
		b.Helper()
		if err != nil {
			tx.Abort()
			b.Fatal(err)
		}
	}
	_, err := tx.Bootstrap("CIX", "root", &state.TokenRecord{Token: wire.Token{Name: "root", Kind: wire.TokenKindUser, Prefix: "rgt_x"}, Hash: "h"})
	must(err)
	m, err := tx.MemberCreate(&wire.Member{Name: "acme"})
	must(err)
	var alloc *wire.IPBlock
	for i := range 20000 {
		if i%100 == 0 {
			asn, err := tx.ASNCreate(&wire.ASN{MemberID: m.ID, Number: uint64(65000 + i/100)})
			must(err)
			alloc, err = tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID, CIDR: fmt.Sprintf("10.%d.0.0/16", i/100)})
			must(err)
		}
		sn, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, ParentID: alloc.ID, CIDR: fmt.Sprintf("10.%d.%d.0/24", i/100, i%100)})
		must(err)
		for range 5 {
			_, err := tx.IPAddressCreate(&wire.IPAddress{BlockID: sn.ID})
			must(err)
		}
	}
	tx.Commit()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newIPAMCollector(st), newWorkQueueCollector(st))
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil || len(mfs) == 0 {
			b.Fatal(err)
		}
	}
}
