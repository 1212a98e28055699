package server_test

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/internal/apitest"
)

// The rows of CloudCIX's vm/<vm_id>/storage/ routes in the auth matrix: as
// storage, and a VM the caller does not see is 404 (other, and the matrix
// robot bound to another region).
func init() {
	matrix = append(matrix,
		matrixRow{"GET", "/iaas/vm/{vm_id}/storage/", "storage", auth.List, "V", w(200, 200, 200, 200, 404, 404, 401), vmStorages},
		matrixRow{"POST", "/iaas/vm/{vm_id}/storage/", "storage", auth.Create, "a new running VM of P", w(201, 403, 201, 403, 404, 403, 401), newVMStorageBody},
		matrixRow{"GET", "/iaas/vm/{vm_id}/storage/{id}/", "storage", auth.Read, "D of V", w(200, 200, 200, 200, 404, 404, 401), vmStorageD},
		matrixRow{"HEAD", "/iaas/vm/{vm_id}/storage/{id}/", "storage", auth.Read, "D of V", w(200, 200, 200, 200, 404, 404, 401), vmStorageD},
	)
}

func vmStoragePath(vm uint64) string { return fmt.Sprintf("/iaas/vm/%d/storage/", vm) }

func vmStorages(f *fixture) request { return request{path: vmStoragePath(computeOf(f).vm)} }

func newVMStorageBody(f *fixture) request {
	return request{path: vmStoragePath(runningVM(f)), body: map[string]any{"name": "data", "gb": 10}}
}

func vmStorageD(f *fixture) request {
	x := computeOf(f)
	return request{path: apitest.Path(vmStoragePath(x.vm), x.disk)}
}

