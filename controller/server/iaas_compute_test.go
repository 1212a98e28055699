package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
	wire "github.com/regentcloud/regent/pkg/api"
)

// --- objects of the auth matrix rows of the compute services ---

// computeFixture lives in region R (customer: member A): storage type ST,
// image IMG available there (region image RI), server SRV with interface
// IF, a phantom router RT whose floating subnet FS is a public /24, and
// project P of member A (made by a cloud create) with its virtual router
// VR, subnet 10.0.0.1/24 and VM V with storage D. robotR is a robot token
// bound to region R (the matrix robot is bound to another region).
type computeFixture struct {
	st, img, ri, srv, itf, rt, fs uint64
	project, vr, vm, disk         uint64
	robotR                        string
}

var (
	computeMu  sync.Mutex
	computeFix = map[*fixture]*computeFixture{}
	computeSeq atomic.Uint64
)

// sshKey is a well-formed ed25519 public key.
const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA test@regent"

func computeOf(f *fixture) *computeFixture {
	computeMu.Lock()
	defer computeMu.Unlock()
	if x, ok := computeFix[f]; ok {
		return x
	}
	x := newComputeRegion(f.c, f.root, f.reg)
	x.project = cloudID(f.c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 1), f.r.Token(apitest.MemberAdmin)).Expect(201))
	cloud := f.c.Do("GET", apitest.Path("/iaas/cloud/", x.project), nil, f.root).Expect(200).Content()
	x.vr = uint64(cloud["virtual_router"].(map[string]any)["id"].(float64))
	vm := cloud["vms"].([]any)[0].(map[string]any)
	x.vm = uint64(vm["id"].(float64))
	x.disk = uint64(vm["storages"].([]any)[0].(map[string]any)["id"].(float64))
	computeFix[f] = x
	return x
}

