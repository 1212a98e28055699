package server_test

import (
	"fmt"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestIaaSModifiedBy: subnet, ip_address, allocation, cix_blacklist,
// domain, record, ptr_record and project show modified_by, the user who last
// created or changed the object, also for objects made as side effects (a
// project's private allocations, a cloud's subnets, a PTR record's reverse
// zone); search[modified_by] finds them.
func TestIaaSModifiedBy(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	root, admin, user := f.root, f.r.Token(apitest.MemberAdmin), f.r.Token(apitest.MemberUser)
	name := n.Unique("global-2")
	global2 := c.Do("POST", "/membership/user/", map[string]any{"member_id": 1, "username": name,
		"email": name + "@example.com", "global_active": true, "administrator": true}, root).Expect(201).ID() // allocations need a global administrator
	_, g2 := c.CreateToken(root, global2)

	want := func(what string, m map[string]any, id uint64) {
		t.Helper()
		if got, ok := m["modified_by"].(float64); !ok || uint64(got) != id {
			t.Errorf("%s: modified_by %v, want %d", what, m["modified_by"], id)
		}
	}
	get := func(path string) map[string]any { return c.Do("GET", path, nil, root).Expect(200).Content() }
	patch := func(path, token string, body any) map[string]any {
		return c.Do("PATCH", path, body, token).Expect(200).Content()
	}
	found := func(what, list string, id uint64, by uint64) {
		t.Helper()
		l := c.Do("GET", fmt.Sprintf("%s?search[modified_by]=%d&limit=100", list, by), nil, root).Expect(200).List()
		if len(l.Metadata.Warnings) != 0 { // an ignored filter lists everything
			t.Errorf("%s: %s?search[modified_by]=%d warns %q", what, list, by, l.Metadata.Warnings)
		}
		ids := l.IDs()
		for _, x := range ids {
			if x == id {
				return
			}
		}
		t.Errorf("%s: %d not in %s?search[modified_by]=%d: %v", what, id, list, by, ids)
	}

	// IPAM: allocation A, subnet S and IP A are the root's.
	x := iaasOf(f)
	alloc := apitest.Path("/iaas/allocation/", x.alloc)
	want("allocation created", get(alloc), f.r.Root)
	want("allocation renamed", patch(alloc, g2, map[string]any{"name": "renamed by g2"}), global2)
	want("allocation read", get(alloc), global2)
	found("allocation", "/iaas/allocation/", x.alloc, global2)

	sub := apitest.Path("/iaas/subnet/", x.subnet)
	want("subnet created", get(sub), f.r.Root)
	want("subnet renamed by admin", patch(sub, admin, map[string]any{"name": "by admin"}), f.r.AdminA)
	want("subnet renamed by user", patch(sub, user, map[string]any{"name": "by user"}), f.r.UserA)
	want("subnet read", get(sub), f.r.UserA)
	found("subnet", "/iaas/subnet/", x.subnet, f.r.UserA)
	space := c.Do("GET", apitest.Path("/iaas/subnet_space/", x.alloc)+"?search[space_type]=existing", nil, root).Expect(200).List()
	for _, it := range space.Content {
		if uint64(it["id"].(float64)) == x.subnet {
			want("subnet in subnet_space", it, f.r.UserA)
		}
	}

	newIP := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": x.subnet}, user).Expect(201).Content()
	ip := apitest.Path("/iaas/ip_address/", uint64(newIP["id"].(float64)))
	want("ip_address created", newIP, f.r.UserA)
	want("ip_address renamed", c.Do("PUT", ip, map[string]any{"name": "by admin"}, admin).Expect(200).Content(), f.r.AdminA)
	want("ip_address read", get(ip), f.r.AdminA)
	found("ip_address", "/iaas/ip_address/", uint64(newIP["id"].(float64)), f.r.AdminA)
	if l := c.Do("GET", fmt.Sprintf("/iaas/ip_address/?search[modified_by]=%d", f.r.AdminB), nil, root).Expect(200).List(); len(l.Content) != 0 {
		t.Errorf("search[modified_by]=%d (no writes) found %d addresses", f.r.AdminB, len(l.Content))
	}

	// CIX lists: no update, each entry is its creator's.
	e1 := c.Do("POST", "/iaas/cix_blacklist/", map[string]any{"cidr": freshCIDR()}, root).Expect(201).Content()
	e2 := c.Do("POST", "/iaas/cix_blacklist/", map[string]any{"cidr": freshCIDR()}, g2).Expect(201).Content()
	want("blacklist entry of root", e1, f.r.Root)
	want("blacklist entry of global 2", e2, global2)
	found("blacklist", "/iaas/cix_blacklist/", uint64(e2["id"].(float64)), global2)
	e3 := c.Do("POST", "/iaas/cix_whitelist/", map[string]any{"cidr": freshCIDR()}, g2).Expect(201).Content()
	want("whitelist entry", e3, global2)

	// DNS: domain A, record A and PTR A are member A's admin's; the first
	// PTR made the reverse zone, for the same user.
	d := dnsOf(f)
	dom := apitest.Path("/iaas/domain/", d.domain)
	want("domain", get(dom), f.r.AdminA)
	found("domain", "/iaas/domain/", d.domain, f.r.AdminA)
	rec := apitest.Path("/iaas/record/", d.record)
	want("record created", get(rec), f.r.AdminA)
	want("record changed", c.Do("PUT", rec, putRecordA(f).body, user).Expect(200).Content(), f.r.UserA)
	found("record", "/iaas/record/", d.record, f.r.UserA)
	ptr := apitest.Path("/iaas/ptr_record/", d.ptr)
	p := get(ptr)
	want("PTR created", p, f.r.AdminA)
	zone := apitest.Path("/iaas/domain/", uint64(p["domain_id"].(float64)))
	want("reverse zone", get(zone), f.r.AdminA)
	want("PTR changed", patch(ptr, user, map[string]any{"content": "by-user.example.com"}), f.r.UserA)
	found("PTR", "/iaas/ptr_record/", d.ptr, f.r.UserA)
	// A record change moves the zone's serial, not its writer.
	want("reverse zone after the PTR change", get(zone), f.r.AdminA)

	// Side effects: a cloud made by member A's admin has the admin's
	// private allocations and subnets.
	cx := computeOf(f)
	proj := get(apitest.Path("/iaas/project/", cx.project))
	want("project made by the cloud", proj, f.r.AdminA) // was always 0 before
	found("project", "/iaas/project/", cx.project, f.r.AdminA)
	ids, _ := proj["allocation_ids"].([]any)
	if len(ids) != 3 {
		t.Fatalf("project allocations: %v", proj["allocation_ids"])
	}
	for _, id := range ids {
		want(fmt.Sprint("private allocation ", id), get(apitest.Path("/iaas/allocation/", uint64(id.(float64)))), f.r.AdminA)
	}
	cloud := get(apitest.Path("/iaas/cloud/", cx.project))
	subnets, _ := cloud["subnets"].([]any)
	if len(subnets) == 0 {
		t.Fatalf("cloud subnets: %v", cloud["subnets"])
	}
	for _, s := range subnets {
		id := uint64(s.(map[string]any)["id"].(float64))
		want(fmt.Sprint("cloud subnet ", id), get(apitest.Path("/iaas/subnet/", id)), f.r.AdminA)
	}
}
