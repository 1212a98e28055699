package server_test

import (
	"fmt"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
	wire "github.com/regentcloud/regent/pkg/api"
)

// computeState is the compute lists a refused request must leave alone.
func computeState(t *testing.T, c *apitest.Client, token string) string {
	t.Helper()
	var s string
	for _, svc := range []string{"server", "vm", "storage"} {
		r := c.Do("GET", "/iaas/"+svc+"/?limit=100", nil, token).Expect(200)
		s += fmt.Sprintf("%s index %s: %s\n", svc, r.Header.Get("X-Regent-Index"), r.Body)
	}
	return s
}

// TestComputeSizeBounds: a server's cores, ram and gb and a VM's cpu, ram
// and storage sizes have upper bounds (wire.MaxCores, MaxRAMGB,
// MaxStorageGB): one above is 400 with the field's code and changes
// nothing; the bound itself is accepted, and placement on a server of the
// largest size works (no overflow, no 5xx).
func TestComputeSizeBounds(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	running := runningVM(f)
	vm := func(edit func(b map[string]any)) map[string]any {
		b := vmBody(f.n.Unique("big"), x, 80, false)
		b["project_id"] = x.project
		edit(b)
		return b
	}
	disk := func(gb int) []any { return []any{map[string]any{"name": "root", "gb": gb, "primary": true}} }
	server := func(k string, v int) map[string]any {
		b := map[string]any{"region_id": f.reg, "type_id": 2, "storage_type_id": x.st, "cores": 8, "ram": 64, "gb": 1000}
		b[k] = v
		return b
	}
	cases := []struct {
		name, method, path string
		body               map[string]any
		field, code        string
	}{
		{"server cores", "POST", "/iaas/server/", server("cores", wire.MaxCores+1), "cores", "iaas_server_create_107"},
		{"server ram", "POST", "/iaas/server/", server("ram", wire.MaxRAMGB+1), "ram", "iaas_server_create_108"},
		{"server gb", "POST", "/iaas/server/", server("gb", wire.MaxStorageGB+1), "gb", "iaas_server_create_109"},
		{"server gb max int", "POST", "/iaas/server/", server("gb", 1<<63-1), "gb", "iaas_server_create_109"},
		{"server update cores", "PATCH", apitest.Path("/iaas/server/", x.srv), map[string]any{"cores": wire.MaxCores + 1}, "cores", "iaas_server_update_107"},
		{"vm cpu", "POST", "/iaas/vm/", vm(func(b map[string]any) { b["cpu"] = wire.MaxCores + 1 }), "cpu", "iaas_vm_create_119"},
		{"vm ram", "POST", "/iaas/vm/", vm(func(b map[string]any) { b["ram"] = wire.MaxRAMGB + 1 }), "ram", "iaas_vm_create_122"},
		{"vm storage", "POST", "/iaas/vm/", vm(func(b map[string]any) { b["storages"] = disk(wire.MaxStorageGB + 1) }), "storages", "iaas_vm_create_113"},
		{"vm storages together", "POST", "/iaas/vm/", vm(func(b map[string]any) {
			b["storages"] = append(disk(wire.MaxStorageGB), map[string]any{"name": "data", "gb": 1})
		}), "storages", "iaas_vm_create_113"},
		{"vm storages that would wrap", "POST", "/iaas/vm/", vm(func(b map[string]any) {
			b["storages"] = append(disk(1<<62), map[string]any{"name": "data", "gb": 1 << 62})
		}), "storages", "iaas_vm_create_113"},
		{"vm update cpu", "PATCH", apitest.Path("/iaas/vm/", running), map[string]any{"cpu": wire.MaxCores + 1}, "cpu", "iaas_vm_update_117"},
		{"vm update ram", "PATCH", apitest.Path("/iaas/vm/", running), map[string]any{"ram": 1<<63 - 1}, "ram", "iaas_vm_update_120"},
		{"vm update storage", "PATCH", apitest.Path("/iaas/vm/", running), map[string]any{"storages": []any{map[string]any{"name": "root", "gb": wire.MaxStorageGB + 1}}}, "storages", "iaas_vm_update_113"},
		{"storage create", "POST", "/iaas/storage/", map[string]any{"vm_id": running, "name": "data", "gb": wire.MaxStorageGB + 1}, "gb", "iaas_storage_create_105"},
		{"cloud update vm", "PUT", apitest.Path("/iaas/cloud/", x.project), map[string]any{"vms": []any{map[string]any{"id": x.vm, "cpu": wire.MaxCores + 1}}}, "vms[0].cpu", "iaas_vm_update_117"},
	}
	before := computeState(t, c, f.root)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.For(t).Do(tc.method, tc.path, tc.body, f.root).Expect(400)
			if got := resp.FieldCode(tc.field); got != tc.code {
				t.Errorf("errors[%s] = %q, want %q\n%s", tc.field, got, tc.code, resp)
			}
		})
	}
	if after := computeState(t, c, f.root); after != before {
		t.Errorf("refused requests changed state:\nbefore %s\nafter  %s", before, after)
	}

	// At the bounds: a server of the largest size, and a VM of the largest
	// cpu and ram with the largest disk, placed on it (the score's
	// arithmetic would overflow int64 here).
	st := create(c, f.root, "/iaas/storage_type/", map[string]any{"name": f.n.Unique("huge")})
	srv := create(c, f.root, "/iaas/server/", map[string]any{"region_id": f.reg, "type_id": 2, "storage_type_id": st,
		"cores": wire.MaxCores, "ram": wire.MaxRAMGB, "gb": wire.MaxStorageGB})
	create(c, f.root, "/iaas/server/", map[string]any{"region_id": f.reg, "type_id": 2, "storage_type_id": st,
		"cores": 64, "ram": 2048, "gb": 100000})
	b := vm(func(b map[string]any) {
		b["storage_type_id"], b["cpu"], b["ram"], b["storages"] = st, 1024, wire.MaxRAMGB/2, disk(wire.MaxStorageGB/2)
	})
	got := c.Do("POST", "/iaas/vm/", b, admin).Expect(201).Content()
	if num(got["server_id"]) != srv {
		t.Errorf("huge VM placed on server %v, want %d", got["server_id"], srv)
	}
	c.Do("GET", "/iaas/capacity/"+fmt.Sprint(f.reg)+"/", nil, f.root).Expect(200)
}

