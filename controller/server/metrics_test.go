package server_test

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestIPAMUtilisationGauge: /metrics reports, per top-level block, the
// addresses held in it and its subnets over its usable addresses.
func TestIPAMUtilisationGauge(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	member := c.Do("POST", "/membership/member/", map[string]any{"name": "gauge"}, root).Expect(201).ID()
	asn := create(c, root, "/iaas/asn/", map[string]any{"member_id": member, "number": 64999})
	alloc := create(c, root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.77.0.0/24", "name": "gauge"})
	subnet := create(c, root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.77.0.1/26", "name": "s"})
	for i := 0; i < 10; i++ {
		create(c, root, "/iaas/ip_address/", map[string]any{"subnet_id": subnet})
	}
	body := string(c.Do("GET", "/metrics", nil, "").Expect(200).Body)
	re := regexp.MustCompile(`regent_ipam_block_held_addresses\{block="` + strconv.FormatUint(alloc, 10) + `",cidr="10\.77\.0\.0/24",dialect="cloudcix"\} (\S+)`)
	m := re.FindStringSubmatch(body)
	if m == nil || m[1] != "10" {
		t.Fatalf("held addresses of the allocation: %v\n%s", m, body)
	}
	re = regexp.MustCompile(`regent_ipam_block_utilisation_ratio\{block="` + strconv.FormatUint(alloc, 10) + `"[^}]*\} (\S+)`)
	m = re.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no utilisation ratio for the allocation")
	}
	if r, err := strconv.ParseFloat(m[1], 64); err != nil || r <= 0.03 || r >= 0.05 {
		t.Fatalf("utilisation ratio %s, want about 10/254", m[1])
	}
}