// newComputeRegion fills region reg with a catalogue and hardware.
func newComputeRegion(c *apitest.Client, root string, reg uint64) *computeFixture {
	x := &computeFixture{}
	n := computeSeq.Add(1)
	x.st = create(c, root, "/iaas/storage_type/", map[string]any{"name": fmt.Sprintf("SSD-%d", n)})
	x.img = create(c, root, "/iaas/image/", map[string]any{"display_name": "Ubuntu 24.04", "server_type_id": 2,
		"cloud_init": true, "multiple_ips": true, "filename": "noble.qcow2",
		"source": "https://cloud-images.example/noble.qcow2", "sha256": testImageSHA256})
	x.ri = create(c, root, "/iaas/region_image/", map[string]any{"region_id": reg, "image_id": x.img})
	x.srv = create(c, root, "/iaas/server/", map[string]any{"region_id": reg, "type_id": 2, "storage_type_id": x.st,
		"cores": 64, "ram": 2048, "gb": 100000})
	x.itf = create(c, root, "/iaas/interface/", map[string]any{"server_id": x.srv, "hostname": "hv1", "ip_address": "2001:db8::10", "mac_address": "52:54:00:00:00:01"})
	asn := create(c, root, "/iaas/asn/", map[string]any{"member_id": 1, "number": 4_100_000_000 + n})
	alloc := create(c, root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": fmt.Sprintf("100.%d.%d.0/24", 64+n/256%64, n%256), "type": "public"})
	x.fs = create(c, root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": fmt.Sprintf("100.%d.%d.1/24", 64+n/256%64, n%256)})
	x.rt = create(c, root, "/iaas/router/", map[string]any{"region_id": reg, "phantom": true, "floating_subnet_ids": []uint64{x.fs}})
	_, x.robotR = c.CreateRobotToken(root, reg)
	return x
}

// vmBody is a VM of the cloud's 10.0.0.1/24 subnet with address 10.0.0.<host>.
func vmBody(name string, x *computeFixture, host int, nat bool) map[string]any {
	return map[string]any{"name": name, "image_id": x.img, "storage_type_id": x.st, "cpu": 2, "ram": 4,
		"dns": "1.1.1.1,8.8.8.8", "gateway_subnet": "10.0.0.1/24", "public_key": sshKey,
		"storages":     []any{map[string]any{"name": "root", "gb": 20, "primary": true}},
		"ip_addresses": []any{map[string]any{"address": fmt.Sprintf("10.0.0.%d", host), "nat": nat}}}
}

func cloudBody(name string, region uint64, x *computeFixture, vms int) map[string]any {
	var list []any
	for i := 0; i < vms; i++ {
		list = append(list, vmBody(fmt.Sprintf("vm-%d", i), x, 10+i, i == 0))
	}
	return map[string]any{
		"project": map[string]any{"name": name, "region_id": region},
		"subnets": []any{map[string]any{"name": "a", "address_range": "10.0.0.1/24"}, map[string]any{"name": "b", "address_range": "10.0.1.1/24"}},
		"vms":     list,
		"firewall_rules": []any{map[string]any{"allow": true, "source": "*", "destination": "10.0.0.0/24", "protocol": "tcp", "port": "22"},
			map[string]any{"allow": false, "source": "10.0.1.0/24", "destination": "203.0.113.0/24", "protocol": "any"}},
	}
}

func storageTypeA(f *fixture) request {
	return request{path: apitest.Path("/iaas/storage_type/", computeOf(f).st)}
}
func imageA(f *fixture) request { return request{path: apitest.Path("/iaas/image/", computeOf(f).img)} }
func regionImageA(f *fixture) request {
	return request{path: apitest.Path("/iaas/region_image/", computeOf(f).ri)}
}
func serverA(f *fixture) request {
	return request{path: apitest.Path("/iaas/server/", computeOf(f).srv)}
}
func interfaceA(f *fixture) request {
	return request{path: apitest.Path("/iaas/interface/", computeOf(f).itf)}
}
func routerA(f *fixture) request {
	return request{path: apitest.Path("/iaas/router/", computeOf(f).rt)}
}
func projectP(f *fixture) request {
	return request{path: apitest.Path("/iaas/project/", computeOf(f).project)}
}
func cloudP(f *fixture) request {
	return request{path: apitest.Path("/iaas/cloud/", computeOf(f).project)}
}
func vrP(f *fixture) request {
	return request{path: apitest.Path("/iaas/virtual_router/", computeOf(f).vr), body: map[string]any{"state": 1}}
}
func vmV(f *fixture) request {
	return request{path: apitest.Path("/iaas/vm/", computeOf(f).vm), body: map[string]any{"state": 1}}
}
func storageD(f *fixture) request {
	return request{path: apitest.Path("/iaas/storage/", computeOf(f).disk)}
}
func serverType2(*fixture) request { return request{path: "/iaas/server_type/2/"} }

func newStorageTypeBody(f *fixture) request {
	computeOf(f)
	return request{path: "/iaas/storage_type/", body: map[string]any{"name": f.n.Unique("HDD")}}
}
func renameStorageTypeA(f *fixture) request {
	r := storageTypeA(f)
	r.body = map[string]any{"name": f.n.Unique("SSD")}
	return r
}
func newImageBody(f *fixture) request {
	computeOf(f)
	return request{path: "/iaas/image/", body: map[string]any{"display_name": "Debian", "server_type_id": 2,
		"source": "debian-12.qcow2", "sha256": testImageSHA256}}
}
func putImageA(f *fixture) request {
	r := imageA(f)
	r.body = map[string]any{"display_name": "Ubuntu 24.04", "server_type_id": 2, "cloud_init": true, "multiple_ips": true, "filename": "noble.qcow2",
		"source": "https://cloud-images.example/noble.qcow2", "sha256": testImageSHA256}
	return r
}
func newRegionImageBody(f *fixture) request {
	img := create(f.c, f.root, "/iaas/image/", map[string]any{"display_name": "Alma", "server_type_id": 2})
	return request{path: "/iaas/region_image/", body: map[string]any{"region_id": f.reg, "image_id": img}}
}
func newRegionImage(f *fixture) request {
	b := newRegionImageBody(f)
	return request{path: apitest.Path("/iaas/region_image/", create(f.c, f.root, b.path, b.body))}
}
func newServerBody(f *fixture) request {
	return request{path: "/iaas/server/", body: map[string]any{"region_id": f.reg, "type_id": 2, "storage_type_id": computeOf(f).st,
		"cores": 8, "ram": 64, "gb": 1000}}
}
func patchServerA(f *fixture) request {
	r := serverA(f)
	r.body = map[string]any{"model": f.n.Unique("model")}
	return r
}
func putServerA(f *fixture) request {
	r := serverA(f)
	r.body = map[string]any{"type_id": 2, "storage_type_id": computeOf(f).st, "cores": 64, "ram": 2048, "gb": 100000, "model": f.n.Unique("model")}
	return r
}
func newInterfaceBody(f *fixture) request {
	return request{path: "/iaas/interface/", body: map[string]any{"server_id": computeOf(f).srv, "hostname": f.n.Unique("nic")}}
}
func patchInterfaceA(f *fixture) request {
	r := interfaceA(f)
	r.body = map[string]any{"details": f.n.Unique("details")}
	return r
}
func newInterface(f *fixture) request {
	b := newInterfaceBody(f)
	return request{path: apitest.Path("/iaas/interface/", create(f.c, f.root, b.path, b.body))}
}
func newRouterBody(f *fixture) request {
	computeOf(f)
	return request{path: "/iaas/router/", body: map[string]any{"region_id": f.reg, "capacity": 5}}
}
func patchRouterA(f *fixture) request {
	r := routerA(f)
	// What a PUT needs too: RT is a phantom router with floating subnet FS.
	r.body = map[string]any{"model": f.n.Unique("podnet"), "phantom": true, "floating_subnet_ids": []uint64{computeOf(f).fs}}
	return r
}
func newProjectBody(f *fixture) request {
	computeOf(f)
	return request{path: "/iaas/project/", body: map[string]any{"name": f.n.Unique("project"), "region_id": f.reg}}
}
func patchProjectP(f *fixture) request {
	r := projectP(f)
	r.body = map[string]any{"name": f.n.Unique("p"), "note": "renamed"}
	return r
}
func newCloudBody(f *fixture) request {
	return request{path: "/iaas/cloud/", body: cloudBody(f.n.Unique("cloud"), f.reg, computeOf(f), 1)}
}
func putCloudP(f *fixture) request {
	r := cloudP(f)
	r.body = map[string]any{"firewall_rules": []any{map[string]any{"allow": true, "source": "*", "destination": "10.0.0.0/24", "protocol": "icmp"}}}
	return r
}
func newVMBody(f *fixture) request {
	x := computeOf(f)
	host := 20 + int(computeSeq.Add(1)%200)
	b := vmBody(f.n.Unique("vm"), x, host, false)
	b["project_id"] = x.project
	return request{path: "/iaas/vm/", body: b}
}

// runningVM makes a new VM of project P and drives it to RUNNING with the
// region's robot.
func runningVM(f *fixture) uint64 {
	x := computeOf(f)
	b := newVMBody(f)
	id := create(f.c, f.root, b.path, b.body)
	path := apitest.Path("/iaas/vm/", id)
	f.c.Do("PATCH", path, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	f.c.Do("PATCH", path, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
	return id
}

func newStorageBody(f *fixture) request {
	return request{path: "/iaas/storage/", body: map[string]any{"vm_id": runningVM(f), "name": "data", "gb": 10}}
}

// cloudID is the project id of a cloud response.
func cloudID(r *apitest.Response) uint64 {
	return uint64(r.Content()["project"].(map[string]any)["id"].(float64))
}

// --- named API tests of the compute services ---

func computeSetup(t *testing.T) (*apitest.Node, *fixture, *computeFixture) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	return n, f, computeOf(f)
}

func TestComputeCloudCreateReadUpdate(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("full"), f.reg, x, 3), admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()
	vms := cloud["vms"].([]any)
	subnets := cloud["subnets"].([]any)
	vr := cloud["virtual_router"].(map[string]any)
	if len(vms) != 3 || len(subnets) != 2 || len(vr["firewall_rules"].([]any)) != 2 {
		t.Fatalf("cloud: %v", cloud)
	}
	p := cloud["project"].(map[string]any)
	if p["asn"].(float64) != 1e12+float64(id) || len(p["allocation_ids"].([]any)) != 3 {
		t.Errorf("project: %v", p)
	}
	for _, s := range subnets {
		if v := s.(map[string]any)["vlan"].(float64); v < 1000 || v > 2000 {
			t.Errorf("subnet VLAN %v outside 1000-2000", v)
		}
	}
	vm0 := vms[0].(map[string]any)
	ip := vm0["ip_addresses"].([]any)[0].(map[string]any)
	if ip["public_ip"] == nil || !strings.HasPrefix(ip["mac_address"].(string), "02:") || vm0["state"].(float64) != 1 || vm0["server_id"].(float64) != float64(x.srv) {
		t.Errorf("vm 0: %v", vm0)
	}
	// update: a new subnet, a new VM, the rules replaced; the router's generation moves.
	upd := map[string]any{
		"subnets": []any{map[string]any{"name": "c", "address_range": "192.168.5.1/24"}},
		"vms": []any{func() map[string]any {
			v := vmBody("late", x, 50, false)
			v["gateway_subnet"] = "192.168.5.1/24"
			v["ip_addresses"] = []any{map[string]any{"address": "192.168.5.9"}}
			return v
		}()},
		"firewall_rules": []any{},
	}
	after := c.Do("PUT", apitest.Path("/iaas/cloud/", id), upd, admin).Expect(200).Content()
	avr := after["virtual_router"].(map[string]any)
	if len(after["vms"].([]any)) != 4 || len(after["subnets"].([]any)) != 3 || len(avr["firewall_rules"].([]any)) != 0 || avr["generation"].(float64) != 2 {
		t.Errorf("after update: %v", after)
	}
}

// TestComputeCloudCreateAtomic: 2 subnets, 3 VMs and rules; the last VM is
// invalid; nothing is created (no project, router, IPs, VMs).
func TestComputeCloudCreateAtomic(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	count := func(path string) float64 {
		return c.Do("GET", path, nil, f.root).Expect(200).Map()["_metadata"].(map[string]any)["total_records"].(float64)
	}
	paths := []string{"/iaas/project/", "/iaas/virtual_router/", "/iaas/vm/", "/iaas/storage/", "/iaas/ip_address/", "/iaas/subnet/", "/iaas/allocation/", "/iaas/asn/", "/iaas/vm_history/"}
	before := map[string]float64{}
	for _, p := range paths {
		before[p] = count(p)
	}
	for _, tc := range []struct {
		name  string
		spoil func(vm map[string]any)
		field string
		code  string
	}{
		{"address outside the subnets", func(vm map[string]any) {
			vm["ip_addresses"] = []any{map[string]any{"address": "10.9.9.9"}}
		}, "vms[2].ip_addresses[0]", "iaas_vm_create_137"},
		{"address taken by an earlier VM", func(vm map[string]any) {
			vm["ip_addresses"] = []any{map[string]any{"address": "10.0.0.10"}}
		}, "vms[2].ip_addresses[0]", "iaas_vm_create_139"},
		{"unknown image", func(vm map[string]any) { vm["image_id"] = 999999 }, "vms[2].image_id", "iaas_vm_create_107"},
		{"no capacity", func(vm map[string]any) { vm["ram"] = 100000 }, "vms[2].server", "iaas_vm_create_123"},
		{"duplicate name", func(vm map[string]any) { vm["name"] = "vm-0" }, "vms[2].name", "iaas_vm_create_128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := cloudBody(f.n.Unique("atomic"), f.reg, x, 3)
			tc.spoil(body["vms"].([]any)[2].(map[string]any))
			resp := c.For(t).Do("POST", "/iaas/cloud/", body, admin).Expect(400)
			if got := resp.FieldCode(tc.field); got != tc.code {
				t.Errorf("errors[%s] = %q, want %q\n%s", tc.field, got, tc.code, resp)
			}
			for _, p := range paths {
				if got := count(p); got != before[p] {
					t.Errorf("%s: %v objects after a failed cloud create, %v before", p, got, before[p])
				}
			}
		})
	}
}

func TestComputeVMBadInput(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	unknownST := vmBody("st", x, 70, false)
	unknownST["storage_type_id"] = 999999
	cases := []struct {
		name  string
		edit  func(b map[string]any)
		field string
		code  string
	}{
		{"missing project", func(b map[string]any) { delete(b, "project_id") }, "project_id", "iaas_vm_create_101"},
		{"unknown image", func(b map[string]any) { b["image_id"] = 999999 }, "image_id", "iaas_vm_create_107"},
		{"unknown storage type", func(b map[string]any) { b["storage_type_id"] = 999999 }, "storage_type_id", "iaas_vm_create_111"},
		{"no storages", func(b map[string]any) { b["storages"] = []any{} }, "storages", "iaas_vm_create_112"},
		{"two primaries", func(b map[string]any) {
			b["storages"] = []any{map[string]any{"name": "a", "gb": 10, "primary": true}, map[string]any{"name": "b", "gb": 10, "primary": true}}
		}, "storages", "iaas_vm_create_115"},
		{"zero cpu", func(b map[string]any) { b["cpu"] = 0 }, "cpu", "iaas_vm_create_119"},
		{"no capacity", func(b map[string]any) { b["cpu"] = 100000 }, "server", "iaas_vm_create_123"},
		{"bad dns", func(b map[string]any) { b["dns"] = "1.1.1.1,not-an-ip" }, "dns", "iaas_vm_create_125"},
		{"invalid ssh key", func(b map[string]any) { b["public_key"] = "ssh-rsa AAAAB3Nza trash" }, "public_key", "iaas_vm_create_129"},
		{"truncated ed25519 key", func(b map[string]any) { b["public_key"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAA" }, "public_key", "iaas_vm_create_129"},
		{"foreign gateway subnet", func(b map[string]any) { b["gateway_subnet"] = "10.50.0.1/24" }, "gateway_subnet", "iaas_vm_create_131"},
		{"public address", func(b map[string]any) { b["ip_addresses"] = []any{map[string]any{"address": "8.8.8.8"}} }, "ip_addresses[0]", "iaas_vm_create_136"},
		{"gateway address", func(b map[string]any) { b["ip_addresses"] = []any{map[string]any{"address": "10.0.0.1"}} }, "ip_addresses[0]", "iaas_vm_create_138"},
		{"nat outside gateway subnet", func(b map[string]any) {
			b["ip_addresses"] = []any{map[string]any{"address": "10.0.0.71"}, map[string]any{"address": "10.0.1.71", "nat": true}}
		}, "ip_addresses[1]", "iaas_vm_create_140"},
		{"oversized userdata", func(b map[string]any) { b["userdata"] = "#cloud-config\n" + strings.Repeat("x", 16<<10) }, "userdata", "iaas_vm_create_144"},
		{"wrongly prefixed userdata", func(b map[string]any) { b["userdata"] = "runcmd: [ls]" }, "userdata", "iaas_vm_create_145"},
		{"gpu", func(b map[string]any) { b["gpu"] = 1 }, "gpu", "iaas_vm_create_146"},
	}
	before := c.Do("GET", "/iaas/vm/", nil, f.root).Expect(200).List().Metadata.TotalRecords
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := vmBody(f.n.Unique("bad"), x, 70, false)
			b["project_id"] = x.project
			tc.edit(b)
			resp := c.For(t).Do("POST", "/iaas/vm/", b, admin).Expect(400)
			if got := resp.FieldCode(tc.field); got != tc.code {
				t.Errorf("errors[%s] = %q, want %q\n%s", tc.field, got, tc.code, resp)
			}
		})
	}
	if after := c.Do("GET", "/iaas/vm/", nil, f.root).Expect(200).List().Metadata.TotalRecords; after != before {
		t.Errorf("bad input created VMs: %d → %d", before, after)
	}
	// userdata on an image without cloud-init
	img := create(c, f.root, "/iaas/image/", map[string]any{"display_name": "Win", "server_type_id": 2})
	create(c, f.root, "/iaas/region_image/", map[string]any{"region_id": f.reg, "image_id": img})
	b := vmBody(f.n.Unique("ud"), x, 72, false)
	b["project_id"], b["image_id"], b["userdata"] = x.project, img, "#cloud-config\n"
	if got := c.Do("POST", "/iaas/vm/", b, admin).Expect(400).FieldCode("userdata"); got != "iaas_vm_create_143" {
		t.Errorf("userdata on a non-cloud-init image: %q", got)
	}
}

// TestComputeStateChanges: users follow the USER map, robots the ROBOT map
// with compare-and-swap; two robots racing for one transition: one wins,
// the other gets 409; histories record the actor.
// testImageSHA256 is the digest the fixtures' image carries.
const testImageSHA256 = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

// TestComputeImageSource: an image's source and sha256 are validated on
// create and update and kept (sha256 in lower case).
func TestComputeImageSource(t *testing.T) {
	_, f, _ := computeSetup(t)
	c := f.c.For(t)
	id := create(c, f.root, "/iaas/image/", map[string]any{"display_name": "Src", "server_type_id": 2,
		"source": " /var/lib/regent/images/src.qcow2 ", "sha256": strings.ToUpper(testImageSHA256)})
	got := c.Do("GET", apitest.Path("/iaas/image/", id), nil, f.root).Expect(200).Content()
	if got["source"] != "/var/lib/regent/images/src.qcow2" || got["sha256"] != testImageSHA256 {
		t.Errorf("image = %v", got)
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
		code  string
	}{
		{map[string]any{"source": "ftp://example.com/x.qcow2"}, "source", "iaas_image_update_108"},
		{map[string]any{"source": "https:///x.qcow2"}, "source", "iaas_image_update_108"},
		{map[string]any{"source": "/x/" + strings.Repeat("a", 1000)}, "source", "iaas_image_update_108"},
		{map[string]any{"sha256": "abc"}, "sha256", "iaas_image_update_109"},
		{map[string]any{"sha256": strings.Repeat("g", 64)}, "sha256", "iaas_image_update_109"},
	} {
		if code := c.Do("PATCH", apitest.Path("/iaas/image/", id), tc.body, f.root).Expect(400).FieldCode(tc.field); code != tc.code {
			t.Errorf("%v: errors[%s] = %q, want %q", tc.body, tc.field, code, tc.code)
		}
	}
	if code := c.Do("POST", "/iaas/image/", map[string]any{"display_name": "Bad", "server_type_id": 2, "sha256": "xyz"}, f.root).
		Expect(400).FieldCode("sha256"); code != "iaas_image_create_109" {
		t.Errorf("create with a bad sha256: %q", code)
	}
	c.Do("PATCH", apitest.Path("/iaas/image/", id), map[string]any{"source": "http://mirror.example/src.qcow2"}, f.root).Expect(200)
	got = c.Do("GET", apitest.Path("/iaas/image/", id), nil, f.root).Expect(200).Content()
	if got["source"] != "http://mirror.example/src.qcow2" || got["sha256"] != testImageSHA256 {
		t.Errorf("image after PATCH source = %v", got)
	}
}

func TestComputeStateChanges(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	b := newVMBody(f)
	id := create(c, admin, b.path, b.body)
	path := apitest.Path("/iaas/vm/", id)
	if got := c.Do("PATCH", path, map[string]any{"state": 2}, admin).Expect(400).FieldCode("state"); got != "iaas_vm_update_106" {
		t.Errorf("user builds: %q", got)
	}
	if got := c.Do("PATCH", path, map[string]any{"state": "two"}, admin).Expect(400).FieldCode("state"); got != "iaas_vm_update_104" {
		t.Errorf("non-integer state: %q", got)
	}
	if got := c.Do("PATCH", path, map[string]any{"state": 2}, x.robotR).Expect(400).FieldCode("expected_state"); got != "iaas_vm_update_111" {
		t.Errorf("robot without expected_state: %q", got)
	}
	// If-Match 0 names no index (it read as no If-Match, and the robot's
	// change skipped its compare-and-swap).
	if r := c.DoHeader("PATCH", path, map[string]any{"state": 2}, http.Header{"X-Auth-Token": {x.robotR}, "If-Match": {"0"}}).Expect(400); r.ErrorCode() != "regent_request_005" {
		t.Errorf("robot with If-Match 0: %s", r)
	}
	if vm := c.Do("GET", path, nil, admin).Expect(200).Content(); vm["state"] != float64(1) {
		t.Errorf("state after the refused change: %v", vm["state"])
	}
	// The matrix robot is bound to another region: the VM is not there.
	c.Do("PATCH", path, map[string]any{"state": 2, "expected_state": 1}, f.r.Token(apitest.Robot)).Expect(404)
	// Two robots race: exactly one claims the build.
	_, robot2 := c.CreateRobotToken(f.root, f.reg)
	var wg sync.WaitGroup
	status := make([]int, 2)
	for i, tok := range []string{x.robotR, robot2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status[i] = f.c.Unchecked().Do("PATCH", path, map[string]any{"state": 2, "expected_state": 1}, tok).Status
		}()
	}
	wg.Wait()
	if !(status[0] == 200 && status[1] == 409 || status[0] == 409 && status[1] == 200) {
		t.Fatalf("racing claims: %v, want one 200 and one 409", status)
	}
	resp := c.Do("PATCH", path, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(409)
	if resp.ErrorCode() != "iaas_vm_update_004" {
		t.Errorf("CAS mismatch code %q", resp.ErrorCode())
	}
	// Failure with detail, retry, success.
	vm := c.Do("PATCH", path, map[string]any{"state": 3, "expected_state": 2, "error_code": "image_missing", "error_detail": "noble.qcow2 not found"}, x.robotR).Expect(200).Content()
	if vm["error_code"] != "image_missing" || vm["error_detail"] != "noble.qcow2 not found" {
		t.Errorf("unresourced: %v", vm)
	}
	if got := c.Do("PATCH", path, map[string]any{"state": 3, "error_code": "x"}, admin).Expect(403).ErrorCode(); got != "iaas_vm_update_203" {
		t.Errorf("user reports an error: %q", got)
	}
	for _, s := range [][2]int{{1, 3}, {2, 1}, {4, 2}} {
		c.Do("PATCH", path, map[string]any{"state": s[0], "expected_state": s[1], "observed_generation": 1}, x.robotR).Expect(200)
	}
	vm = c.Do("GET", path, nil, admin).Expect(200).Content()
	if vm["state"].(float64) != 4 || vm["error_code"] != "" || vm["observed_generation"].(float64) != 1 || vm["stable"] != true {
		t.Errorf("running: %v", vm)
	}
	// A spec change: RUNNING → RUNNING_UPDATE, generation 2.
	vm = c.Do("PATCH", path, map[string]any{"ram": 8, "storages": []any{map[string]any{"name": "data", "gb": 5}}}, admin).Expect(200).Content()
	if vm["state"].(float64) != 10 || vm["generation"].(float64) != 2 || len(vm["storages"].([]any)) != 2 {
		t.Errorf("spec change: %v", vm)
	}
	if got := c.Do("PATCH", path, map[string]any{"cpu": 4}, admin).Expect(400).ErrorCode(); got != "iaas_vm_update_118" {
		t.Errorf("spec change while updating: %q", got)
	}
	// observed_generation alone: the state stays (compared and swapped on
	// the state the robot names, or the one the API read).
	vm = c.Do("PATCH", path, map[string]any{"observed_generation": 2}, x.robotR).Expect(200).Content()
	if vm["state"].(float64) != 10 || vm["observed_generation"].(float64) != 2 {
		t.Errorf("observed_generation alone: %v", vm)
	}
	c.Do("PATCH", path, map[string]any{"observed_generation": 2, "expected_state": 10}, x.robotR).Expect(200)
	if got := c.Do("PATCH", path, map[string]any{"observed_generation": 2, "expected_state": 4}, x.robotR).Expect(409).ErrorCode(); got != "iaas_vm_update_004" {
		t.Errorf("observed_generation with a stale expected_state: %q", got)
	}
	if got := c.Do("PATCH", path, map[string]any{"error_code": "x", "expected_state": 10}, x.robotR).Expect(400).FieldCode("state"); got != "iaas_vm_update_104" {
		t.Errorf("error_code without state: %q", got)
	}
	if got := c.Do("PATCH", path, map[string]any{"cpu": 4}, x.robotR).Expect(403).ErrorCode(); got != "iaas_vm_update_203" {
		t.Errorf("robot spec change: %q", got)
	}
	hist := c.Do("GET", fmt.Sprintf("/iaas/vm_history/?search[vm_id]=%d&order=id", id), nil, admin).Expect(200).List()
	if len(hist.Content) != 7 {
		t.Fatalf("history rows %d: %v", len(hist.Content), hist.Content)
	}
	if h := hist.Content[1]; h["robot"] != true || h["state"].(float64) != 2 {
		t.Errorf("history of the claim: %v", h)
	}
	if h := hist.Content[6]; h["robot"] != false || h["state"].(float64) != 10 || h["user_id"].(float64) != float64(f.r.AdminA) {
		t.Errorf("history of the spec change: %v", h)
	}
	// The quantities carry CloudCIX's names (cloudcix-facts §5.13).
	if h0, h6 := hist.Content[0], hist.Content[6]; h0["cpu_quantity"] != 2.0 || h0["ram_quantity"] != 4.0 || h0["gpu_quantity"] != 0.0 ||
		h6["ram_quantity"] != 8.0 || h0["cpu"] != nil || h0["ram"] != nil {
		t.Errorf("history quantities: %v / %v", h0, h6)
	}
}

// TestComputeVisibility: another member sees none of member A's compute
// objects; a robot sees its region's; hardware is hidden from tenants.
func TestComputeVisibility(t *testing.T) {
	_, f, x := computeSetup(t)
	c := f.c.For(t)
	for _, path := range []string{"/iaas/project/", "/iaas/vm/", "/iaas/virtual_router/", "/iaas/storage/", "/iaas/vm_history/"} {
		if l := c.Do("GET", path, nil, f.r.Token(apitest.OtherMember)).Expect(200).List(); len(l.Content) != 0 {
			t.Errorf("%s: another member sees %v", path, l.IDs())
		}
		if l := c.Do("GET", path, nil, x.robotR).Expect(200).List(); len(l.Content) == 0 {
			t.Errorf("%s: the region's robot sees nothing", path)
		}
		if l := c.Do("GET", path, nil, f.r.Token(apitest.Robot)).Expect(200).List(); len(l.Content) != 0 {
			t.Errorf("%s: another region's robot sees %v", path, l.IDs())
		}
	}
	if l := c.Do("GET", "/iaas/server/", nil, x.robotR).Expect(200).List(); len(l.Content) != 1 {
		t.Errorf("the region's robot sees servers %v", l.IDs())
	}
	c.Do("GET", "/iaas/server/", nil, f.r.Token(apitest.MemberAdmin)).Expect(403)
	// A robot may create hardware in its region only.
	body := map[string]any{"type_id": 2, "storage_type_id": x.st, "cores": 4, "ram": 16, "gb": 500}
	if got := c.Do("POST", "/iaas/server/", body, x.robotR).Expect(201).Content()["region_id"].(float64); got != float64(f.reg) {
		t.Errorf("robot server in region %v", got)
	}
	body["region_id"] = f.r.RobotRegion
	c.Do("POST", "/iaas/server/", body, x.robotR).Expect(403)
}

// TestComputeProjectCreate: the virtual router, pseudo-ASN and private
// allocations come with the project; name rules.
func TestComputeProjectCreate(t *testing.T) {
	_, f, _ := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	name := f.n.Unique("proj")
	p := c.Do("POST", "/iaas/project/", map[string]any{"name": name, "region_id": f.reg}, admin).Expect(201).Content()
	if p["virtual_router_id"].(float64) == 0 || p["grace_period"].(float64) != 168 || p["asn"].(float64) != 1e12+p["id"].(float64) {
		t.Errorf("project: %v", p)
	}
	vr := c.Do("GET", apitest.Path("/iaas/virtual_router/", uint64(p["virtual_router_id"].(float64))), nil, admin).Expect(200).Content()
	if vr["state"].(float64) != 1 || vr["ip_address"] == "" {
		t.Errorf("virtual router: %v", vr)
	}
	for _, a := range p["allocation_ids"].([]any) {
		c.Do("GET", apitest.Path("/iaas/allocation/", uint64(a.(float64))), nil, admin).Expect(200)
	}
	if got := c.Do("POST", "/iaas/project/", map[string]any{"name": name, "region_id": f.reg}, admin).Expect(400).FieldCode("name"); got != "iaas_project_create_107" {
		t.Errorf("duplicate name: %q", got)
	}
	if got := c.Do("POST", "/iaas/project/", map[string]any{"name": "x", "region_id": f.reg}, f.r.Token(apitest.OtherMember)).Expect(400).FieldCode("region_id"); got != "iaas_project_create_104" {
		t.Errorf("not a customer: %q", got)
	}
	if got := c.Do("POST", "/iaas/project/", map[string]any{"name": "x", "region_id": f.reg, "grace_period": -1}, admin).Expect(400).FieldCode("grace_period"); got != "iaas_project_create_105" {
		t.Errorf("negative grace: %q", got)
	}
}

// TestComputeProjectManagerDelete: the manager of an open project cannot be
// deleted (400 membership_user_delete_102 naming the project) until the
// project has another manager.
func TestComputeProjectManagerDelete(t *testing.T) {
	_, f, _ := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	user := create(c, admin, "/membership/user/", map[string]any{"username": f.n.Unique("manager")})
	name := f.n.Unique("managed")
	p := c.Do("POST", "/iaas/project/", map[string]any{"name": name, "region_id": f.reg, "manager_id": user}, admin).Expect(201).Content()
	resp := c.Do("DELETE", apitest.Path("/membership/user/", user), nil, admin).Expect(400)
	if got := resp.ErrorCode(); got != "membership_user_delete_102" {
		t.Fatalf("delete a project manager: %q", got)
	}
	if d := resp.Map()["detail"].(string); !strings.Contains(d, name) {
		t.Errorf("detail does not name the project: %q", d)
	}
	c.Do("GET", apitest.Path("/membership/user/", user), nil, admin).Expect(200)
	c.Do("PATCH", apitest.Path("/iaas/project/", uint64(p["id"].(float64))), map[string]any{"manager_id": 0}, admin).Expect(200)
	c.Do("DELETE", apitest.Path("/membership/user/", user), nil, admin).Expect(204)
}

// TestComputeProjectInputBounds: manager_id 0 on create means no manager
// (it made the caller the manager); a note over 10,000 characters is
// refused on update as on create (an update stored any size); names and
// notes count characters, not bytes.
func TestComputeProjectInputBounds(t *testing.T) {
	_, f, _ := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	p := c.Do("POST", "/iaas/project/", map[string]any{"name": f.n.Unique("nomgr"), "region_id": f.reg, "manager_id": 0}, admin).Expect(201).Content()
	if p["manager_id"] != float64(0) {
		t.Errorf("manager_id 0 on create: %v", p["manager_id"])
	}
	path := apitest.Path("/iaas/project/", uint64(p["id"].(float64)))
	for _, method := range []string{"PATCH", "PUT"} {
		body := map[string]any{"name": p["name"], "note": strings.Repeat("n", 10001)}
		if got := c.Do(method, path, body, admin).Expect(400).FieldCode("note"); got != "iaas_project_update_106" {
			t.Errorf("%s with a long note: %q", method, got)
		}
	}
	c.Do("PATCH", path, map[string]any{"note": strings.Repeat("é", 10000)}, admin).Expect(200)
	c.Do("POST", "/iaas/storage_type/", map[string]any{"name": strings.Repeat("存", 17)}, f.root).Expect(201)
}

// TestComputeProjectState: a stable project is deleted (8) as a whole.
func TestComputeProjectState(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("st"), f.reg, x, 1), admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()
	vm := apitest.Path("/iaas/vm/", uint64(cloud["vms"].([]any)[0].(map[string]any)["id"].(float64)))
	vr := apitest.Path("/iaas/virtual_router/", uint64(cloud["virtual_router"].(map[string]any)["id"].(float64)))
	path := apitest.Path("/iaas/project/", id)
	if got := c.Do("PATCH", path, map[string]any{"state": 8}, admin).Expect(400).FieldCode("state"); got != "iaas_project_update_109" {
		t.Errorf("unstable project: %q", got)
	}
	for _, p := range []string{vm, vr} {
		c.Do("PATCH", p, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
		c.Do("PATCH", p, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
	}
	if got := c.Do("PATCH", path, map[string]any{"state": 8, "name": "x"}, admin).Expect(400).ErrorCode(); got != "iaas_project_update_110" {
		t.Errorf("state with fields: %q", got)
	}
	p := c.Do("PATCH", path, map[string]any{"state": 8}, admin).Expect(200).Content()
	if p["shut_down"] != true || p["min_state"].(float64) != 8 {
		t.Errorf("project after delete: %v", p)
	}
	if s := c.Do("GET", vm, nil, admin).Expect(200).Content()["state"].(float64); s != 8 {
		t.Errorf("vm state %v after project delete", s)
	}
}

func capacityR(f *fixture) request {
	computeOf(f)
	return request{path: fmt.Sprintf("/iaas/capacity/%d/", f.reg)}
}
func metricsR(f *fixture) request {
	computeOf(f)
	return request{path: fmt.Sprintf("/iaas/metrics/%d/?force=true", f.reg)}
}

// TestComputeCapacity: the Pareto front of the servers' remaining
// capacity, per server type and storage type, storage capped at 2000 GB.
func TestComputeCapacity(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	c := f.c.For(t)
	reg := c.CreateRegion(f.root, n.Unique("cap"), f.r.MemberA)
	x := newComputeRegion(c, f.root, reg) // server: 2048 GB RAM, 100000 GB disk, 64 cores
	srv := func(ram, gb, cores int) {
		create(c, f.root, "/iaas/server/", map[string]any{"region_id": reg, "type_id": 2, "storage_type_id": x.st, "cores": cores, "ram": ram, "gb": gb})
	}
	srv(108, 300, 2)                                                                                                                               // [85, 154, 13]: dominated by the first server
	srv(10000, 200, 1)                                                                                                                             // [8494, 77, 7]: more RAM, less of the rest: on the front
	create(c, f.root, "/iaas/server/", map[string]any{"region_id": reg, "type_id": 3, "storage_type_id": x.st, "cores": 1, "ram": 100, "gb": 200}) // phantom: never listed
	got := c.Do("GET", fmt.Sprintf("/iaas/capacity/%d/", reg), nil, f.r.Token(apitest.MemberUser)).Expect(200).Content()
	entries := got["KVM"].(map[string]any)
	var list []any
	for _, v := range entries {
		list = v.([]any)
	}
	if len(got) != 1 || len(entries) != 1 || len(list) != 2 {
		t.Fatalf("capacity: %v", got)
	}
	first := list[0].(map[string]any)
	if first["ram"].(float64) != 1734 || first["storage"].(float64) != 2000 || first["cpu"].(float64) != 395 {
		t.Errorf("first server: %v", first)
	}
	if second := list[1].(map[string]any); second["ram"].(float64) != 8494 || second["storage"].(float64) != 77 {
		t.Errorf("second server: %v", second)
	}
	c.Do("GET", fmt.Sprintf("/iaas/capacity/%d/", reg), nil, f.r.Token(apitest.OtherMember)).Expect(400)
}

// TestComputeMetrics204: metrics answer 204 when nothing changed in the
// region since the last answer, unless force=true.
func TestComputeMetrics204(t *testing.T) {
	_, f, x := computeSetup(t)
	c := f.c.For(t)
	path := fmt.Sprintf("/iaas/metrics/%d/", f.reg)
	m := c.Do("GET", path, nil, x.robotR).Expect(200).Content()
	if m["servers"].(float64) != 1 || m["projects"].(float64) != 1 || len(m["vms"].([]any)) != 1 {
		t.Errorf("metrics: %v", m)
	}
	c.Do("GET", path, nil, x.robotR).Expect(204)
	c.Do("GET", path+"?force=true", nil, x.robotR).Expect(200)
	c.Do("GET", path, nil, x.robotR).Expect(204)
	c.Do("PATCH", apitest.Path("/iaas/vm/", x.vm), map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	c.Do("GET", path, nil, x.robotR).Expect(200)
	c.Do("GET", path, nil, x.robotR).Expect(204)
	// Another region's robot: 404.
	c.Do("GET", path, nil, f.r.Token(apitest.Robot)).Expect(404)
}

// --- VPNs ---

var (
	vpnMu  sync.Mutex
	vpnFix = map[*fixture]uint64{}
)

const testPSK = "s3cr3tKEYnobodySEES"

// vpnBody is a VPN of VR (project P) to the remote network 198.18.<n>.0/24.
func vpnBody(f *fixture) map[string]any {
	x := computeOf(f)
	subnets := f.c.Do("GET", apitest.Path("/iaas/cloud/", x.project), nil, f.root).Expect(200).Content()["subnets"].([]any)
	local := subnets[0].(map[string]any)["id"]
	n := computeSeq.Add(1)
	return map[string]any{"virtual_router_id": x.vr, "ike_gateway_value": "203.0.113.7", "ike_pre_shared_key": testPSK,
		"routes": []any{map[string]any{"local_subnet_id": local, "remote_subnet": fmt.Sprintf("198.18.%d.0/24", n%250)}}}
}

func vpnOf(f *fixture) uint64 {
	vpnMu.Lock()
	defer vpnMu.Unlock()
	if id, ok := vpnFix[f]; ok {
		return id
	}
	id := create(f.c, f.r.Token(apitest.MemberAdmin), "/iaas/vpn/", vpnBody(f))
	vpnFix[f] = id
	return id
}

func vpnV(f *fixture) request { return request{path: apitest.Path("/iaas/vpn/", vpnOf(f))} }
func newVPNBody(f *fixture) request {
	return request{path: "/iaas/vpn/", body: vpnBody(f)}
}
func newVPN(f *fixture) request {
	return request{path: apitest.Path("/iaas/vpn/", create(f.c, f.root, "/iaas/vpn/", vpnBody(f)))}
}
func putVPNV(f *fixture) request {
	r := vpnV(f)
	b := vpnBody(f)
	delete(b, "virtual_router_id")
	r.body = b
	return r
}
func patchVPNV(f *fixture) request {
	r := vpnV(f)
	r.body = map[string]any{"description": f.n.Unique("tunnel"), "ike_dh_groups": "group20,group19,group20"}
	return r
}

// TestComputeVPN: defaults, sets, stif numbers, the router update, and a
// pre-shared key that never comes back.
func TestComputeVPN(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vrBefore := c.Do("GET", apitest.Path("/iaas/virtual_router/", x.vr), nil, admin).Expect(200).Content()["generation"].(float64)
	resp := c.Do("POST", "/iaas/vpn/", vpnBody(f), admin).Expect(201)
	v := resp.Content()
	if v["stif_number"].(float64) != 10000 || v["ike_version"] != "v2-only" || v["ike_lifetime"].(float64) != 28800 ||
		v["ipsec_lifetime"].(float64) != 3600 || v["ipsec_pfs_groups"] != "group20" || v["vpn_type"] != "site_to_site" {
		t.Errorf("defaults: %v", v)
	}
	id := uint64(v["id"].(float64))
	second := c.Do("POST", "/iaas/vpn/", vpnBody(f), admin).Expect(201).Content()
	if second["stif_number"].(float64) != 10001 {
		t.Errorf("second stif %v", second["stif_number"])
	}
	if g := c.Do("GET", apitest.Path("/iaas/virtual_router/", x.vr), nil, admin).Expect(200).Content()["generation"].(float64); g != vrBefore+2 {
		t.Errorf("router generation %v, want %v", g, vrBefore+2)
	}
	p := c.Do("PATCH", apitest.Path("/iaas/vpn/", id), map[string]any{"ike_encryption": "aes-256-cbc, aes-128-cbc,aes-256-cbc"}, admin).Expect(200).Content()
	if p["ike_encryption"] != "aes-128-cbc,aes-256-cbc" {
		t.Errorf("set: %v", p["ike_encryption"])
	}
	bodies := []string{string(resp.Body), string(c.Do("GET", "/iaas/vpn/", nil, admin).Expect(200).Body),
		string(c.Do("GET", apitest.Path("/iaas/vpn/", id), nil, x.robotR).Expect(200).Body),
		string(c.Do("GET", "/iaas/vpn_history/", nil, admin).Expect(200).Body)}
	for _, b := range bodies {
		if strings.Contains(b, testPSK) || strings.Contains(b, "pre_shared_key") {
			t.Fatalf("a response carries the pre-shared key: %s", b)
		}
	}
	vrAddr := c.Do("GET", apitest.Path("/iaas/virtual_router/", x.vr), nil, admin).Expect(200).Content()["ip_address"].(string)
	bad := func(edit func(b map[string]any)) *apitest.Response {
		b := vpnBody(f)
		edit(b)
		return c.Do("POST", "/iaas/vpn/", b, admin).Expect(400)
	}
	for _, tc := range []struct {
		name  string
		edit  func(b map[string]any)
		field string
		code  string
	}{
		{"forbidden psk character", func(b map[string]any) { b["ike_pre_shared_key"] = "abc=" + testPSK }, "ike_pre_shared_key", "iaas_vpn_create_117"},
		{"psk too long", func(b map[string]any) { b["ike_pre_shared_key"] = strings.Repeat("k", 256) }, "ike_pre_shared_key", "iaas_vpn_create_116"},
		{"no psk", func(b map[string]any) { delete(b, "ike_pre_shared_key") }, "ike_pre_shared_key", "iaas_vpn_create_115"},
		{"dynamic", func(b map[string]any) { b["vpn_type"] = "dynamic_secure_connect" }, "vpn_type", "iaas_vpn_create_104"},
		{"unknown algorithm", func(b map[string]any) { b["ike_authentication"] = "md5" }, "ike_authentication", "iaas_vpn_create_108"},
		{"lifetime", func(b map[string]any) { b["ipsec_lifetime"] = 100 }, "ipsec_lifetime", "iaas_vpn_create_122"},
		{"private gateway", func(b map[string]any) { b["ike_gateway_value"] = "10.1.1.1" }, "ike_gateway_value", "iaas_vpn_create_113"},
		{"no routes", func(b map[string]any) { b["routes"] = []any{} }, "routes", "iaas_vpn_create_123"},
		{"too many routes", func(b map[string]any) {
			r := b["routes"].([]any)[0].(map[string]any)
			routes := []any{}
			for i := range wire.MaxVPNRoutes + 1 {
				routes = append(routes, map[string]any{"local_subnet_id": r["local_subnet_id"], "remote_subnet": fmt.Sprintf("198.18.%d.0/24", i)})
			}
			b["routes"] = routes
		}, "routes", "iaas_vpn_create_124"},
		{"remote overlaps the project", func(b map[string]any) {
			b["routes"].([]any)[0].(map[string]any)["remote_subnet"] = "10.0.0.0/16"
		}, "routes[0].remote_subnet", "iaas_vpn_create_126"},
		{"remote holds the peer's gateway", func(b map[string]any) {
			b["routes"].([]any)[0].(map[string]any)["remote_subnet"] = "203.0.113.0/24"
		}, "routes[0].remote_subnet", "iaas_vpn_create_130"},
		{"remote holds the router's address", func(b map[string]any) {
			b["routes"].([]any)[0].(map[string]any)["remote_subnet"] = vrAddr + "/32"
		}, "routes[0].remote_subnet", "iaas_vpn_create_130"},
	} {
		resp := bad(tc.edit)
		if got := resp.FieldCode(tc.field); got != tc.code {
			t.Errorf("%s: errors[%s] = %q, want %q\n%s", tc.name, tc.field, got, tc.code, resp)
		}
		if strings.Contains(string(resp.Body), testPSK) {
			t.Errorf("%s: the error echoes the key", tc.name)
		}
	}
	c.Do("DELETE", apitest.Path("/iaas/vpn/", id), nil, admin).Expect(204)
	hist := c.Do("GET", fmt.Sprintf("/iaas/vpn_history/?search[vpn_id]=%d&order=id", id), nil, admin).Expect(200).List()
	if got := hist.Strings("action"); len(got) != 3 || got[0] != "create" || got[2] != "delete" {
		t.Errorf("history %v", got)
	}
}

// --- snapshots and backups ---

type snapFixture struct{ vm, snapshot, backup uint64 }

var (
	snapMu  sync.Mutex
	snapFix = map[*fixture]*snapFixture{}
)

func snapOf(f *fixture) *snapFixture {
	snapMu.Lock()
	defer snapMu.Unlock()
	if x, ok := snapFix[f]; ok {
		return x
	}
	x := &snapFixture{vm: runningVM(f)}
	admin := f.r.Token(apitest.MemberAdmin)
	x.snapshot = create(f.c, admin, "/iaas/snapshot/", map[string]any{"vm_id": x.vm, "name": "S"})
	x.backup = create(f.c, admin, "/iaas/backup/", map[string]any{"vm_id": x.vm, "name": "B"})
	snapFix[f] = x
	return x
}

func snapshotS(f *fixture) request {
	return request{path: apitest.Path("/iaas/snapshot/", snapOf(f).snapshot), body: map[string]any{"state": 1}}
}
func backupB(f *fixture) request {
	return request{path: apitest.Path("/iaas/backup/", snapOf(f).backup), body: map[string]any{"state": 1}}
}
func snapshotTreeS(f *fixture) request {
	return request{path: fmt.Sprintf("/iaas/snapshot_tree/%d/", snapOf(f).vm)}
}
func newSnapshotBody(f *fixture) request {
	return request{path: "/iaas/snapshot/", body: map[string]any{"vm_id": runningVM(f), "name": f.n.Unique("snap")}}
}
func newBackupBody(f *fixture) request {
	return request{path: "/iaas/backup/", body: map[string]any{"vm_id": runningVM(f), "name": f.n.Unique("backup"), "repository": 2}}
}

// TestComputeSnapshotTree: parents, the active snapshot, revert, close with
// re-parenting, the tree view, and the VM guards.
func TestComputeSnapshotTree(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vm := runningVM(f)
	snap := func(name string) uint64 {
		id := create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vm, "name": name})
		p := apitest.Path("/iaas/snapshot/", id)
		c.Do("PATCH", p, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
		c.Do("PATCH", p, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
		return id
	}
	get := func(id uint64) map[string]any {
		return c.Do("GET", apitest.Path("/iaas/snapshot/", id), nil, admin).Expect(200).Content()
	}
	a := snap("a")
	// While a snapshot is being built, the VM's state cannot change (110).
	busy := create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vm, "name": "busy"})
	if got := c.Do("PATCH", apitest.Path("/iaas/vm/", vm), map[string]any{"state": 5}, admin).Expect(400).FieldCode("state"); got != "iaas_vm_update_110" {
		t.Errorf("VM change with a busy snapshot: %q", got)
	}
	if got := c.Do("POST", "/iaas/snapshot/", map[string]any{"vm_id": vm, "name": "x"}, admin).Expect(400).FieldCode("vm_id"); got != "iaas_snapshot_create_107" {
		t.Errorf("snapshot under a busy active snapshot: %q", got)
	}
	for _, s := range [][2]int{{2, 1}, {4, 2}} {
		c.Do("PATCH", apitest.Path("/iaas/snapshot/", busy), map[string]any{"state": s[0], "expected_state": s[1]}, x.robotR).Expect(200)
	}
	if g := get(busy); g["parent_id"].(float64) != float64(a) || g["active"] != true || get(a)["active"] != false {
		t.Fatalf("parent and active: %v / %v", g, get(a))
	}
	// Revert to a: it becomes active again; c is then taken under a.
	c.Do("PATCH", apitest.Path("/iaas/snapshot/", a), map[string]any{"state": 10}, admin).Expect(200)
	if get(a)["active"] != true || get(busy)["active"] != false {
		t.Fatal("revert did not move the active snapshot")
	}
	for _, s := range [][2]int{{11, 10}, {4, 11}} {
		c.Do("PATCH", apitest.Path("/iaas/snapshot/", a), map[string]any{"state": s[0], "expected_state": s[1]}, x.robotR).Expect(200)
	}
	cc := snap("c")
	tree := c.Do("GET", fmt.Sprintf("/iaas/snapshot_tree/%d/", vm), nil, admin).Expect(200).Content()["branches"].([]any)
	if len(tree) != 1 || len(tree[0].(map[string]any)["children"].([]any)) != 2 {
		t.Fatalf("tree: %v", tree)
	}
	// Close a without its subtree: busy and c become roots; c stays active.
	if got := c.Do("PATCH", apitest.Path("/iaas/vm/", vm), map[string]any{"state": 8}, admin).Expect(400).FieldCode("state"); got != "iaas_vm_update_109" {
		t.Errorf("VM scrub with snapshots: %q", got)
	}
	c.Do("PATCH", apitest.Path("/iaas/snapshot/", a), map[string]any{"state": 8}, admin).Expect(200)
	for _, s := range [][2]int{{17, 8}, {99, 17}} {
		c.Do("PATCH", apitest.Path("/iaas/snapshot/", a), map[string]any{"state": s[0], "expected_state": s[1]}, x.robotR).Expect(200)
	}
	tree = c.Do("GET", fmt.Sprintf("/iaas/snapshot_tree/%d/", vm), nil, admin).Expect(200).Content()["branches"].([]any)
	if len(tree) != 2 || get(cc)["active"] != true || get(cc)["parent_id"].(float64) != 0 {
		t.Fatalf("after closing a: tree %v, c %v", tree, get(cc))
	}
	hist := c.Do("GET", fmt.Sprintf("/iaas/snapshot_history/?search[object_id]=%d", a), nil, admin).Expect(200).List()
	if len(hist.Content) != 9 { // 1 2 4 10 11 4 8 17 99
		t.Errorf("history of a: %d rows", len(hist.Content))
	}
	// A backup: time_valid when built.
	b := create(c, admin, "/iaas/backup/", map[string]any{"vm_id": vm, "name": "nightly"})
	bp := apitest.Path("/iaas/backup/", b)
	c.Do("PATCH", bp, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	if bk := c.Do("PATCH", bp, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200).Content(); bk["time_valid"] == "" || bk["repository"].(float64) != 1 {
		t.Errorf("backup: %v", bk)
	}
	if got := c.Do("PATCH", bp, map[string]any{"state": 5}, admin).Expect(400).FieldCode("state"); got != "iaas_backup_update_107" {
		t.Errorf("backup quiesce: %q", got)
	}
	// Restore (10) while the VM has a snapshot taken after the backup: 400,
	// nothing changed; the snapshots from before it do not stand in the way.
	later := snap("later")
	if got := c.Do("PATCH", bp, map[string]any{"state": 10}, admin).Expect(400).FieldCode("state"); got != "iaas_backup_update_116" {
		t.Errorf("restore with a newer snapshot: %q", got)
	}
	if bk := c.Do("GET", bp, nil, admin).Expect(200).Content(); bk["state"].(float64) != 4 || bk["generation"].(float64) != 1 {
		t.Errorf("a refused restore changed the backup: %v", bk)
	}
	c.Do("PATCH", apitest.Path("/iaas/snapshot/", later), map[string]any{"state": 8}, admin).Expect(200)
	for _, s := range [][2]int{{17, 8}, {99, 17}} {
		c.Do("PATCH", apitest.Path("/iaas/snapshot/", later), map[string]any{"state": s[0], "expected_state": s[1]}, x.robotR).Expect(200)
	}
	if bk := c.Do("PATCH", bp, map[string]any{"state": 10}, admin).Expect(200).Content(); bk["state"].(float64) != 10 || bk["generation"].(float64) != 2 {
		t.Errorf("restore: %v", bk)
	}
}

// TestComputeFirewallRules: every rule check answers with its code, and a
// cloud update with bad rules changes nothing.
func TestComputeFirewallRules(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	path := apitest.Path("/iaas/cloud/", x.project)
	before := c.Do("GET", path, nil, admin).Expect(200).Content()["virtual_router"].(map[string]any)
	rule := func(src, dst, proto, port string, allow, pci bool) map[string]any {
		r := map[string]any{"source": src, "destination": dst, "protocol": proto, "allow": allow, "pci_logging": pci}
		if port != "" {
			r["port"] = port
		}
		return r
	}
	for _, tc := range []struct {
		name string
		rule map[string]any
		code string
	}{
		{"both sides outside the project", rule("*", "203.0.113.0/24", "any", "", true, false), "source:iaas_cloud_update_123"},
		{"both sides in the project", rule("10.0.0.0/24", "10.0.1.5", "any", "", true, false), "source:iaas_cloud_update_123"},
		{"private other side", rule("192.168.9.0/24", "10.0.0.0/24", "any", "", true, false), "source:iaas_cloud_update_124"},
		{"mixed versions", rule("2001:db8::/32", "10.0.0.0/24", "any", "", true, false), "destination:iaas_cloud_update_125"},
		{"bad source", rule("nonsense", "10.0.0.0/24", "any", "", true, false), "source:iaas_cloud_update_121"},
		{"bad protocol", rule("*", "10.0.0.0/24", "gre", "", true, false), "protocol:iaas_cloud_update_126"},
		{"tcp without port", rule("*", "10.0.0.0/24", "tcp", "", true, false), "port:iaas_cloud_update_127"},
		{"port out of range", rule("*", "10.0.0.0/24", "udp", "0-70000", true, false), "port:iaas_cloud_update_127"},
		{"port on icmp", rule("*", "10.0.0.0/24", "icmp", "22", true, false), "port:iaas_cloud_update_127"},
		{"pci logging on a block rule", rule("10.0.0.0/24", "*", "any", "", false, true), "pci_logging:iaas_cloud_update_128"},
	} {
		resp := c.Do("PATCH", path, map[string]any{"firewall_rules": []any{tc.rule}}, admin).Expect(400)
		field, code, _ := strings.Cut(tc.code, ":")
		if got := resp.FieldCode("firewall_rules[0]." + field); got != code {
			t.Errorf("%s: errors[firewall_rules[0].%s] = %q, want %q\n%s", tc.name, field, got, code, resp)
		}
	}
	after := c.Do("GET", path, nil, admin).Expect(200).Content()["virtual_router"].(map[string]any)
	if after["generation"] != before["generation"] || len(after["firewall_rules"].([]any)) != len(before["firewall_rules"].([]any)) {
		t.Errorf("bad rules changed the router: %v → %v", before, after)
	}
	good := []any{rule("*", "10.0.0.0/24", "tcp", "80-443", true, true), rule("10.0.1.0/24", "*", "any", "", false, false)}
	vr := c.Do("PATCH", path, map[string]any{"firewall_rules": good}, admin).Expect(200).Content()["virtual_router"].(map[string]any)
	if len(vr["firewall_rules"].([]any)) != 2 || vr["generation"].(float64) != before["generation"].(float64)+1 {
		t.Errorf("rules replaced: %v", vr)
	}
}

// TestComputeIPAMGuards: the IPAM services cannot pull a cloud project's
// addresses or subnets from under it, and a VM's address read can be sent
// back (its NAT public_ip_id, the region's, was "doesn't exist", 105).
func TestComputeIPAMGuards(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", x.project), nil, admin).Expect(200).Content()
	sub := uint64(cloud["subnets"].([]any)[0].(map[string]any)["id"].(float64))
	ip := uint64(cloud["vms"].([]any)[0].(map[string]any)["ip_addresses"].([]any)[0].(map[string]any)["id"].(float64))
	if got := c.Do("DELETE", apitest.Path("/iaas/ip_address/", ip), nil, admin).Expect(400).ErrorCode(); got != "iaas_ip_address_delete_103" {
		t.Errorf("delete a VM's address: %q", got)
	}
	vrIP := uint64(cloud["virtual_router"].(map[string]any)["ip_address_id"].(float64))
	if got := c.Do("DELETE", apitest.Path("/iaas/ip_address/", vrIP), nil, f.root).Expect(400).ErrorCode(); got != "iaas_ip_address_delete_103" {
		t.Errorf("delete a router's address: %q", got)
	}
	if got := c.Do("DELETE", apitest.Path("/iaas/subnet/", sub), nil, admin).Expect(400).ErrorCode(); got != "iaas_subnet_delete_103" {
		t.Errorf("delete a project subnet: %q", got)
	}
	if got := c.Do("PATCH", apitest.Path("/iaas/subnet/", sub), map[string]any{"vlan": 7}, admin).Expect(400).ErrorCode(); got != "iaas_subnet_update_110" {
		t.Errorf("change a project subnet's VLAN: %q", got)
	}
	c.Do("PATCH", apitest.Path("/iaas/subnet/", sub), map[string]any{"name": "renamed"}, admin).Expect(200)
	// A PUT names every managed field as it is; one left out would be
	// cleared (router_id was, silently).
	cur := c.Do("GET", apitest.Path("/iaas/subnet/", sub), nil, admin).Expect(200).Content()
	put := map[string]any{"address_range": cur["address_range"], "name": "put", "vlan": cur["vlan"], "vxlan": cur["vxlan"],
		"virtual_router_id": cur["virtual_router_id"], "router_id": cur["router_id"]}
	if cur["router_id"] == nil || cur["router_id"] == float64(0) {
		t.Fatalf("a project subnet without router_id: %v", cur)
	}
	c.Do("PUT", apitest.Path("/iaas/subnet/", sub), put, admin).Expect(200)
	delete(put, "router_id")
	if got := c.Do("PUT", apitest.Path("/iaas/subnet/", sub), put, admin).Expect(400).ErrorCode(); got != "iaas_subnet_update_110" {
		t.Errorf("PUT of a project subnet without router_id: %q", got)
	}
	if after := c.Do("GET", apitest.Path("/iaas/subnet/", sub), nil, admin).Expect(200).Content(); after["router_id"] != cur["router_id"] {
		t.Errorf("router_id %v after the PUT, was %v", after["router_id"], cur["router_id"])
	}

	// A member cannot put a subnet of its own on a segment of its choice:
	// virtual_router_id is refused, and a subnet it makes in the project's
	// allocation, even with the VLAN and VXLAN of the project's subnet, is
	// IPAM only, never part of the router's network.
	cs := c.Do("GET", apitest.Path("/iaas/subnet/", sub), nil, admin).Expect(200).Content()
	alloc := cs["allocation_id"]
	body := map[string]any{"allocation_id": alloc, "address_range": "10.254.254.1/24", "vlan": cs["vlan"], "vxlan": cs["vxlan"],
		"virtual_router_id": cloud["virtual_router"].(map[string]any)["id"]}
	if got := c.Do("POST", "/iaas/subnet/", body, admin).Expect(400).FieldCode("virtual_router_id"); got != "iaas_subnet_create_122" {
		t.Errorf("create a subnet with virtual_router_id: %q", got)
	}
	delete(body, "virtual_router_id")
	own := c.Do("POST", "/iaas/subnet/", body, admin).Expect(201).Content()
	if got := c.Do("PATCH", apitest.Path("/iaas/subnet/", uint64(own["id"].(float64))), map[string]any{"virtual_router_id": cloud["virtual_router"].(map[string]any)["id"]}, admin).Expect(400).FieldCode("virtual_router_id"); got != "iaas_subnet_update_122" {
		t.Errorf("give a subnet a virtual_router_id: %q", got)
	}
	after := c.Do("GET", apitest.Path("/iaas/cloud/", x.project), nil, admin).Expect(200).Content()
	if n, m := len(after["subnets"].([]any)), len(cloud["subnets"].([]any)); n != m {
		t.Errorf("the project's network has %d subnets after a member's own subnet in its allocation, want %d", n, m)
	}
	if work := c.Do("GET", fmt.Sprintf("/v1/agent/work?router_id=%d&server_id=%d", x.rt, x.srv), nil, x.robotR).Expect(200).String(); !strings.Contains(work, "10.0.0.") || strings.Contains(work, "10.254.254.") {
		t.Errorf("the agents' work holds the member's own subnet, or not the project's: %s", work)
	}

	// Addresses: a VM's are made with the VM; its MAC address and public
	// IP change only through the compute services.
	if got := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": own["id"], "vm_id": x.vm}, admin).Expect(400).FieldCode("vm_id"); got != "iaas_ip_address_create_111" {
		t.Errorf("create an address with vm_id: %q", got)
	}
	free := create(c, admin, "/iaas/ip_address/", map[string]any{"subnet_id": own["id"]})
	if got := c.Do("PATCH", apitest.Path("/iaas/ip_address/", free), map[string]any{"vm_id": x.vm}, admin).Expect(400).FieldCode("vm_id"); got != "iaas_ip_address_update_111" {
		t.Errorf("attach an address to a VM: %q", got)
	}
	ipPath := apitest.Path("/iaas/ip_address/", ip)
	for _, b := range []map[string]any{{"mac_address": "52:54:00:00:00:01"}, {"public_ip_id": 0}} {
		if got := c.Do("PATCH", ipPath, b, admin).Expect(400).ErrorCode(); got != "iaas_ip_address_update_111" {
			t.Errorf("PATCH %v of a VM's address: %q", b, got)
		}
	}
	if got := c.Do("PUT", ipPath, map[string]any{"name": "x"}, admin).Expect(400).FieldCode("vm_id"); got != "iaas_ip_address_update_111" {
		t.Errorf("PUT of a VM's address without its vm_id: %q", got)
	}
	c.Do("PATCH", ipPath, map[string]any{"name": "web"}, admin).Expect(200)
	// What a read shows may be sent back: the public IP (a NAT address,
	// the region's) unchanged is no change, not "doesn't exist" (105).
	got := c.Do("GET", ipPath, nil, admin).Expect(200).Content()
	if got["public_ip_id"].(float64) == 0 {
		t.Fatalf("the fixture's VM address has no public IP: %v", got)
	}
	back := map[string]any{"name": "web 2", "vm_id": got["vm_id"], "mac_address": got["mac_address"], "public_ip_id": got["public_ip_id"]}
	if put := c.Do("PUT", ipPath, back, admin).Expect(200).Content(); put["name"] != "web 2" || put["public_ip_id"] != got["public_ip_id"] {
		t.Errorf("PUT of what was read: %v", put)
	}
	c.Do("PATCH", ipPath, map[string]any{"public_ip_id": got["public_ip_id"]}, admin).Expect(200)
}

// TestComputeCloudUpdateVM: an existing VM of a cloud grows through cloud
// update; other fields of it are refused.
func TestComputeCloudUpdateVM(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	path := apitest.Path("/iaas/cloud/", x.project)
	if got := c.Do("PATCH", path, map[string]any{"vms": []any{map[string]any{"id": x.vm, "name": "x"}}}, admin).Expect(400).FieldCode("vms[0].id"); got != "iaas_cloud_update_119" {
		t.Errorf("name of an existing VM: %q", got)
	}
	if got := c.Do("PATCH", path, map[string]any{"vms": []any{map[string]any{"id": x.vm, "cpu": 4}}}, admin).Expect(400).FieldCode("vms[0]"); got != "iaas_vm_update_118" {
		t.Errorf("grow a REQUESTED VM: %q", got)
	}
	vm := apitest.Path("/iaas/vm/", x.vm)
	c.Do("PATCH", vm, map[string]any{"state": "2", "expected_state": 1}, x.robotR).Expect(200)
	c.Do("PATCH", vm, map[string]any{"state": 4, "expected_state": "2"}, x.robotR).Expect(200)
	after := c.Do("PATCH", path, map[string]any{"vms": []any{map[string]any{"id": x.vm, "cpu": 4, "storages": []any{map[string]any{"id": x.disk, "gb": 40}}}}}, admin).Expect(200).Content()
	v := after["vms"].([]any)[0].(map[string]any)
	if v["cpu"].(float64) != 4 || v["state"].(float64) != 10 || v["storages"].([]any)[0].(map[string]any)["gb"].(float64) != 40 {
		t.Errorf("after growth: %v", v)
	}
}

// TestComputeVMErrorsTogether: shape errors and the image / storage type
// checks are reported in one answer, one error per field.
func TestComputeVMErrorsTogether(t *testing.T) {
	_, f, x := computeSetup(t)
	b := vmBody(f.n.Unique("many"), x, 90, false)
	b["project_id"], b["image_id"], b["storage_type_id"], b["cpu"], b["dns"] = x.project, 999999, 999999, 0, "x"
	resp := f.c.For(t).Do("POST", "/iaas/vm/", b, f.r.Token(apitest.MemberAdmin)).Expect(400)
	for field, code := range map[string]string{"image_id": "iaas_vm_create_107", "storage_type_id": "iaas_vm_create_111",
		"cpu": "iaas_vm_create_119", "dns": "iaas_vm_create_125"} {
		if got := resp.FieldCode(field); got != code {
			t.Errorf("errors[%s] = %q, want %q", field, got, code)
		}
	}
}

// TestRegionDeleteKeepsRegionImages: a region that offers images cannot be
// deleted (400 membership_region_delete_103, nothing changed); once they
// are withdrawn it can.
func TestRegionDeleteKeepsRegionImages(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	reg := c.CreateRegion(root, n.Unique("region"))
	img := create(c, root, "/iaas/image/", map[string]any{"display_name": "Alma", "server_type_id": 2})
	ri := create(c, root, "/iaas/region_image/", map[string]any{"region_id": reg, "image_id": img})
	region := apitest.Path("/membership/region/", reg)
	before := fmt.Sprint(c.Do("GET", region, nil, root).Expect(200).Content())
	r := c.Do("DELETE", region, nil, root).Expect(400)
	if got := r.ErrorCode(); got != "membership_region_delete_103" || !strings.Contains(r.String(), "region images") {
		t.Errorf("region delete with a region image: %s", r)
	}
	if after := fmt.Sprint(c.Do("GET", region, nil, root).Expect(200).Content()); after != before {
		t.Errorf("refused delete changed the region:\n%s\n%s", before, after)
	}
	c.Do("DELETE", apitest.Path("/iaas/region_image/", ri), nil, root).Expect(204)
	c.Do("DELETE", region, nil, root).Expect(204)
}

// TestComputePseudoASNFixed: a project's pseudo-ASN keeps its number and
// member (iaas_asn_update_106): renumbered or moved, the project's ASN
// would no longer be it.
func TestComputePseudoASNFixed(t *testing.T) {
	_, f, x := computeSetup(t)
	c := f.c.For(t)
	p := c.Do("GET", apitest.Path("/iaas/project/", x.project), nil, f.root).Expect(200).Content()
	path := apitest.Path("/iaas/asn/", uint64(p["asn_id"].(float64)))
	if got := c.Do("PATCH", path, map[string]any{"number": 65123}, f.root).Expect(400).FieldCode("number"); got != "iaas_asn_update_106" {
		t.Errorf("renumber a pseudo-ASN: %q", got)
	}
	c.Do("PATCH", path, map[string]any{"number": p["asn"]}, f.root).Expect(200)
}

// TestComputeFloatingSubnetDelete: a router's floating subnet, even empty,
// is not deleted (iaas_subnet_delete_104); the router stays updatable.
func TestComputeFloatingSubnetDelete(t *testing.T) {
	_, f, x := computeSetup(t)
	c := f.c.For(t)
	asn := create(c, f.root, "/iaas/asn/", map[string]any{"member_id": 1, "number": 4_200_000_001})
	alloc := create(c, f.root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "198.18.0.0/24", "type": "public"})
	fs := create(c, f.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "198.18.0.1/25"})
	rt := apitest.Path("/iaas/router/", x.rt)
	c.Do("PATCH", rt, map[string]any{"floating_subnet_ids": []uint64{x.fs, fs}}, f.root).Expect(200)
	if got := c.Do("DELETE", apitest.Path("/iaas/subnet/", fs), nil, f.root).Expect(400).ErrorCode(); got != "iaas_subnet_delete_104" {
		t.Errorf("delete a floating subnet: %q", got)
	}
	c.Do("PATCH", rt, map[string]any{"model": "after"}, f.root).Expect(200)
	c.Do("PATCH", rt, map[string]any{"floating_subnet_ids": []uint64{x.fs}}, f.root).Expect(200)
	c.Do("DELETE", apitest.Path("/iaas/subnet/", fs), nil, f.root).Expect(204)
}

