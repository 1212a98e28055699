package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
	wire "github.com/regentcloud/regent/pkg/api"
)

// TestComputeTextControlChars: a name or description with a control
// character (C0, DEL, C1) is 400 with the field's usual code, on every
// compute service that stores free text and on membership names, and
// nothing is created.
func TestComputeTextControlChars(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vm := runningVM(f)
	withVM := func(edit func(b map[string]any)) map[string]any {
		b := vmBody(f.n.Unique("ctl"), x, 80, false)
		b["project_id"] = x.project
		edit(b)
		return b
	}
	cloud := func(edit func(b map[string]any)) map[string]any {
		b := cloudBody(f.n.Unique("ctl"), f.reg, x, 1)
		edit(b)
		return b
	}
	vpn := vpnBody(f)
	vpn["description"] = "tunnel\r\nforged: line"
	cases := []struct {
		name, method, path string
		body               map[string]any
		token              string
		code               string
	}{
		{"vm name escape", "POST", "/iaas/vm/", withVM(func(b map[string]any) { b["name"] = "web\x1b[31m" }), admin, "iaas_vm_create_127"},
		{"vm name C1", "POST", "/iaas/vm/", withVM(func(b map[string]any) { b["name"] = "web\u0085x" }), admin, "iaas_vm_create_127"},
		{"vm name NUL", "POST", "/iaas/vm/", withVM(func(b map[string]any) { b["name"] = "we\x00b" }), admin, "iaas_vm_create_127"},
		{"vm storage name", "POST", "/iaas/vm/", withVM(func(b map[string]any) {
			b["storages"] = []any{map[string]any{"name": "ro\not", "gb": 20, "primary": true}}
		}), admin, "iaas_vm_create_113"},
		{"vm rename", "PATCH", apitest.Path("/iaas/vm/", vm), map[string]any{"name": "a\tb"}, admin, "iaas_vm_update_127"},
		{"project name", "POST", "/iaas/project/", map[string]any{"name": "p\x7f", "region_id": f.reg}, admin, "iaas_project_create_102"},
		{"project note escape", "POST", "/iaas/project/", map[string]any{"name": f.n.Unique("note"), "region_id": f.reg, "note": "ok\n\x1b[2Jforged"}, admin, "iaas_project_create_106"},
		{"project note C1", "PATCH", apitest.Path("/iaas/project/", x.project), map[string]any{"note": "a\u009bb"}, admin, "iaas_project_update_106"},
		{"cloud subnet name", "POST", "/iaas/cloud/", cloud(func(b map[string]any) {
			b["subnets"].([]any)[0].(map[string]any)["name"] = "a\nb"
		}), admin, "iaas_cloud_create_110"},
		{"firewall description", "PUT", apitest.Path("/iaas/cloud/", x.project), map[string]any{"firewall_rules": []any{
			map[string]any{"allow": true, "source": "*", "destination": "10.0.0.0/24", "protocol": "icmp", "description": "x\x1b]0;pwned\x07"}}},
			admin, "iaas_cloud_update_130"},
		{"storage name", "POST", "/iaas/storage/", map[string]any{"vm_id": vm, "name": "da\x00ta", "gb": 10}, admin, "iaas_storage_create_104"},
		{"snapshot name", "POST", "/iaas/snapshot/", map[string]any{"vm_id": vm, "name": "s\x08n"}, admin, "iaas_snapshot_create_103"},
		{"vpn description", "POST", "/iaas/vpn/", vpn, admin, "iaas_vpn_create_105"},
		{"member name", "POST", "/membership/member/", map[string]any{"name": "evil\x1b[2J"}, f.root, "membership_member_create_101"},
	}
	paths := []string{"/iaas/project/", "/iaas/vm/", "/iaas/storage/", "/iaas/snapshot/", "/iaas/vpn/", "/iaas/subnet/", "/membership/member/"}
	count := func() map[string]float64 {
		m := map[string]float64{}
		for _, p := range paths {
			m[p] = c.Do("GET", p, nil, f.root).Expect(200).Map()["_metadata"].(map[string]any)["total_records"].(float64)
		}
		return m
	}
	before := count()
	rulesBefore := string(c.Do("GET", apitest.Path("/iaas/virtual_router/", x.vr), nil, admin).Expect(200).Body)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.For(t).Do(tc.method, tc.path, tc.body, tc.token).Expect(400)
			if !strings.Contains(string(resp.Body), tc.code) || !strings.Contains(string(resp.Body), "control characters") {
				t.Errorf("want %s naming control characters:\n%s", tc.code, resp.Body)
			}
		})
	}
	if after := count(); len(after) != len(before) || func() bool {
		for k, v := range before {
			if after[k] != v {
				return true
			}
		}
		return false
	}() {
		t.Errorf("bad names created objects: %v → %v", before, after)
	}
	// A note keeps its lines and tabs.
	note := "line one\n\tline two\r\n"
	if got := c.Do("PATCH", apitest.Path("/iaas/project/", x.project), map[string]any{"note": note}, admin).Expect(200).Content()["note"]; got != note {
		t.Errorf("note with lines and a tab: %q", got)
	}
	if name := c.Do("GET", apitest.Path("/iaas/vm/", vm), nil, admin).Expect(200).Content()["name"].(string); strings.ContainsFunc(name, func(r rune) bool { return r < ' ' }) {
		t.Errorf("the VM was renamed to %q", name)
	}
	if after := string(c.Do("GET", apitest.Path("/iaas/virtual_router/", x.vr), nil, admin).Expect(200).Body); after != rulesBefore {
		t.Errorf("the router changed:\n%s\n%s", rulesBefore, after)
	}
}

