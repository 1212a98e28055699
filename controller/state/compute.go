package state

// Compute state: projects, virtual routers, VMs, storages, the catalogue
// (storage types, images, region images), the region's hardware (servers,
// interfaces, routers) and VM histories. The CloudCIX model is
// cloudcix-facts §5; the operations that span several tables (project
// create, cloud create and update, state changes) are compute_cloud.go.

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/pkg/api"
)

// Compute tables.
const (
	Projects         = "compute_projects"
	VirtualRouters   = "compute_virtual_routers"
	VMs              = "compute_vms"
	Storages         = "compute_storages"
	StorageTypes     = "compute_storage_types"
	Images           = "compute_images"
	RegionImages     = "compute_region_images"
	Servers          = "compute_servers"
	ServerInterfaces = "compute_interfaces"
	Routers          = "compute_routers"
	VMHistories      = "compute_vm_histories"
)

// ComputeTables are every compute table: what a blocking query on "any
// compute change" (an agent's work feed) watches.
var ComputeTables = []string{Projects, VirtualRouters, VMs, Storages, StorageTypes, Images, RegionImages,
	Servers, ServerInterfaces, Routers, VMHistories, VPNs, VPNHistories, Snapshots, Backups, SnapshotHistories, BackupHistories}

func computeSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		Projects: {Name: Projects, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "member": uintIndex("member", "MemberID"), "region": uintIndex("region", "RegionID"),
		}},
		VirtualRouters: {Name: VirtualRouters, Indexes: map[string]*memdb.IndexSchema{
			"id":      idIndex(),
			"project": {Name: "project", Unique: true, Indexer: uintFieldIndex("ProjectID")},
			"region":  uintIndex("region", "RegionID"),
			"router":  uintIndex("router", "RouterID"),
		}},
		VMs: {Name: VMs, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "project": uintIndex("project", "ProjectID"), "region": uintIndex("region", "RegionID"),
			"server": uintIndex("server", "ServerID"), "member": uintIndex("member", "MemberID"),
		}},
		Storages: {Name: Storages, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "vm": uintIndex("vm", "VMID"),
		}},
		StorageTypes: {Name: StorageTypes, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex(),
			"name": {Name: "name", Unique: true, Indexer: stringFieldIndex("Name", true)},
		}},
		Images: {Name: Images, Indexes: map[string]*memdb.IndexSchema{"id": idIndex()}},
		RegionImages: {Name: RegionImages, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "region": uintIndex("region", "RegionID"),
			"pair": {Name: "pair", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				uintFieldIndex("RegionID"), uintFieldIndex("ImageID")}}},
		}},
		Servers: {Name: Servers, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "region": uintIndex("region", "RegionID"),
		}},
		ServerInterfaces: {Name: ServerInterfaces, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "server": uintIndex("server", "ServerID"),
		}},
		Routers: {Name: Routers, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "region": uintIndex("region", "RegionID"),
		}},
		VMHistories: {Name: VMHistories, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "vm": uintIndex("vm", "VMID"),
		}},
	}
}

// --- reads ---

// Project returns a project by id.
func (r *ReadTxn) Project(id uint64) (*api.Project, bool) { return get[*api.Project](r, Projects, id) }

// ProjectList returns every project, by id.
func (r *ReadTxn) ProjectList() []*api.Project { return all[*api.Project](r, Projects, "id") }

// ProjectsInRegion returns the projects of a region, by id.
func (r *ReadTxn) ProjectsInRegion(region uint64) []*api.Project {
	return all[*api.Project](r, Projects, "region", region)
}

// VirtualRouter returns a virtual router by id.
func (r *ReadTxn) VirtualRouter(id uint64) (*api.VirtualRouter, bool) {
	return get[*api.VirtualRouter](r, VirtualRouters, id)
}

// VirtualRouterList returns every virtual router, by id.
func (r *ReadTxn) VirtualRouterList() []*api.VirtualRouter {
	return all[*api.VirtualRouter](r, VirtualRouters, "id")
}