// TestComputeProjectSubnetNotAParent: a project's subnet without VMs yet
// cannot be the parent of a subnet (iaas_subnet_create_125); a VM made on
// it later still gets its address.
func TestComputeProjectSubnetNotAParent(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", x.project), nil, admin).Expect(200).Content()
	var empty map[string]any
	for _, s := range cloud["subnets"].([]any) {
		if s := s.(map[string]any); s["address_range"] == "10.0.1.1/24" {
			empty = c.Do("GET", apitest.Path("/iaas/subnet/", uint64(s["id"].(float64))), nil, admin).Expect(200).Content()
		}
	}
	if empty == nil || empty["ips_in_use"] != float64(0) {
		t.Fatalf("no empty project subnet: %v", cloud["subnets"])
	}
	body := map[string]any{"allocation_id": empty["allocation_id"], "parent_id": empty["id"], "address_range": "10.0.1.1/25"}
	if got := c.Do("POST", "/iaas/subnet/", body, admin).Expect(400).FieldCode("parent_id"); got != "iaas_subnet_create_125" {
		t.Errorf("a subnet under a project's subnet: %q", got)
	}
	vm := vmBody(f.n.Unique("vm"), x, 0, false)
	vm["project_id"], vm["gateway_subnet"] = x.project, "10.0.1.1/24"
	vm["ip_addresses"] = []any{map[string]any{"address": "10.0.1.20"}}
	c.Do("POST", "/iaas/vm/", vm, admin).Expect(201)
}