// TestComputeVMNameCase: VM names that differ only by case clash in a
// project (the router lower-cases them into one DHCP host name): 400
// iaas_vm_create_128 on /iaas/vm/ and in a cloud create, 400
// iaas_vm_update_128 on a rename; nothing changes. Another project may
// use the name.
func TestComputeVMNameCase(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	name := f.n.Unique("Web")
	b := vmBody(name, x, 90, false)
	b["project_id"] = x.project
	create(c, admin, "/iaas/vm/", b)
	other := newVMBody(f)
	otherID := create(c, admin, other.path, other.body)
	before := c.Do("GET", "/iaas/vm/", nil, f.root).Expect(200).List().Metadata.TotalRecords

	b = vmBody(strings.ToLower(name), x, 91, false)
	b["project_id"] = x.project
	if got := c.Do("POST", "/iaas/vm/", b, admin).Expect(400).FieldCode("name"); got != "iaas_vm_create_128" {
		t.Errorf("%q beside %q: %q, want iaas_vm_create_128", strings.ToLower(name), name, got)
	}
	if got := c.Do("PATCH", apitest.Path("/iaas/vm/", otherID), map[string]any{"name": strings.ToUpper(name)}, admin).Expect(400).FieldCode("name"); got != "iaas_vm_update_128" {
		t.Errorf("rename to %q beside %q: %q, want iaas_vm_update_128", strings.ToUpper(name), name, got)
	}
	body := cloudBody(f.n.Unique("case"), f.reg, x, 2)
	body["vms"].([]any)[0].(map[string]any)["name"] = "Db"
	body["vms"].([]any)[1].(map[string]any)["name"] = "DB"
	if r := c.Do("POST", "/iaas/cloud/", body, admin).Expect(400); !strings.Contains(string(r.Body), "_create_128") {
		t.Errorf("a cloud with Db and DB: %s", r.Body)
	}
	if after := c.Do("GET", "/iaas/vm/", nil, f.root).Expect(200).List().Metadata.TotalRecords; after != before {
		t.Errorf("VMs %d → %d", before, after)
	}
	// the same name, in another case, in another project is fine
	body = cloudBody(f.n.Unique("case"), f.reg, x, 1)
	body["vms"].([]any)[0].(map[string]any)["name"] = strings.ToLower(name)
	c.Do("POST", "/iaas/cloud/", body, admin).Expect(201)
}