// VirtualRoutersOnRouter returns the virtual routers hosted by a physical
// router (an agent of the network role reads these).
func (r *ReadTxn) VirtualRoutersOnRouter(router uint64) []*api.VirtualRouter {
	return all[*api.VirtualRouter](r, VirtualRouters, "router", router)
}

// VirtualRoutersInRegion returns the virtual routers of a region, by id.
func (r *ReadTxn) VirtualRoutersInRegion(region uint64) []*api.VirtualRouter {
	return all[*api.VirtualRouter](r, VirtualRouters, "region", region)
}

// VM returns a VM by id.
func (r *ReadTxn) VM(id uint64) (*api.VM, bool) { return get[*api.VM](r, VMs, id) }

// VMList returns every VM, by id.
func (r *ReadTxn) VMList() []*api.VM { return all[*api.VM](r, VMs, "id") }

// VMsOfProject returns the VMs of a project, by id.
func (r *ReadTxn) VMsOfProject(project uint64) []*api.VM {
	return all[*api.VM](r, VMs, "project", project)
}

// VMsOnServer returns the VMs placed on a server (an agent of the
// hypervisor role reads these), by id.
func (r *ReadTxn) VMsOnServer(server uint64) []*api.VM { return all[*api.VM](r, VMs, "server", server) }

// VMsInRegion returns the VMs of a region, by id.
func (r *ReadTxn) VMsInRegion(region uint64) []*api.VM { return all[*api.VM](r, VMs, "region", region) }

// Storage returns a storage by id.
func (r *ReadTxn) Storage(id uint64) (*api.Storage, bool) { return get[*api.Storage](r, Storages, id) }

// StorageList returns every storage, by id.
func (r *ReadTxn) StorageList() []*api.Storage { return all[*api.Storage](r, Storages, "id") }

// StoragesOfVM returns the disks of a VM, by id (the primary is flagged).
func (r *ReadTxn) StoragesOfVM(vm uint64) []*api.Storage {
	return all[*api.Storage](r, Storages, "vm", vm)
}

// StorageType returns a storage type by id.
func (r *ReadTxn) StorageType(id uint64) (*api.StorageType, bool) {
	return get[*api.StorageType](r, StorageTypes, id)
}

// StorageTypeList returns every storage type, by id.
func (r *ReadTxn) StorageTypeList() []*api.StorageType {
	return all[*api.StorageType](r, StorageTypes, "id")
}

// Image returns an image by id.
func (r *ReadTxn) Image(id uint64) (*api.Image, bool) { return get[*api.Image](r, Images, id) }

// ImageList returns every image, by id.
func (r *ReadTxn) ImageList() []*api.Image { return all[*api.Image](r, Images, "id") }

// RegionImage returns a region image by id.
func (r *ReadTxn) RegionImage(id uint64) (*api.RegionImage, bool) {
	return get[*api.RegionImage](r, RegionImages, id)
}

// RegionImageList returns every region image, by id.
func (r *ReadTxn) RegionImageList() []*api.RegionImage {
	return all[*api.RegionImage](r, RegionImages, "id")
}

// ImageInRegion reports whether image is available in region.
func (r *ReadTxn) ImageInRegion(region, image uint64) bool {
	raw, err := r.txn.First(RegionImages, "pair", region, image)
	return err == nil && raw != nil
}

// Server returns a server by id.
func (r *ReadTxn) Server(id uint64) (*api.Server, bool) { return get[*api.Server](r, Servers, id) }

// ServerList returns every server, by id.
func (r *ReadTxn) ServerList() []*api.Server { return all[*api.Server](r, Servers, "id") }

// ServersInRegion returns the servers of a region, by id.
func (r *ReadTxn) ServersInRegion(region uint64) []*api.Server {
	return all[*api.Server](r, Servers, "region", region)
}

// Interface returns a server interface by id.
func (r *ReadTxn) ServerInterface(id uint64) (*api.ServerInterface, bool) {
	return get[*api.ServerInterface](r, ServerInterfaces, id)
}

