package iaas

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// addressField reports whether a list field holds an IP address or a CIDR
// by its name: address, ip_address, address_range, gateway, cidr, vtep and
// the like (a MAC address and the ids of addresses are not).
func addressField(name string) bool {
	switch name {
	case "address", "ip_address", "address_range", "gateway", "cidr", "vtep", "public_ip", "private_ip":
		return true
	}
	return strings.HasSuffix(name, "_ip_address") || strings.HasSuffix(name, "_cidr")
}

// TestListAddressFieldsAreCIDR: every address-valued field of every iaas
// list is declared query.CIDR, so that it filters by network (contains,
// within) and orders as a number (10.0.0.9 before 10.0.0.10) the same way
// in every service; a String field orders as text. ptr_record's
// ip_address, interface's and virtual_router's ip_address and
// server's and router's vtep were String.
func TestListAddressFieldsAreCIDR(t *testing.T) {
	a := api.New(api.Config{}, nil, state.New(), hclog.NewNullLogger(), prometheus.NewRegistry())
	Register(a, Options{})
	lists := a.Lists()
	if len(lists) < 20 {
		t.Fatalf("only %d lists registered", len(lists))
	}
	checked := 0
	for _, l := range lists {
		for name, typ := range l.Query.Fields {
			if !addressField(name) {
				continue
			}
			checked++
			if typ != query.CIDR {
				t.Errorf("/%s/%s/: field %q is %s, want cidr", l.App, l.Name, name, typ)
			}
		}
	}
	if checked < 8 {
		t.Errorf("only %d address fields found", checked)
	}
}

// TestSubnetViewIPsInUseCheap: a subnet's ips_in_use is its engine's
// count of live addresses (kept in the same transactions as the address
// rows, rebuilt from them on restore), not a scan of its addresses: the
// view costs the same allocations for 1 or 200 addresses, and soft-
// deallocated addresses do not count.
func TestSubnetViewIPsInUseCheap(t *testing.T) {
	st := state.New()
	tx := st.Write(1, time.Unix(1_700_000_000, 0))
	m, err := tx.MemberCreate(&wire.Member{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	asn, _ := tx.ASNCreate(&wire.ASN{MemberID: m.ID, Number: 65001})
	alloc, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID, CIDR: "10.0.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	var subnets []*wire.IPBlock
	for i, n := range []int{1, 200} {
		sn, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, ParentID: alloc.ID,
			CIDR: fmt.Sprintf("10.0.%d.0/24", i), Gateway: fmt.Sprintf("10.0.%d.1", i)})
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, err := tx.IPAddressCreate(&wire.IPAddress{BlockID: sn.ID}); err != nil {
				t.Fatal(err)
			}
		}
		subnets = append(subnets, sn)
	}
	// A soft-deallocated address is held but not in use.
	if _, err := tx.IPAddressRelease(state.IPRef{BlockID: subnets[1].ID, Address: "10.0.1.2"}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	r := st.Read()
	allocs := make([]float64, len(subnets))
	for i, want := range []int{1, 199} {
		if got := subnetView(r, subnets[i]).IPsInUse; got != want {
			t.Errorf("subnet %d: ips_in_use %d, want %d", i, got, want)
		}
		allocs[i] = testing.AllocsPerRun(50, func() { subnetView(r, subnets[i]) })
	}
	if allocs[0] != allocs[1] {
		t.Errorf("subnet view allocations grow with its addresses: %v for 1, %v for 200", allocs[0], allocs[1])
	}
}
