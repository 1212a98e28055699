package iaas

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/state"
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