// InterfaceList returns every interface, by id.
func (r *ReadTxn) ServerInterfaceList() []*api.ServerInterface {
	return all[*api.ServerInterface](r, ServerInterfaces, "id")
}

// InterfacesOfServer returns the interfaces of a server, by id.
func (r *ReadTxn) InterfacesOfServer(server uint64) []*api.ServerInterface {
	return all[*api.ServerInterface](r, ServerInterfaces, "server", server)
}

// Router returns a physical router by id.
func (r *ReadTxn) Router(id uint64) (*api.Router, bool) { return get[*api.Router](r, Routers, id) }

// RouterList returns every router, by id.
func (r *ReadTxn) RouterList() []*api.Router { return all[*api.Router](r, Routers, "id") }

// FloatingSubnetRouter returns the first router (by id) that lists subnet
// id among its floating subnets. Routers are few: a scan.
func (r *ReadTxn) FloatingSubnetRouter(id uint64) (*api.Router, bool) {
	for _, rt := range r.RouterList() {
		if slices.Contains(rt.FloatingSubnetIDs, id) {
			return rt, true
		}
	}
	return nil, false
}

// otherFloatingSubnetRouter returns the first router (by id) other than
// router that lists subnet id among its floating subnets.
func (r *ReadTxn) otherFloatingSubnetRouter(id, router uint64) (*api.Router, bool) {
	for _, rt := range r.RouterList() {
		if rt.ID != router && slices.Contains(rt.FloatingSubnetIDs, id) {
			return rt, true
		}
	}
	return nil, false
}

// floatingHolders counts the addresses of floating subnet id held by
// virtual routers (their public address) and VMs (their NAT addresses),
// and names one of the holders. Soft-deallocated addresses are held by
// nobody.
func (r *ReadTxn) floatingHolders(id uint64) (n int, holder string) {
	var vrs map[uint64]*api.VirtualRouter
	for _, a := range r.IPAddressList(id) {
		if a.Deallocated {
			continue
		}
		var h string
		if a.VMID != 0 {
			h = fmt.Sprintf("VM %d (NAT address %s)", a.VMID, a.Address)
		} else {
			if vrs == nil {
				vrs = map[uint64]*api.VirtualRouter{}
				for _, v := range r.VirtualRouterList() {
					if v.IPAddressID != 0 && v.State != api.StateClosed {
						vrs[v.IPAddressID] = v
					}
				}
			}
			if v, ok := vrs[a.ID]; ok {
				h = fmt.Sprintf("virtual router %d of project %d (address %s)", v.ID, v.ProjectID, a.Address)
			}
		}
		if h == "" {
			continue
		}
		if n == 0 {
			holder = h
		}
		n++
	}
	return n, holder
}

// RoutersInRegion returns the routers of a region, by id.
func (r *ReadTxn) RoutersInRegion(region uint64) []*api.Router {
	return all[*api.Router](r, Routers, "region", region)
}

// VMHistoryList returns every VM history row, by id.
func (r *ReadTxn) VMHistoryList() []*api.VMHistory { return all[*api.VMHistory](r, VMHistories, "id") }

// VMHistoryOf returns the history of a VM, oldest first.
func (r *ReadTxn) VMHistoryOf(vm uint64) []*api.VMHistory {
	return all[*api.VMHistory](r, VMHistories, "vm", vm)
}

// VMHistory returns a history row by id.
func (r *ReadTxn) VMHistory(id uint64) (*api.VMHistory, bool) {
	return get[*api.VMHistory](r, VMHistories, id)
}