// TestVMStorageRoutes: GET /iaas/vm/<vm_id>/storage/ is /iaas/storage/
// restricted to the VM (the same envelope, filters, paging and ordering),
// and /iaas/vm/<vm_id>/storage/<id>/ reads one of its disks.
func TestVMStorageRoutes(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vm := runningVM(f)
	d1 := create(c, f.root, "/iaas/storage/", map[string]any{"vm_id": vm, "name": "data1", "gb": 10})
	base := vmStoragePath(vm)

	for _, extra := range []string{"", "order=-id", "limit=1&page=1", "search[name__istartswith]=data&order=-gb",
		"exclude[gb__gte]=10", "search[bogus]=1", "name__icontains=DATA"} {
		nested := c.Do("GET", base+"?"+extra, nil, admin).Expect(200)
		flat := c.Do("GET", "/iaas/storage/?search[vm_id]="+strconv.FormatUint(vm, 10)+"&"+extra, nil, admin).Expect(200)
		if !bytes.Equal(nested.Body, flat.Body) {
			t.Errorf("?%s: nested %s\nflat %s", extra, nested.Body, flat.Body)
		}
	}
	l := c.Do("GET", base, nil, admin).Expect(200).List()
	if ids := l.IDs(); len(ids) != 2 || !slices.Contains(ids, d1) || l.Metadata.TotalRecords != 2 {
		t.Errorf("disks of VM %d: %v (total %d)", vm, ids, l.Metadata.TotalRecords)
	}
	if ids := c.Do("GET", base+"?search[name]=data1", nil, admin).Expect(200).List().IDs(); !slices.Equal(ids, []uint64{d1}) {
		t.Errorf("search[name]=data1: %v", ids)
	}
	// The path's VM wins over a search of another VM.
	if ids := c.Do("GET", base+"?search[vm_id]="+strconv.FormatUint(x.vm, 10), nil, admin).Expect(200).List().IDs(); len(ids) != 0 {
		t.Errorf("search[vm_id] of another VM: %v", ids)
	}
	if ids := c.Do("GET", vmStoragePath(x.vm), nil, admin).Expect(200).List().IDs(); !slices.Equal(ids, []uint64{x.disk}) {
		t.Errorf("disks of VM %d: %v, want [%d]", x.vm, ids, x.disk)
	}
	c.Do("GET", base[:len(base)-1], nil, admin).Expect(200) // without the trailing slash

	// Read: the disk of the VM; another VM's disk is 404.
	r := c.Do("GET", apitest.Path(base, d1), nil, admin).Expect(200)
	if r.Content()["name"] != "data1" || r.Header.Get("ETag") == "" {
		t.Errorf("read: %s (ETag %q)", r, r.Header.Get("ETag"))
	}
	flat := c.Do("GET", apitest.Path("/iaas/storage/", d1), nil, admin).Expect(200)
	if !bytes.Equal(r.Body, flat.Body) {
		t.Errorf("read: nested %s, flat %s", r.Body, flat.Body)
	}
	c.Do("HEAD", apitest.Path(base, d1), nil, admin).Expect(200)
	if got := c.Do("GET", apitest.Path(vmStoragePath(x.vm), d1), nil, admin).Expect(404).ErrorCode(); got != "iaas_storage_read_001" {
		t.Errorf("disk of another VM: %s", got)
	}
	c.Do("GET", apitest.Path(base, 999999), nil, admin).Expect(404)
	c.Do("GET", base+"abc/", nil, admin).Expect(404)

	// A VM the caller cannot see, or none, is 404 as for /iaas/vm/<id>/.
	other := f.r.Token(apitest.OtherMember)
	c.Do("GET", apitest.Path("/iaas/vm/", vm), nil, other).Expect(404)
	for _, p := range []string{base, vmStoragePath(999999), "/iaas/vm/abc/storage/"} {
		if got := c.Do("GET", p, nil, other).Expect(404).ErrorCode(); got != "iaas_storage_list_001" {
			t.Errorf("%s as other: %s", p, got)
		}
	}
	c.Do("GET", apitest.Path(base, d1), nil, other).Expect(404)
	c.Do("GET", base, nil, "").Expect(401)

	// Create: the path names the VM (CloudCIX's storage.create for a
	// particular VM); a body vm_id must agree; another member's VM is 404.
	vp := apitest.Path("/iaas/vm/", vm)
	settle := func() { // the agent applies the spec change: back to RUNNING
		c.Do("PATCH", vp, map[string]any{"state": 11, "expected_state": 10}, x.robotR).Expect(200)
		c.Do("PATCH", vp, map[string]any{"state": 4, "expected_state": 11}, x.robotR).Expect(200)
	}
	settle()
	d2 := c.Do("POST", base, map[string]any{"name": "data2", "gb": 5}, admin).Expect(201).Content()
	if d2["vm_id"].(float64) != float64(vm) || d2["name"] != "data2" {
		t.Errorf("created under the VM: %v", d2)
	}
	if got := c.Do("POST", base, map[string]any{"vm_id": x.vm, "name": "data3", "gb": 5}, admin).Expect(400).FieldCode("vm_id"); got != "iaas_storage_create_107" {
		t.Errorf("body vm_id of another VM: %q", got)
	}
	if got := c.Do("POST", base, map[string]any{"name": "data2", "gb": 5}, admin).Expect(400).FieldCode("name"); got != "iaas_storage_create_106" {
		t.Errorf("a name the VM has: %q", got)
	}
	c.Do("POST", base, map[string]any{"name": "data4", "gb": 5}, other).Expect(404)
	if n := len(c.Do("GET", base, nil, admin).Expect(200).List().Content); n != 3 {
		t.Errorf("VM %d has %d disks, want 3", vm, n)
	}
	// A VM that is not RUNNING or QUIESCED: a create's code, not an update's.
	settle()
	c.Do("PATCH", vp, map[string]any{"state": 5}, admin).Expect(200)
	if got := c.Do("POST", "/iaas/storage/", map[string]any{"vm_id": vm, "name": "late", "gb": 5}, admin).Expect(400).ErrorCode(); got != "iaas_storage_create_118" {
		t.Errorf("storage create on a VM in QUIESCE: %q", got)
	}
}

