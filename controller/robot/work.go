// Package robot is the controller side of the agents' work: the complete
// desired specs an agent builds from (GET /v1/agent/work), the CloudCIX
// run_robot listing, and the leader's heartbeat tracker that marks agents
// down. It reads state; it never writes it (writes are commands).
package robot

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// WorkTables are the tables a work query depends on: a blocking query
// on them wakes when anything an agent builds from changes.
var WorkTables = []string{state.VMs, state.VirtualRouters, state.Storages, state.IPAddresses, state.IPBlocks,
	state.Projects, state.Servers, state.Routers, state.Images, state.StorageTypes, state.VPNs, state.Snapshots, state.Backups}

// Work returns everything that is not CLOSED on a server (its VMs) and a
// router (its virtual routers). A zero id stands for a role the caller
// does not have.
func Work(r *state.ReadTxn, serverID, routerID uint64) api.Work {
	w := api.Work{Index: r.MaxIndex(WorkTables...), Routers: []api.RouterSpec{}, VMs: []api.VMSpec{}}
	if routerID != 0 {
		for _, vr := range r.VirtualRoutersOnRouter(routerID) {
			if vr.State == api.StateClosed {
				continue
			}
			w.Routers = append(w.Routers, RouterSpec(r, vr))
		}
	}
	if serverID != 0 {
		for _, vm := range r.VMsOnServer(serverID) {
			if vm.State == api.StateClosed {
				continue
			}
			w.VMs = append(w.VMs, VMSpec(r, vm))
		}
	}
	return w
}

// gatewayRange is a subnet's address range in gateway notation.
func gatewayRange(b *api.IPBlock) string {
	p, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return b.CIDR
	}
	if g, err := netip.ParseAddr(b.Gateway); err == nil && p.Contains(g) {
		return netip.PrefixFrom(g, p.Bits()).String()
	}
	return p.String()
}

func withPrefix(addr string, b *api.IPBlock) string {
	p, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return addr
	}
	return fmt.Sprintf("%s/%d", addr, p.Bits())
}