// ProjectSubnets returns the subnets of a project's network: the children
// of its private allocations that /iaas/cloud/ made for its virtual router
// (virtual_router_id set), by allocation then id. A subnet a member makes
// in such an allocation through /iaas/subnet/ is IPAM only: its vlan and
// vxlan are the member's records, never a segment of the router.
func (r *ReadTxn) ProjectSubnets(p *api.Project) []*api.IPBlock {
	if p.VirtualRouterID == 0 || len(p.AllocationIDs) == 0 {
		return nil
	}
	// From the virtual router's subnets rather than from each allocation's
	// children: a project's allocations are often without subnets (its
	// public ones), and a lookup that finds nothing is watched (Watching)
	// through a part of memdb's tree that unrelated blocks change.
	var out []*api.IPBlock
	for _, s := range blockViews(all[*BlockRecord](r, IPBlocks, "virtual_router", p.VirtualRouterID)) {
		if slices.Contains(p.AllocationIDs, s.ParentID) {
			out = append(out, s)
		}
	}
	// In the order of the project's allocations, each by id, as before.
	slices.SortStableFunc(out, func(a, b *api.IPBlock) int {
		return cmp.Compare(slices.Index(p.AllocationIDs, a.ParentID), slices.Index(p.AllocationIDs, b.ParentID))
	})
	return out
}

// VMAddresses returns the private addresses of a VM (in its project's
// subnets) and, for each, its NAT public address when it has one.
func (r *ReadTxn) VMAddresses(vm *api.VM) (private []*api.IPAddress, public map[uint64]*api.IPAddress) {
	p, ok := r.Project(vm.ProjectID)
	if !ok {
		return nil, nil
	}
	public = map[uint64]*api.IPAddress{}
	for _, s := range r.ProjectSubnets(p) {
		for _, a := range r.IPAddressList(s.ID) {
			if a.VMID != vm.ID {
				continue
			}
			private = append(private, a)
			if a.PublicIPID != 0 {
				if pub, ok := r.IPAddress(a.PublicIPID); ok {
					public[a.ID] = pub
				}
			}
		}
	}
	return private, public
}

// --- the catalogue and the hardware ---

// StorageTypeCreate stores a storage type; names are unique.
func (t *Txn) StorageTypeCreate(s *api.StorageType) (*api.StorageType, error) {
	if raw, _ := t.txn.First(StorageTypes, "name", s.Name); raw != nil {
		return nil, fieldErr("name", "iaas_storage_type_create_102", "A storage type named %q exists.", s.Name)
	}
	return s, insertNew(t, StorageTypes, s)
}

// StorageTypeUpdate renames a storage type.
func (t *Txn) StorageTypeUpdate(s *api.StorageType, expect uint64) (*api.StorageType, error) {
	if raw, _ := t.txn.First(StorageTypes, "name", s.Name); raw != nil && raw.(*api.StorageType).ID != s.ID {
		return nil, fieldErr("name", "iaas_storage_type_update_102", "A storage type named %q exists.", s.Name)
	}
	return s, replace(t, StorageTypes, s, expect, "iaas_storage_type_update")
}

func serverTypeExists(id uint64) bool {
	return slices.ContainsFunc(api.ServerTypes, func(s *api.ServerType) bool { return s.ID == id })
}

// ImageCreate stores an image of a known server type.
func (t *Txn) ImageCreate(i *api.Image) (*api.Image, error) {
	if !serverTypeExists(i.ServerTypeID) {
		return nil, fieldErr("server_type_id", "iaas_image_create_104", "Server type %d does not exist.", i.ServerTypeID)
	}
	return i, insertNew(t, Images, i)
}

// ImageUpdate replaces an image.
func (t *Txn) ImageUpdate(i *api.Image, expect uint64) (*api.Image, error) {
	if !serverTypeExists(i.ServerTypeID) {
		return nil, fieldErr("server_type_id", "iaas_image_update_104", "Server type %d does not exist.", i.ServerTypeID)
	}
	return i, replace(t, Images, i, expect, "iaas_image_update")
}