// TestIPValidatorSpellings: the services document's addressRanges and
// ipAddresses give the same answer as address_ranges and ip_addresses; both
// spellings of one parameter are 400.
func TestIPValidatorSpellings(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	c, tok := f.c.For(t), f.r.Token(apitest.MemberUser)
	const ranges, addrs = "10.0.0.0/24,192.168.0.1/33,2001:db8::/32", "10.0.0.5,foo,8.8.8.8"
	want := c.Do("GET", "/iaas/ip_validator/?"+url.Values{"address_ranges": {ranges}, "ip_addresses": {addrs}}.Encode(), nil, tok).Expect(200).Body
	for _, v := range []url.Values{
		{"addressRanges": {ranges}, "ipAddresses": {addrs}},
		{"addressRanges": {ranges}, "ip_addresses": {addrs}},
		{"address_ranges": {ranges}, "ipAddresses": {addrs}},
	} {
		if got := c.Do("GET", "/iaas/ip_validator/?"+v.Encode(), nil, tok).Expect(200).Body; !bytes.Equal(got, want) {
			t.Errorf("?%s: %s\nwant %s", v.Encode(), got, want)
		}
	}
	for _, spelling := range [][3]string{{"address_ranges", "addressRanges", "10.0.0.0/24"}, {"ip_addresses", "ipAddresses", "10.0.0.1"}} {
		one := c.Do("GET", "/iaas/ip_validator/?"+spelling[1]+"="+spelling[2], nil, tok).Expect(200).Body
		two := c.Do("GET", "/iaas/ip_validator/?"+spelling[0]+"="+spelling[2], nil, tok).Expect(200).Body
		if !bytes.Equal(one, two) {
			t.Errorf("%s alone: %s, %s alone: %s", spelling[1], one, spelling[0], two)
		}
	}
	for _, q := range []string{"address_ranges=10.0.0.0/24&addressRanges=10.0.0.0/24", "ip_addresses=10.0.0.1&ipAddresses=10.0.0.2&address_ranges=10.0.0.0/8"} {
		if got := c.Do("GET", "/iaas/ip_validator/?"+q, nil, tok).Expect(400).ErrorCode(); got != "regent_request_005" {
			t.Errorf("?%s: %s", q, got)
		}
	}
	// An empty camelCase parameter is as an empty snake_case one: no item.
	if got := c.Do("GET", "/iaas/ip_validator/?ipAddresses=", nil, tok).Expect(400).ErrorCode(); got != "iaas_ip_validator_001" {
		t.Errorf("empty ipAddresses: %s", got)
	}
	// Each list is bounded (every address is looked up in every range): 1,000
	// items are validated, 1,001 are refused.
	many := func(item string, n int) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	c.Do("GET", "/iaas/ip_validator/?"+url.Values{"address_ranges": {many("0.0.0.0/0", 1000)}, "ip_addresses": {many("10.0.0.1", 1000)}}.Encode(), nil, tok).Expect(200)
	for _, v := range []url.Values{{"address_ranges": {many("0.0.0.0/0", 1001)}}, {"ipAddresses": {many("10.0.0.1", 1001)}}} {
		r := c.Do("GET", "/iaas/ip_validator/?"+v.Encode(), nil, tok).Expect(400)
		if r.ErrorCode() != "regent_request_005" || !strings.Contains(r.Err().Detail, "at most 1000") {
			t.Errorf("1,001 items: %s", r)
		}
	}
}

