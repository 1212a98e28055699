package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// TestComputeSDK: a region's hardware, a whole cloud and a robot's
// compare-and-swap through the typed SDK.
func TestComputeSDK(t *testing.T) {
	t.Parallel()
	ctx, c := ctxT(t), root()
	reg, _, err := c.Regions().Create(ctx, &api.RegionInput{Name: new(uniq("compute")), Customers: &[]uint64{1}})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := c.StorageTypes().Create(ctx, &api.NameInput{Name: new(uniq("ssd"))})
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := c.Images().Create(ctx, &api.ImageInput{DisplayName: new("Ubuntu"), ServerTypeID: new(uint64(api.ServerTypeKVM)), CloudInit: new(true)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.RegionImages().Create(ctx, &api.RegionImageInput{RegionID: &reg.ID, ImageID: &img.ID}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Servers().Create(ctx, &api.ServerInput{RegionID: &reg.ID, TypeID: new(uint64(api.ServerTypeKVM)),
		StorageTypeID: &st.ID, Cores: new(32), RAM: new(256), GB: new(4000)}); err != nil {
		t.Fatal(err)
	}
	n := seq.Add(1)
	asn, err := createID(t, c, "/iaas/asn/", map[string]any{"member_id": 1, "number": 4_200_000_000 + n})
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := createID(t, c, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": fmt.Sprintf("100.%d.%d.0/24", 100+n/256%27, n%256), "type": "public"})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := createID(t, c, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": fmt.Sprintf("100.%d.%d.1/24", 100+n/256%27, n%256)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Routers().Create(ctx, &api.RouterInput{RegionID: &reg.ID, Phantom: new(true), FloatingSubnetIDs: &[]uint64{fs}}); err != nil {
		t.Fatal(err)
	}
	cloud, _, err := c.Clouds().Create(ctx, &api.CloudInput{
		Project: &api.ProjectInput{Name: new(uniq("p")), RegionID: &reg.ID},
		Subnets: []api.SubnetSpecInput{{Name: new("a"), AddressRange: new("10.1.0.1/24")}},
		VMs: []api.VMInput{{Name: new("web"), ImageID: &img.ID, StorageTypeID: &st.ID, CPU: new(2), RAM: new(4), DNS: new("1.1.1.1"),
			GatewaySubnet: new("10.1.0.1/24"), Storages: []api.StorageInput{{Name: new("root"), GB: new(20), Primary: new(true)}},
			IPAddresses: []api.IPInput{{Address: new("10.1.0.10"), NAT: new(true)}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cloud.VMs) != 1 || cloud.VirtualRouter == nil || len(cloud.VMs[0].IPAddresses) != 1 || cloud.VMs[0].IPAddresses[0].PublicIP == nil {
		t.Fatalf("cloud: %+v", cloud)
	}
	vm := cloud.VMs[0]
	tok, _, err := c.Tokens().Create(ctx, &api.TokenInput{Kind: new(api.TokenKindRobot), RegionID: &reg.ID, Name: new("agent")})
	if err != nil {
		t.Fatal(err)
	}
	robot := client.New(shared.srv.URL(), tok.Secret)
	got, _, err := robot.SetVMState(ctx, vm.ID, api.StateBuilding, new(api.StateRequested))
	if err != nil || got.State != api.StateBuilding {
		t.Fatalf("claim: %v %+v", err, got)
	}
	if _, _, err := robot.SetVMState(ctx, vm.ID, api.StateBuilding, new(api.StateRequested)); !client.IsConflict(err) {
		t.Fatalf("second claim: %v, want a 409", err)
	}
	mine, _, err := robot.VMs().List(ctx, &client.ListOptions{Search: map[string]string{"state": "2"}})
	if err != nil || len(mine.Content) != 1 || mine.Content[0].ID != vm.ID {
		t.Fatalf("robot's building VMs: %v %+v", err, mine)
	}

	// What the typed updates send beyond a state: a VM's gpu, a virtual
	// router's subnets, a project's state (the SDK had no field for them).
	_, _, err = c.VMs().Update(ctx, vm.ID, &api.VMChangeInput{GPU: new(1)}, nil)
	if e := (*api.Error)(nil); !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "gpu") {
		t.Fatalf("VM update gpu=1: %v, want a 400 naming gpu", err)
	}
	vr, _, err := c.VirtualRouters().Update(ctx, cloud.VirtualRouter.ID, &api.StateChangeInput{Subnets: &[]api.SubnetSpecInput{
		{ID: &cloud.Subnets[0].ID, Name: new("a"), AddressRange: new("10.1.0.1/24")}, {Name: new("b"), AddressRange: new("10.1.1.1/24")}}}, nil)
	if err != nil || len(vr.Subnets) != 2 {
		t.Fatalf("virtual router subnets: %v %+v", err, vr)
	}
	// Its VM is BUILDING: the API takes the state and refuses it for that.
	_, _, err = c.SetProjectState(ctx, cloud.Project.ID, api.StateScrub)
	if e := (*api.Error)(nil); !errors.As(err, &e) || e.Errors["state"].ErrorCode != "iaas_project_update_109" {
		t.Fatalf("project state 8 while building: %v, want state refused as not stable", err)
	}
}

func createID(t *testing.T, c *client.Client, path string, body map[string]any) (uint64, error) {
	m, _, err := client.Create[map[string]any](ctxT(t), c, path, body)
	if err != nil {
		return 0, err
	}
	return uint64(m["id"].(float64)), nil
}

// TestServerHealthSDK: Servers() and Routers() decode what the API shows of
// them beyond the stored record: the health the agent reports and a
// router's capacity_available.
func TestServerHealthSDK(t *testing.T) {
	t.Parallel()
	ctx, c := ctxT(t), root()
	reg, _, err := c.Regions().Create(ctx, &api.RegionInput{Name: new(uniq("health")), Customers: &[]uint64{1}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := c.Tokens().Create(ctx, &api.TokenInput{Kind: new(api.TokenKindRobot), RegionID: &reg.ID, Name: new("agent")})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := c.StorageTypes().Create(ctx, &api.NameInput{Name: new(uniq("nvme"))})
	if err != nil {
		t.Fatal(err)
	}
	robot := client.New(shared.srv.URL(), tok.Secret)
	got, err := robot.Agent().Register(ctx, api.AgentRegistration{Hostname: uniq("hv"), Roles: []string{"hypervisor", "network"}, Version: "test",
		Capacity: api.Capacity{CPUCores: 8, RAMMB: 16384, Storage: []api.StorageCapacity{{Type: st.Name, TotalGB: 100, FreeGB: 90}}}})
	if err != nil || got.ServerID == 0 || got.RouterID == 0 {
		t.Fatalf("register: %v %+v", err, got)
	}
	if err := robot.Agent().Heartbeat(ctx, api.Heartbeat{ServerID: got.ServerID, RouterID: got.RouterID,
		Health: api.AgentHealthDegraded, Detail: "libvirt: no answer"}); err != nil {
		t.Fatal(err)
	}
	s, _, err := c.Servers().Get(ctx, got.ServerID, nil)
	if err != nil || s.AgentHealth != api.AgentHealthDegraded || s.AgentHealthDetail != "libvirt: no answer" || s.ID != got.ServerID {
		t.Fatalf("server: %v %+v", err, s)
	}
	r, _, err := c.Routers().Get(ctx, got.RouterID, nil)
	if err != nil || r.AgentHealth != api.AgentHealthDegraded || r.CapacityAvailable == nil || *r.CapacityAvailable != 0 {
		t.Fatalf("router: %v %+v", err, r)
	}
}

// TestDNSSDK: a domain and its records through the typed DNS services
// (the SDK had none: a tenant wrote maps to /iaas/record/).
func TestDNSSDK(t *testing.T) {
	t.Parallel()
	ctx, c := ctxT(t), root()
	d, _, err := c.Domains().Create(ctx, &api.NameInput{Name: new(uniq("zone") + ".example")})
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := c.Records().Create(ctx, &api.RecordInput{DomainID: &d.ID, Name: new("www." + d.Name), Type: new("A"), Content: new("192.0.2.7")})
	if err != nil || r.TTL != api.RecordDefaultTTL || r.DomainID != d.ID {
		t.Fatalf("record create: %v %+v", err, r)
	}
	r, _, err = c.Records().Update(ctx, r.ID, &api.RecordInput{TTL: new(uint32(600))}, &client.WriteOptions{IfMatch: r.ModifiedIndex})
	if err != nil || r.TTL != 600 || r.Content != "192.0.2.7" {
		t.Fatalf("record update: %v %+v", err, r)
	}
	list, _, err := c.Records().List(ctx, &client.ListOptions{Search: map[string]string{"domain_id": fmt.Sprint(d.ID)}})
	if err != nil || len(list.Content) != 1 || list.Content[0].Name != "www."+d.Name {
		t.Fatalf("record list: %v %+v", err, list)
	}
	if _, _, err := c.Records().Create(ctx, &api.RecordInput{DomainID: &d.ID, Name: new("x." + d.Name), Type: new("A"), Content: new("nope")}); client.StatusCode(err) != http.StatusBadRequest {
		t.Fatalf("a bad A record: %v, want a 400", err)
	}
	if _, err := c.Domains().Delete(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Records().Get(ctx, r.ID, nil); !client.IsNotFound(err) {
		t.Fatalf("record of a deleted domain: %v, want 404", err)
	}
}

// TestIPAMSDK: an ASN, an allocation, subnets and addresses through the
// typed IPAM services (the SDK had none: a tenant wrote maps to
// /iaas/subnet/ and decoded the answers into types of their own).
func TestIPAMSDK(t *testing.T) {
	t.Parallel()
	ctx, c := ctxT(t), root()
	n := seq.Add(1)
	asn, _, err := c.ASNs().Create(ctx, &api.ASNInput{MemberID: new(uint64(1)), Number: new(uint64(4_100_000_000 + n))})
	if err != nil || asn.IsPseudo || asn.Number != uint64(4_100_000_000+n) {
		t.Fatalf("asn: %v %+v", err, asn)
	}
	block := fmt.Sprintf("100.%d.%d", 64+n/256%36, n%256)
	alloc, _, err := c.Allocations().Create(ctx, &api.AllocationInput{ASNID: &asn.ID, AddressRange: new(block + ".0/24"), Type: new("public"), Name: new("pub")})
	if err != nil || alloc.AddressRange != block+".0/24" || alloc.ASNID != asn.ID {
		t.Fatalf("allocation: %v %+v", err, alloc)
	}
	var subnets []*api.SubnetView
	for i, r := range []string{".1/26", ".65/26", ".129/26"} {
		s, _, err := c.Subnets().Create(ctx, &api.SubnetInput{AllocationID: &alloc.ID, AddressRange: new(block + r), Name: new(fmt.Sprintf("web%d", i)), VLAN: new(uint32(100 + i))})
		if err != nil || s.Gateway != block+r[:len(r)-3] || s.VLAN != uint32(100+i) {
			t.Fatalf("subnet %s: %v %+v", r, err, s)
		}
		subnets = append(subnets, s)
	}
	// A subnet outside its allocation: a field error the caller can read.
	_, _, err = c.Subnets().Create(ctx, &api.SubnetInput{AllocationID: &alloc.ID, AddressRange: new("192.0.2.1/26")})
	if e := (*api.Error)(nil); !errors.As(err, &e) || e.Errors["address_range"].ErrorCode == "" {
		t.Fatalf("subnet outside its allocation: %v, want a field error on address_range", err)
	}
	opts := &client.ListOptions{Search: map[string]string{"allocation_id": fmt.Sprint(alloc.ID), "name__istartswith": "web"}, Limit: 2, Order: "-vlan"}
	page, _, err := c.Subnets().List(ctx, opts)
	if err != nil || len(page.Content) != 2 || page.Metadata.TotalRecords != 3 || page.Content[0].VLAN != 102 {
		t.Fatalf("subnet page: %v %+v", err, page)
	}
	all, _, err := c.Subnets().ListAll(ctx, opts)
	if err != nil || len(all) != 3 {
		t.Fatalf("every subnet: %v %d", err, len(all))
	}
	s, _, err := c.Subnets().Update(ctx, subnets[0].ID, &api.SubnetInput{Name: new("front")}, &client.WriteOptions{IfMatch: subnets[0].ModifiedIndex})
	if err != nil || s.Name != "front" || s.AddressRange != block+".1/26" {
		t.Fatalf("subnet update: %v %+v", err, s)
	}
	ip, _, err := c.IPAddresses().Create(ctx, &api.IPAddressInput{SubnetID: &s.ID, Name: new("gw")})
	if err != nil || ip.Address != block+".2" || ip.Subnet == nil || ip.Subnet.ID != s.ID || ip.PublicIP != nil {
		t.Fatalf("address: %v %+v", err, ip)
	}
	if _, err := c.IPAddresses().Delete(ctx, ip.ID); err != nil {
		t.Fatal(err)
	}
}