// TestWrongNumberNamesTheRange: a number a field's Go type cannot hold (a
// negative, a fraction, one too large) is 400 regent_request_004 naming the
// whole numbers the field takes and the number sent. Before the fix the
// message contradicted itself: "Expected a number, got JSON number -1."
func TestWrongNumberNamesTheRange(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	for _, v := range []string{"-1", "3.5", "1e30", "18446744073709551616"} {
		r := c.Do("POST", "/iaas/subnet/", `{"vlan": `+v+`, "allocation_id": `+v+`, "address_range": "10.0.0.1/24"}`, n.RootToken).Expect(400)
		errs := r.Err().Errors
		for field, want := range map[string]string{
			"vlan":          "Expected a whole number from 0 to 4294967295, got " + v + ".",
			"allocation_id": "Expected a whole number from 0 to 18446744073709551615, got " + v + ".",
		} {
			if got := errs[field]; got.ErrorCode != "regent_request_004" || got.Detail != want {
				t.Errorf("%s %s: %+v, want regent_request_004 %q", field, v, got, want)
			}
		}
	}
	// A value of another JSON type says which.
	r := c.Do("POST", "/iaas/subnet/", `{"vlan": "7", "name": 7}`, n.RootToken).Expect(400)
	for field, want := range map[string]string{
		"vlan": "Expected a whole number from 0 to 4294967295, got JSON string.",
		"name": "Expected a string, got JSON number.",
	} {
		if got := r.Err().Errors[field]; got.Detail != want {
			t.Errorf("%s: %q, want %q", field, got.Detail, want)
		}
	}
}