// TestListDatePartFilters: search[created__year] and the other date parts
// filter every list by the part of the timestamp in UTC; a value that is
// not an integer is skipped with a warning, as other bad values are.
func TestListDatePartFilters(t *testing.T) {
	f := newFilterFixture(t)
	created, err := time.Parse(time.RFC3339Nano, f.aliceCreated)
	if err != nil {
		t.Fatal(err)
	}
	created = created.UTC()
	// The cases below expect all four users on alice's day: made again
	// if they were made across a UTC midnight (the next try is seconds
	// from any other).
	if last, err := time.Parse(time.RFC3339Nano, f.daveCreated); err != nil || last.UTC().YearDay() != created.YearDay() {
		t.Logf("the users were made across midnight (%s, %s): again", f.aliceCreated, f.daveCreated)
		f = newFilterFixture(t)
		if created, err = time.Parse(time.RFC3339Nano, f.aliceCreated); err != nil {
			t.Fatal(err)
		}
		created = created.UTC()
	}
	all := []uint64{f.alice, f.bob, f.carol, f.dave}
	for _, tc := range []struct {
		query string
		want  []uint64
		warn  bool
	}{
		{enc("search[created__year]", strconv.Itoa(created.Year())), all, false},
		{enc("search[created__year]", strconv.Itoa(created.Year()-1)), nil, false},
		{enc("exclude[created__year]", strconv.Itoa(created.Year())), nil, false},
		{enc("search[created__month]", strconv.Itoa(int(created.Month())), "search[created__day]", strconv.Itoa(created.Day())), all, false},
		{enc("search[created__week_day]", strconv.Itoa(int(created.Weekday())+1)), all, false},
		{enc("search[created__week_day]", strconv.Itoa((int(created.Weekday())+1)%7+1)), nil, false},
		{enc("search[updated__year]", strconv.Itoa(created.Year())), all, false},
		{enc("search[created__month]", "13"), nil, false},
		{enc("search[created__year]", "abc"), all, true},
		{enc("exclude[created__month]", "2.5"), all, true},
	} {
		l := f.users(t, tc.query)
		got := l.IDs()
		slices.Sort(got)
		want := slices.Clone(tc.want)
		if want == nil {
			want = []uint64{}
		}
		if !slices.Equal(got, want) || (len(l.Metadata.Warnings) > 0) != tc.warn {
			t.Errorf("?%s: %v (warnings %q), want %v (warning %v)", tc.query, got, l.Metadata.Warnings, want, tc.warn)
		}
	}
}

// TestRouterCapacityNullIsPhantom: as in CloudCIX, capacity null makes a
// phantom (unlimited) router, on create and on update; a number makes it
// a real one again; leaving capacity out of a PATCH keeps it, and a create
// without capacity (nor phantom) is refused.
func TestRouterCapacityNullIsPhantom(t *testing.T) {
	_, f, _ := computeSetup(t)
	c := f.c.For(t)
	rt := c.Do("POST", "/iaas/router/", map[string]any{"region_id": f.reg, "capacity": nil}, f.root).Expect(201).Content()
	if rt["capacity"] != nil {
		t.Fatalf("capacity null: %v", rt["capacity"])
	}
	path := apitest.Path("/iaas/router/", num(rt["id"]))
	if got := c.Do("PATCH", path, map[string]any{"capacity": 3}, f.root).Expect(200).Content(); got["capacity"] != float64(3) || got["capacity_available"] != float64(3) {
		t.Errorf("capacity 3: %v", got)
	}
	if rt["capacity_available"] != nil {
		t.Errorf("capacity_available of a phantom: %v", rt["capacity_available"])
	}
	// The fixture's router hosts the fixture project's virtual router.
	x := computeOf(f)
	fixed := c.Do("PATCH", apitest.Path("/iaas/router/", x.rt), map[string]any{"capacity": 10}, f.root).Expect(200).Content()
	if fixed["capacity_available"] != float64(9) {
		t.Errorf("capacity_available of a router with one virtual router: %v", fixed["capacity_available"])
	}
	c.Do("PATCH", apitest.Path("/iaas/router/", x.rt), map[string]any{"capacity": nil}, f.root).Expect(200)
	if got := c.Do("PATCH", path, map[string]any{"enabled": true}, f.root).Expect(200).Content()["capacity"]; got != float64(3) {
		t.Errorf("a PATCH without capacity changed it: %v", got)
	}
	if got := c.Do("PATCH", path, map[string]any{"capacity": nil}, f.root).Expect(200).Content()["capacity"]; got != nil {
		t.Errorf("capacity null on update: %v", got)
	}
	if got := c.Do("POST", "/iaas/router/", map[string]any{"region_id": f.reg}, f.root).Expect(400).FieldCode("capacity"); got != "iaas_router_create_105" {
		t.Errorf("no capacity: %q", got)
	}
	if got := c.Do("POST", "/iaas/router/", map[string]any{"region_id": f.reg, "capacity": "x"}, f.root).Expect(400).FieldCode("capacity"); got != "regent_request_004" {
		t.Errorf("capacity \"x\": %q", got)
	}
}