// RegionImageCreate makes an image available in a region.
func (t *Txn) RegionImageCreate(ri *api.RegionImage) (*api.RegionImage, error) {
	fe := api.FieldErrors{}
	if _, ok := t.Region(ri.RegionID); !ok {
		fe.Add("region_id", "iaas_region_image_create_102", "Region %d does not exist.", ri.RegionID)
	}
	if _, ok := t.Image(ri.ImageID); !ok {
		fe.Add("image_id", "iaas_region_image_create_104", "Image %d does not exist.", ri.ImageID)
	} else if t.ImageInRegion(ri.RegionID, ri.ImageID) {
		fe.Add("image_id", "iaas_region_image_create_105", "Image %d is already available in region %d.", ri.ImageID, ri.RegionID)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	return ri, insertNew(t, RegionImages, ri)
}

// RegionImageDelete withdraws an image from a region; existing VMs keep it.
func (t *Txn) RegionImageDelete(id uint64) error {
	return remove(t, RegionImages, id, "iaas_region_image_delete")
}

func (t *Txn) serverChecks(s *api.Server, method string) error {
	fe := api.FieldErrors{}
	if _, ok := t.Region(s.RegionID); !ok {
		fe.Add("region_id", code("iaas", "server", method, 102), "Region %d does not exist.", s.RegionID)
	}
	if !serverTypeExists(s.TypeID) {
		fe.Add("type_id", code("iaas", "server", method, 104), "Server type %d does not exist.", s.TypeID)
	}
	if _, ok := t.StorageType(s.StorageTypeID); !ok {
		fe.Add("storage_type_id", code("iaas", "server", method, 106), "Storage type %d does not exist.", s.StorageTypeID)
	}
	return fe.Err()
}

// ServerCreate stores a hypervisor.
func (t *Txn) ServerCreate(s *api.Server) (*api.Server, error) {
	if err := t.serverChecks(s, "create"); err != nil {
		return nil, err
	}
	return s, insertNew(t, Servers, s)
}

// ServerUpdate replaces a hypervisor; it never moves to another region.
func (t *Txn) ServerUpdate(s *api.Server, expect uint64) (*api.Server, error) {
	old, ok := t.Server(s.ID)
	if !ok {
		return nil, api.NotFound("iaas_server_update_001")
	}
	s.RegionID = old.RegionID
	if err := t.serverChecks(s, "update"); err != nil {
		return nil, err
	}
	return s, replace(t, Servers, s, expect, "iaas_server_update")
}

// InterfaceCreate stores an interface of an existing server, in its region.
func (t *Txn) ServerInterfaceCreate(i *api.ServerInterface) (*api.ServerInterface, error) {
	s, ok := t.Server(i.ServerID)
	if !ok {
		return nil, fieldErr("server_id", "iaas_interface_create_102", "Server %d does not exist.", i.ServerID)
	}
	i.RegionID = s.RegionID
	return i, insertNew(t, ServerInterfaces, i)
}

// InterfaceUpdate replaces an interface; it never moves to another server.
func (t *Txn) ServerInterfaceUpdate(i *api.ServerInterface, expect uint64) (*api.ServerInterface, error) {
	old, ok := t.ServerInterface(i.ID)
	if !ok {
		return nil, api.NotFound("iaas_interface_update_001")
	}
	i.ServerID, i.RegionID = old.ServerID, old.RegionID
	return i, replace(t, ServerInterfaces, i, expect, "iaas_interface_update")
}

// InterfaceDelete removes an interface.
func (t *Txn) ServerInterfaceDelete(id uint64) error {
	return remove(t, ServerInterfaces, id, "iaas_interface_delete")
}

// routerChecks checks a router to be stored; old is the router it replaces
// (nil on create).
func (t *Txn) routerChecks(r, old *api.Router, method string) error {
	fe := api.FieldErrors{}
	if _, ok := t.Region(r.RegionID); !ok {
		fe.Add("region_id", code("iaas", "router", method, 102), "Region %d does not exist.", r.RegionID)
	}
	seen := map[uint64]bool{}
	for _, id := range r.FloatingSubnetIDs {
		// The region's own address space: a subnet of the global member
		// that is no project's. Another member's subnet (or a project's)
		// would have new projects take their public addresses inside it.
		b, ok := t.IPBlock(id)
		if !ok || b.Dialect != api.DialectCloudCIX || b.ParentID == 0 || seen[id] || b.MemberID != api.GlobalMemberID || b.VirtualRouterID != 0 {
			fe.Add("floating_subnet_ids", code("iaas", "router", method, 104), "Subnet %d does not exist, is not a subnet of the region (the global member's, no project's) or is listed twice.", id)
			break
		}
		seen[id] = true
	}
	// From Rules7 a floating subnet is one router's: two routers listing
	// it (of one region or two) would hand out its addresses to their
	// virtual routers and NAT as if each had it alone. Only a subnet the
	// command adds is checked, so a router that shares one from before
	// stays updatable (its agent's reports included).
	if t.since(Rules7) {
		for _, id := range r.FloatingSubnetIDs {
			if old != nil && slices.Contains(old.FloatingSubnetIDs, id) {
				continue
			}
			if o, ok := t.otherFloatingSubnetRouter(id, r.ID); ok {
				fe.Add("floating_subnet_ids", code("iaas", "router", method, 107),
					"Subnet %d is already a floating subnet of router %d; a floating subnet is one router's: remove it there first.", id, o.ID)
				break
			}
		}
	}
	// From Rules7 a floating subnet stays a router's while virtual routers
	// (their public address) or VMs (their NAT addresses) hold addresses
	// in it: removed, the router would keep them on a subnet it no longer
	// has, and the next router to list it would hand them out again.
	if old != nil && t.since(Rules7) {
		for _, id := range old.FloatingSubnetIDs {
			if slices.Contains(r.FloatingSubnetIDs, id) {
				continue
			}
			// Shared from before Rules7: the holders may be the other
			// router's, which keeps the subnet (and its rows stay taken).
			if _, shared := t.otherFloatingSubnetRouter(id, r.ID); shared {
				continue
			}
			if n, holder := t.floatingHolders(id); n > 0 {
				fe.Add("floating_subnet_ids", code("iaas", "router", method, 108),
					"Subnet %d cannot leave the router: %d of its addresses are held by virtual routers and VMs (%s among them); close them first.", id, n, holder)
				break
			}
		}
	}
	if r.Capacity != nil && *r.Capacity < len(t.liveVRsOn(r.ID)) {
		fe.Add("capacity", code("iaas", "router", method, 105), "The router already hosts %d virtual routers.", len(t.liveVRsOn(r.ID)))
	}
	return fe.Err()
}

// RouterCreate stores a physical router.
func (t *Txn) RouterCreate(r *api.Router) (*api.Router, error) {
	if err := t.routerChecks(r, nil, "create"); err != nil {
		return nil, err
	}
	return r, insertNew(t, Routers, r)
}

// RouterUpdate replaces a physical router; it never moves to another region.
func (t *Txn) RouterUpdate(r *api.Router, expect uint64) (*api.Router, error) {
	old, ok := t.Router(r.ID)
	if !ok {
		return nil, api.NotFound("iaas_router_update_001")
	}
	r.RegionID = old.RegionID
	if err := t.routerChecks(r, old, "update"); err != nil {
		return nil, err
	}
	return r, replace(t, Routers, r, expect, "iaas_router_update")
}

// liveVRsOn returns the non-CLOSED virtual routers of a router.
func (r *ReadTxn) liveVRsOn(router uint64) []*api.VirtualRouter {
	var out []*api.VirtualRouter
	for _, v := range r.VirtualRoutersOnRouter(router) {
		if v.State != api.StateClosed {
			out = append(out, v)
		}
	}
	return out
}

// RouterCapacityAvailable is capacity − non-CLOSED virtual routers; ok is
// false for a phantom router (unlimited).
func (r *ReadTxn) RouterCapacityAvailable(rt *api.Router) (n int, ok bool) {
	if rt.Capacity == nil {
		return 0, false
	}
	return *rt.Capacity - len(r.liveVRsOn(rt.ID)), true
}