func splitDNS(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// vmAddrs are a project's VM addresses by subnet.
type vmAddrs struct {
	bySubnet map[uint64][]*api.IPAddress
	vms      map[uint64]*api.VM
}

func projectAddrs(r *state.ReadTxn, p *api.Project) vmAddrs {
	v := vmAddrs{bySubnet: map[uint64][]*api.IPAddress{}, vms: map[uint64]*api.VM{}}
	for _, vm := range r.VMsOfProject(p.ID) {
		if vm.State != api.StateClosed {
			v.vms[vm.ID] = vm
		}
	}
	for _, s := range r.ProjectSubnets(p) {
		for _, a := range r.IPAddressList(s.ID) {
			if a.VMID != 0 && v.vms[a.VMID] != nil && !a.Deallocated {
				v.bySubnet[s.ID] = append(v.bySubnet[s.ID], a)
			}
		}
	}
	return v
}

// segmentVTEPs are the VTEPs of the hypervisors with VMs on a subnet,
// except the server skip.
func segmentVTEPs(r *state.ReadTxn, v vmAddrs, subnet, skip uint64) []string {
	seen := map[string]bool{}
	for _, a := range v.bySubnet[subnet] {
		vm := v.vms[a.VMID]
		if vm.ServerID == skip {
			continue
		}
		if s, ok := r.Server(vm.ServerID); ok && s.VTEP != "" {
			seen[s.VTEP] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RouterSpec builds the spec of a virtual router.
func RouterSpec(r *state.ReadTxn, vr *api.VirtualRouter) api.RouterSpec {
	spec := api.RouterSpec{ID: vr.ID, ProjectID: vr.ProjectID, State: vr.State, Generation: vr.Generation,
		NAT: []api.NATSpec{}, Subnets: []api.RouterSubnetSpec{}, FirewallRules: []api.FirewallRuleSpec{}, Metadata: []api.MetadataSpec{},
		VPNs: vpnSpecs(r, vr.ID)}
	if pub, ok := r.IPAddress(vr.IPAddressID); ok {
		if b, ok := r.IPBlock(pub.BlockID); ok {
			spec.PublicIP, spec.PublicGateway = withPrefix(pub.Address, b), b.Gateway
		}
	}
	p, ok := r.Project(vr.ProjectID)
	if !ok {
		return spec
	}
	v := projectAddrs(r, p)
	for _, s := range r.ProjectSubnets(p) {
		sub := api.RouterSubnetSpec{ID: s.ID, AddressRange: gatewayRange(s), VLAN: s.VLAN, VNI: s.VXLAN,
			VTEPs: segmentVTEPs(r, v, s.ID, 0), DNS: []string{}, DHCP: []api.DHCPHostSpec{}}
		for _, a := range v.bySubnet[s.ID] {
			vm := v.vms[a.VMID]
			if len(sub.DNS) == 0 {
				sub.DNS = append(sub.DNS, splitDNS(vm.DNS)...)
			}
			if a.MACAddress != "" {
				sub.DHCP = append(sub.DHCP, api.DHCPHostSpec{MAC: a.MACAddress, IP: a.Address, Hostname: vm.Name})
			}
			if a.PublicIPID != 0 {
				if pub, ok := r.IPAddress(a.PublicIPID); ok {
					n := api.NATSpec{Private: a.Address, Public: pub.Address}
					// Its own floating subnet's length: a router's NAT
					// addresses may come from several floating subnets.
					if b, ok := r.IPBlock(pub.BlockID); ok {
						if p, err := netip.ParsePrefix(b.CIDR); err == nil {
							n.PublicPrefixLength = p.Bits()
						}
					}
					spec.NAT = append(spec.NAT, n)
				}
			}
		}
		spec.Subnets = append(spec.Subnets, sub)
	}
	for _, fr := range vr.FirewallRules {
		spec.FirewallRules = append(spec.FirewallRules, api.FirewallRuleSpec{Order: fr.Order, Allow: fr.Allow,
			Protocol: fr.Protocol, Source: fr.Source, Destination: fr.Destination, Port: fr.Port,
			Log: fr.PCILogging || fr.DebugLogging, Description: fr.Description})
	}
	sort.SliceStable(spec.FirewallRules, func(i, j int) bool { return spec.FirewallRules[i].Order < spec.FirewallRules[j].Order })
	ids := make([]uint64, 0, len(v.vms))
	for id := range v.vms {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if md, ok := metadata(r, v.vms[id]); ok {
			spec.Metadata = append(spec.Metadata, md)
		}
	}
	return spec
}

// vpnSpecs are the VPNs of a virtual router, by id, with their pre-shared
// keys: the work endpoint answers only robots of the router's region.
func vpnSpecs(r *state.ReadTxn, vr uint64) []api.VPNSpec {
	out := []api.VPNSpec{}
	for _, rec := range r.VPNsOfVirtualRouter(vr) {
		v := rec.VPN
		spec := api.VPNSpec{ID: v.ID, STIFNumber: v.STIFNumber, IKEVersion: v.IKEVersion,
			IKEAuthentication: v.IKEAuthentication, IKEEncryption: v.IKEEncryption, IKEDHGroups: v.IKEDHGroups,
			IKELifetime: v.IKELifetime, IKEGatewayType: v.IKEGatewayType, IKEGatewayValue: v.IKEGatewayValue,
			IKELocalIdentifier: v.IKELocalIdentifier, IKERemoteIdentifier: v.IKERemoteIdentifier,
			PreSharedKey: rec.PreSharedKey, IPSecAuthentication: v.IPSecAuthentication, IPSecEncryption: v.IPSecEncryption,
			IPSecPFSGroups: v.IPSecPFSGroups, IPSecEstablishTime: v.IPSecEstablishTime, IPSecLifetime: v.IPSecLifetime,
			TrafficSelector: v.TrafficSelector, Routes: []api.VPNRouteSpec{}}
		for _, rt := range v.Routes {
			local := ""
			if b, ok := r.IPBlock(rt.LocalSubnetID); ok {
				if p, err := netip.ParsePrefix(b.CIDR); err == nil {
					local = p.Masked().String()
				}
			}
			spec.Routes = append(spec.Routes, api.VPNRouteSpec{LocalSubnet: local, RemoteSubnet: rt.RemoteSubnet})
		}
		out = append(out, spec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// metadata is what a VM is told about itself. Its address is its first
// address on the gateway subnet (else its first address).
func metadata(r *state.ReadTxn, vm *api.VM) (api.MetadataSpec, bool) {
	private, public := r.VMAddresses(vm)
	md := api.MetadataSpec{InstanceID: fmt.Sprintf("%d_%d", vm.ProjectID, vm.ID), Hostname: vm.Name,
		Userdata: vm.Userdata, DNS: splitDNS(vm.DNS), IPAddresses: []api.MetadataAddress{}}
	if vm.PublicKey != "" {
		md.PublicKeys = []string{vm.PublicKey}
	}
	onGateway := false
	for _, a := range private {
		b, ok := r.IPBlock(a.BlockID)
		if !ok {
			continue
		}
		ma := api.MetadataAddress{PrivateIP: a.Address, Subnet: gatewayRange(b), MAC: a.MACAddress, Gateway: b.Gateway}
		if pub := public[a.ID]; pub != nil {
			ma.PublicIP = pub.Address
		}
		md.IPAddresses = append(md.IPAddresses, ma)
		if md.Address == "" || (b.ID == vm.GatewaySubnetID && !onGateway) {
			md.Address, onGateway = a.Address, b.ID == vm.GatewaySubnetID
		}
	}
	return md, md.Address != ""
}

// VMSpec builds the spec of a VM.
func VMSpec(r *state.ReadTxn, vm *api.VM) api.VMSpec {
	spec := api.VMSpec{ID: vm.ID, ProjectID: vm.ProjectID, Name: vm.Name, State: vm.State, Generation: vm.Generation,
		CPU: vm.CPU, RAMMB: vm.RAM * 1024, Storages: []api.StorageSpec{}, NICs: []api.NICSpec{},
		Metadata:  api.MetadataSpec{IPAddresses: []api.MetadataAddress{}},
		Snapshots: []api.SnapshotSpec{}, Backups: []api.BackupSpec{}}
	for _, s := range r.SnapshotsOfVM(vm.ID) {
		if s.State != api.StateClosed {
			spec.Snapshots = append(spec.Snapshots, api.SnapshotSpec{ID: s.ID, Name: s.Name, ParentID: s.ParentID,
				Active: s.Active, RemoveSubtree: s.RemoveSubtree, State: s.State, Generation: s.Generation})
		}
	}
	for _, b := range r.BackupsOfVM(vm.ID) {
		if b.State != api.StateClosed {
			spec.Backups = append(spec.Backups, api.BackupSpec{ID: b.ID, Name: b.Name, Repository: b.Repository,
				State: b.State, Generation: b.Generation})
		}
	}
	slices.SortFunc(spec.Snapshots, func(a, b api.SnapshotSpec) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(spec.Backups, func(a, b api.BackupSpec) int { return cmp.Compare(a.ID, b.ID) })
	if img, ok := r.Image(vm.ImageID); ok {
		spec.Image = api.ImageSpec{ID: img.ID, Filename: img.Filename, OSVariant: img.OSVariant, CloudInit: img.CloudInit, Windows: img.Windows,
			Source: img.Source, SHA256: img.SHA256}
	}
	if st, ok := r.StorageType(vm.StorageTypeID); ok {
		spec.StorageType = st.Name
	}
	for _, s := range r.StoragesOfVM(vm.ID) {
		spec.Storages = append(spec.Storages, api.StorageSpec{ID: s.ID, Name: s.Name, GB: s.GB, Primary: s.Primary})
	}
	sort.SliceStable(spec.Storages, func(i, j int) bool { return spec.Storages[i].Primary && !spec.Storages[j].Primary })
	p, ok := r.Project(vm.ProjectID)
	if !ok {
		return spec
	}
	var routerVTEP string
	if vr, ok := r.VirtualRouter(p.VirtualRouterID); ok {
		if rt, ok := r.Router(vr.RouterID); ok {
			routerVTEP = rt.VTEP
		}
	}
	v := projectAddrs(r, p)
	private, _ := r.VMAddresses(vm)
	bySubnet := map[uint64]*api.NICSpec{}
	var order []uint64
	for _, a := range private {
		nic := bySubnet[a.BlockID]
		if nic == nil {
			b, ok := r.IPBlock(a.BlockID)
			if !ok {
				continue
			}
			vteps := segmentVTEPs(r, v, b.ID, vm.ServerID)
			if routerVTEP != "" && !slices.Contains(vteps, routerVTEP) {
				vteps = append(vteps, routerVTEP)
				sort.Strings(vteps)
			}
			nic = &api.NICSpec{SubnetID: b.ID, MAC: a.MACAddress, Gateway: b.Gateway, VLAN: b.VLAN, VNI: b.VXLAN, VTEPs: vteps}
			bySubnet[b.ID] = nic
			order = append(order, b.ID)
		}
		if b, ok := r.IPBlock(a.BlockID); ok {
			nic.Addresses = append(nic.Addresses, withPrefix(a.Address, b))
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i] == vm.GatewaySubnetID && order[j] != vm.GatewaySubnetID })
	for _, id := range order {
		spec.NICs = append(spec.NICs, *bySubnet[id])
	}
	if md, ok := metadata(r, vm); ok {
		spec.Metadata = md
	}
	return spec
}

// WorkHashLen is the length of a WorkHash in hex digits.
const WorkHashLen = 32

// WorkHash is the X-Regent-Content-Hash of a work answer: a digest of its
// routers and VMs, without the index, so that two answers with the same
// specs have the same hash whatever else changed in the region. The specs
// render deterministically (ordered lists, encoding/json sorts map keys).
func WorkHash(w api.Work) string {
	w.Index = 0
	b, err := json.Marshal(w)
	if err != nil {
		// A spec that cannot be encoded cannot be answered either; a hash
		// no agent holds makes the query answer, and the answer fail loudly.
		return strings.Repeat("0", WorkHashLen)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:WorkHashLen/2])
}

// ValidWorkHash reports whether s has the form of a WorkHash.
func ValidWorkHash(s string) bool {
	if len(s) != WorkHashLen {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