// TestSnapshotAndBackupRename: "update the details" of a snapshot or a
// backup: its name changes alone (the state stays, nothing is built), a
// bad name is 400, a robot cannot rename, and a rename rides along with a
// state change too.
func TestSnapshotAndBackupRename(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	s := snapOf(f)
	for _, svc := range []string{"/iaas/snapshot/", "/iaas/backup/"} {
		id := s.snapshot
		if svc == "/iaas/backup/" {
			id = s.backup
		}
		p := apitest.Path(svc, id)
		before := c.Do("GET", p, nil, admin).Expect(200).Content()
		got := c.Do("PATCH", p, map[string]any{"name": "  renamed  "}, admin).Expect(200).Content()
		if got["name"] != "renamed" || got["state"] != before["state"] {
			t.Errorf("%s rename: %v", svc, got)
		}
		kind := "snapshot"
		if svc == "/iaas/backup/" {
			kind = "backup"
		}
		if code := c.Do("PATCH", p, map[string]any{"name": ""}, admin).Expect(400).FieldCode("name"); code != "iaas_"+kind+"_update_103" {
			t.Errorf("%s empty name: %q", svc, code)
		}
		c.Do("PATCH", p, map[string]any{"name": "robot's"}, x.robotR).Expect(403)
		got = c.Do("PATCH", p, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200).Content()
		if got["name"] != "renamed" {
			t.Errorf("%s after a robot's state change: %v", svc, got["name"])
		}
	}
}

// TestRobotTokenBoundToServer: a robot token bound to a server manages
// that server's records only (the server, its interfaces), besides its
// VMs; other servers, new servers, routers and region images are 403
// (204). A binding to a server that does not exist in the region is
// refused when the token is made.
func TestRobotTokenBoundToServer(t *testing.T) {
	_, f, x := computeSetup(t)
	c := f.c.For(t)
	mk := func(server uint64) *apitest.Response {
		return c.Do("POST", "/membership/token/", map[string]any{"kind": "robot", "region_id": f.reg, "server_id": server, "name": f.n.Unique("bound")}, f.root)
	}
	if code := mk(999999).Expect(400).FieldCode("server_id"); code != "membership_token_create_107" {
		t.Errorf("a binding to a missing server: %q", code)
	}
	bound, _ := mk(x.srv).Expect(201).Content()["token"].(string)
	other := create(c, f.root, "/iaas/server/", map[string]any{"region_id": f.reg, "type_id": 2, "storage_type_id": x.st, "cores": 4, "ram": 64, "gb": 100})
	c.Do("PATCH", apitest.Path("/iaas/server/", x.srv), map[string]any{"model": "own"}, bound).Expect(200)
	c.Do("POST", "/iaas/interface/", map[string]any{"server_id": x.srv, "hostname": "hv1b", "ip_address": "2001:db8::11"}, bound).Expect(201)
	for _, r := range []*apitest.Response{
		c.Do("PATCH", apitest.Path("/iaas/server/", other), map[string]any{"model": "hijacked"}, bound),
		c.Do("POST", "/iaas/server/", map[string]any{"region_id": f.reg, "type_id": 2, "storage_type_id": x.st, "cores": 1, "ram": 1, "gb": 1}, bound),
		c.Do("POST", "/iaas/interface/", map[string]any{"server_id": other, "hostname": "x", "ip_address": "2001:db8::12"}, bound),
		c.Do("PATCH", apitest.Path("/iaas/router/", x.rt), map[string]any{"model": "x"}, bound),
		c.Do("POST", "/iaas/region_image/", map[string]any{"region_id": f.reg, "image_id": x.img}, bound),
	} {
		if r.Expect(403); !strings.HasSuffix(r.ErrorCode(), "_204") {
			t.Errorf("%s: error_code %q, want …_204", r, r.ErrorCode())
		}
	}
	if got := c.Do("GET", apitest.Path("/iaas/server/", other), nil, f.root).Expect(200).Content()["model"]; got == "hijacked" {
		t.Error("the bound token changed another server")
	}
}