// TestComputeVPNRemoteSubnetSpecial: a VPN route's remote_subnet that is
// IPv6 (the agents carry IPv4 networks only) or overlaps 0.0.0.0/8,
// 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4 or 255.255.255.255 is 400
// iaas_vpn_{create,update}_124 at routes[i].remote_subnet naming why;
// nothing is created or changed.
func TestComputeVPNRemoteSubnetSpecial(t *testing.T) {
	_, f, _ := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vpn := vpnOf(f)
	path := apitest.Path("/iaas/vpn/", vpn)
	was := string(c.Do("GET", path, nil, admin).Expect(200).Body)
	before := c.Do("GET", "/iaas/vpn/", nil, f.root).Expect(200).List().Metadata.TotalRecords
	for _, tc := range []struct{ remote, why string }{
		{"127.0.0.0/8", "loopback"},
		{"127.0.0.1/32", "loopback"},
		{"224.0.0.0/4", "multicast"},
		{"239.1.2.0/24", "multicast"},
		{"0.0.0.0/8", "this network"},
		{"169.254.169.254/32", "link-local"},
		{"255.255.255.255/32", "limited broadcast"},
		{"2001:db8::/32", "IPv4"},
		{"::ffff:198.18.0.0/112", "IPv4"},
	} {
		t.Run(tc.remote, func(t *testing.T) {
			b := vpnBody(f)
			good := b["routes"].([]any)[0].(map[string]any)
			route := map[string]any{"local_subnet_id": good["local_subnet_id"], "remote_subnet": tc.remote}
			b["routes"] = []any{good, route}
			r := c.For(t).Do("POST", "/iaas/vpn/", b, admin).Expect(400)
			if !strings.Contains(string(r.Body), "iaas_vpn_create_124") || !strings.Contains(string(r.Body), tc.why) {
				t.Errorf("create: want iaas_vpn_create_124 naming %q:\n%s", tc.why, r.Body)
			}
			r = c.For(t).Do("PATCH", path, map[string]any{"routes": []any{route}}, admin).Expect(400)
			if !strings.Contains(string(r.Body), "iaas_vpn_update_124") || !strings.Contains(string(r.Body), tc.why) {
				t.Errorf("update: want iaas_vpn_update_124 naming %q:\n%s", tc.why, r.Body)
			}
		})
	}
	if after := c.Do("GET", "/iaas/vpn/", nil, f.root).Expect(200).List().Metadata.TotalRecords; after != before {
		t.Errorf("VPNs %d → %d", before, after)
	}
	if now := string(c.Do("GET", path, nil, admin).Expect(200).Body); now != was {
		t.Errorf("the VPN changed:\n%s\n%s", was, now)
	}
}

// TestComputeVMStorageLimit: a VM has at most wire.MaxVMStorages disks
// (virtio-blk PCI devices on the guest's root bus): more is 400 naming the
// limit on /iaas/vm/ and cloud create (iaas_vm_create_113), on a VM or
// cloud update (iaas_vm_update_113) and on /iaas/storage/
// (iaas_storage_create_108); nothing changes. Exactly the limit is fine.
func TestComputeVMStorageLimit(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	limit := fmt.Sprint(wire.MaxVMStorages)
	disks := func(n int, primary bool) []any {
		var out []any
		for i := 0; i < n; i++ {
			out = append(out, map[string]any{"name": fmt.Sprintf("d%d", i), "gb": 1, "primary": primary && i == 0})
		}
		return out
	}
	vms := func() int { return c.Do("GET", "/iaas/vm/", nil, f.root).Expect(200).List().Metadata.TotalRecords }
	storages := func() int {
		return c.Do("GET", "/iaas/storage/", nil, f.root).Expect(200).List().Metadata.TotalRecords
	}
	beforeVMs, beforeDisks := vms(), storages()
	b := vmBody(f.n.Unique("many"), x, 100, false)
	b["project_id"], b["storages"] = x.project, disks(600, true)
	r := c.Do("POST", "/iaas/vm/", b, admin).Expect(400)
	if r.FieldCode("storages") != "iaas_vm_create_113" || !strings.Contains(r.Err().Errors["storages"].Detail, limit) {
		t.Errorf("600 disks on /iaas/vm/:\n%s", r)
	}
	cloud := cloudBody(f.n.Unique("many"), f.reg, x, 1)
	cloud["vms"].([]any)[0].(map[string]any)["storages"] = disks(wire.MaxVMStorages+1, true)
	if r := c.Do("POST", "/iaas/cloud/", cloud, admin).Expect(400); !strings.Contains(string(r.Body), "iaas_vm_create_113") || !strings.Contains(string(r.Body), "at most "+limit) {
		t.Errorf("%d disks in a cloud create:\n%s", wire.MaxVMStorages+1, r)
	}
	if a, b := vms(), storages(); a != beforeVMs || b != beforeDisks {
		t.Errorf("VMs %v → %v, storages %v → %v", beforeVMs, a, beforeDisks, b)
	}
	// exactly the limit is a VM; it takes no further disk
	b = vmBody(f.n.Unique("full"), x, 101, false)
	b["project_id"], b["storages"] = x.project, disks(wire.MaxVMStorages, true)
	vm := create(c, admin, "/iaas/vm/", b)
	path := apitest.Path("/iaas/vm/", vm)
	c.Do("PATCH", path, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	c.Do("PATCH", path, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
	was := fmt.Sprint(c.Do("GET", path, nil, admin).Expect(200).Content())
	beforeDisks = storages()
	r = c.Do("POST", "/iaas/storage/", map[string]any{"vm_id": vm, "name": "one-more", "gb": 1}, admin).Expect(400)
	if r.FieldCode("vm_id") != "iaas_storage_create_108" || !strings.Contains(r.Err().Errors["vm_id"].Detail, limit) {
		t.Errorf("storage create on a full VM:\n%s", r)
	}
	more := []any{map[string]any{"name": "one-more", "gb": 1}}
	r = c.Do("PATCH", path, map[string]any{"storages": more}, admin).Expect(400)
	if r.FieldCode("storages") != "iaas_vm_update_113" || !strings.Contains(r.Err().Errors["storages"].Detail, limit) {
		t.Errorf("VM update adding a disk to a full VM:\n%s", r)
	}
	r = c.Do("PATCH", apitest.Path("/iaas/cloud/", x.project), map[string]any{"vms": []any{map[string]any{"id": vm, "storages": more}}}, admin).Expect(400)
	if r.FieldCode("vms[0].storages") != "iaas_vm_update_113" {
		t.Errorf("cloud update adding a disk to a full VM:\n%s", r)
	}
	if now := fmt.Sprint(c.Do("GET", path, nil, admin).Expect(200).Content()); now != was || storages() != beforeDisks {
		t.Errorf("the full VM changed:\n%s\n%s", was, now)
	}
}

// TestComputeVMGatewayHoldsAnAddress: a VM whose gateway_subnet holds
// none of its ip_addresses (it would have no default route) is 400
// iaas_vm_create_131 at gateway_subnet, on /iaas/vm/ and in a cloud
// create, and nothing is created; with an address there it is a VM.
func TestComputeVMGatewayHoldsAnAddress(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	before := c.Do("GET", "/iaas/vm/", nil, f.root).Expect(200).List().Metadata.TotalRecords
	b := vmBody(f.n.Unique("nogw"), x, 110, false)
	b["project_id"], b["gateway_subnet"] = x.project, "10.0.1.1/24"
	r := c.Do("POST", "/iaas/vm/", b, admin).Expect(400)
	if r.FieldCode("gateway_subnet") != "iaas_vm_create_131" || !strings.Contains(r.Err().Errors["gateway_subnet"].Detail, "default route") {
		t.Errorf("gateway subnet without an address of the VM:\n%s", r)
	}
	cloud := cloudBody(f.n.Unique("nogw"), f.reg, x, 2)
	cloud["vms"].([]any)[1].(map[string]any)["gateway_subnet"] = "10.0.1.1/24"
	if r := c.Do("POST", "/iaas/cloud/", cloud, admin).Expect(400); !strings.Contains(string(r.Body), "iaas_vm_create_131") {
		t.Errorf("a cloud with such a VM:\n%s", r)
	}
	if after := c.Do("GET", "/iaas/vm/", nil, f.root).Expect(200).List().Metadata.TotalRecords; after != before {
		t.Errorf("VMs %d → %d", before, after)
	}
	b["ip_addresses"] = []any{map[string]any{"address": "10.0.0.110"}, map[string]any{"address": "10.0.1.110"}}
	c.Do("POST", "/iaas/vm/", b, admin).Expect(201)
}
