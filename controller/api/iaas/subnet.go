package iaas

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/ipam"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// SubnetInput is the body of subnet create and update. address_range is in
// gateway notation ("10.0.0.1/24": the network 10.0.0.0/24, gateway
// 10.0.0.1). allocation_id is required on create; parent_id names a parent
// subnet of the same allocation. On update allocation_id and parent_id may
// be sent only with their current value, and address_range may change its
// gateway (host part) only.
type SubnetInput = wire.SubnetInput

// SubnetView is a subnet as the API shows it.
type SubnetView = wire.SubnetView

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// rawRange is a block's address_range as a prefix keeping the gateway as
// host part (the block's network when it has no gateway inside it).
func rawRange(b *wire.IPBlock) netip.Prefix {
	p := netipPrefix(b.CIDR)
	if b.Gateway != "" {
		if g, err := netip.ParseAddr(b.Gateway); err == nil && p.Contains(g) {
			return netip.PrefixFrom(g, p.Bits())
		}
	}
	return p
}

func subnetView(r *state.ReadTxn, b *wire.IPBlock) *SubnetView {
	var parent *uint64
	if p, ok := r.IPBlock(b.ParentID); ok && !isAllocation(p) {
		parent = &p.ID
	}
	// The engine's count of live (not soft-deallocated) addresses, kept
	// in the transactions that write the address rows and rebuilt from
	// them on restore: O(1), where counting the rows walked them all.
	ips := 0
	if u, ok := r.IPBlockUtilisation(b.ID); ok {
		ips = int(u.Allocated.Lo) // one per address row: far below 2^63
	}
	return &SubnetView{Meta: b.Meta, AddressRange: rawRange(b).String(), Gateway: b.Gateway,
		AllocationID: allocationOf(r, b), ParentID: parent, MemberID: b.MemberID, AddressID: b.MemberID, Name: b.Name,
		VLAN: b.VLAN, VXLAN: b.VXLAN, VirtualRouterID: b.VirtualRouterID, RouterID: b.RouterID,
		IPsInUse: ips, SubnetsInUse: len(r.IPBlockChildren(b.ID)), Modified: b.Modified}
}

// parseRange parses an address_range in gateway notation; the gateway must
// be a usable address of the range (not its network or broadcast address
// when it has two or more host bits).
func parseRange(fe wire.FieldErrors, q *api.Request, s string, n int) (netip.Prefix, bool) {
	raw, err := netx.ParsePrefixRawUnmapped(s)
	if errors.Is(err, netx.ErrMapped) {
		fe.Add("address_range", q.Code(124), "address_range %q is an IPv4-mapped IPv6 range; a subnet is IPv4 or IPv6: write IPv4 ranges in IPv4 notation.", s)
		return netip.Prefix{}, false
	}
	if err != nil {
		fe.Add("address_range", q.Code(n), "address_range %q is not a valid CIDR in gateway notation, such as 10.0.0.1/24.", s)
		return netip.Prefix{}, false
	}
	res := ipam.CloudCIX.Reservation(raw.Masked())
	if (res.Network && raw.Addr() == netx.First(raw)) || (res.Broadcast && raw.Addr() == netx.Last(raw)) {
		fe.Add("address_range", q.Code(n), "The host part of address_range is the gateway; it must not be the network or broadcast address of the range.")
		return netip.Prefix{}, false
	}
	return raw, true
}

// Codes (create): 101 address_range, 102 allocation_id, 103 parent_id,
// 104 name, 105 vlan, 106 vxlan, 107 the parent holds addresses; 113–116
// address_range refused inside the allocation (version, outside,
// duplicate, overlap), 117–121 inside the parent subnet (version, same as
// parent, outside, duplicate, overlap), 122 virtual_router_id (set only by
// /iaas/cloud/). Update: 101, 104–106, 108 a field that cannot change, 109
// the new gateway is an allocated address, 110 the segment of a cloud
// subnet, 118 the new address_range equals the parent subnet's or a
// child's, 122 virtual_router_id. Both: 123 router_id names no router (a
// foreign key, cloudcix-facts §5.7; an update checks only a new value),
// 124 address_range is IPv4-mapped IPv6 (::ffff:10.0.0.1/120). Create
// also 125: parent_id is a project's subnet (virtual_router_id set). Delete:
// 101 child subnets, 102 IP addresses, 103 a project's subnet, 104 a
// router's floating subnet.
//
// vlan and vxlan of a subnet made here are the member's own records: only
// the subnets /iaas/cloud/ makes (virtual_router_id set) are a project's
// network (state.ProjectSubnets), so no member can put a subnet, or a VM,
// on a segment it chose.
func registerSubnet(a *api.API) {
	api.Register(a, api.Service[*wire.IPBlock]{
		App: App, Name: "subnet", Tables: []string{state.IPBlocks, state.IPAddresses},
		FilterView: true,
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"address_range": query.CIDR,
			"gateway": query.CIDR, "allocation_id": query.Number, "parent_id": query.Number, "member_id": query.Number,
			"address_id": query.Number, "name": query.String, "vlan": query.Number, "vxlan": query.Number,
			"virtual_router_id": query.Number, "router_id": query.Number, "ips_in_use": query.Number,
			"subnets_in_use": query.Number, "modified_by": query.Number}),
			Ordering:   []string{"id", "name", "address_range", "vlan", "created", "updated"},
			ZeroIsNull: []string{"virtual_router_id", "router_id"}},
		// The view's fields that are the stored block's (address_range
		// holds the gateway as host part, parent_id is null in an
		// allocation, the others are counted or looked up).
		Stored: api.StoredFields(map[string]string{"address_id": "member_id"}, "gateway", "member_id", "name",
			"vlan", "vxlan", "virtual_router_id", "router_id", "modified_by"),
		All:    func(r *state.ReadTxn) []*wire.IPBlock { return blocks(r, isSubnet) },
		AllFor: memberBlocks(isSubnet),
		Get:    subnet,
		Visible: func(q *api.Request, b *wire.IPBlock) bool {
			return owns(q, b.MemberID)
		},
		Expand: func(r *state.ReadTxn, b *wire.IPBlock) any { return subnetView(r, b) },
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in SubnetInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			var raw netip.Prefix
			rawOK := false
			if required(fe, q, "address_range", in.AddressRange != nil, 101) {
				raw, rawOK = parseRange(fe, q, *in.AddressRange, 101)
			}
			var alloc, container *wire.IPBlock
			if required(fe, q, "allocation_id", in.AllocationID != nil, 102) {
				if b, ok := allocation(q.Txn, *in.AllocationID); ok && owns(q, b.MemberID) {
					alloc, container = b, b
				} else {
					fe.Add("allocation_id", q.Code(102), "Allocation with id = '%d' doesn't exist", *in.AllocationID)
				}
			}
			if in.ParentID != nil && alloc != nil {
				if p, ok := subnet(q.Txn, *in.ParentID); ok && allocationOf(q.Txn, p) == alloc.ID {
					container = p
					if p.VirtualRouterID != 0 {
						fe.Add("parent_id", q.Code(125), "Subnet %d belongs to the virtual router of a cloud project: its VMs take its addresses, so it cannot have subnets.", p.ID)
					}
				} else {
					fe.Add("parent_id", q.Code(103), "Subnet with id = '%d' doesn't exist in allocation %d", *in.ParentID, alloc.ID)
				}
			}
			text(fe, q, "name", in.Name, 128, 104)
			validVLAN(fe, q, in.VLAN, in.VXLAN)
			if in.VirtualRouterID != nil && *in.VirtualRouterID != 0 {
				fe.Add("virtual_router_id", q.Code(122), "The subnets of a project's virtual router are made through /iaas/cloud/, which assigns their VLAN and VXLAN.")
			}
			checkRouter(fe, q, in.RouterID, 0)
			if err := fe.Err(); err != nil || !rawOK {
				return nil, err
			}
			if container != alloc && q.Txn.IPBlockHasAddresses(container.ID) {
				fe.Add("parent_id", q.Code(107), "The parent subnet holds IP addresses and cannot be subnetted.")
				return nil, fe.Err()
			}
			var siblings []netip.Prefix
			for _, s := range q.Txn.IPBlockChildren(container.ID) {
				siblings = append(siblings, rawRange(s))
			}
			isParent := container != alloc
			if r := ipam.CheckCloudCIXSubnet(raw, rawRange(container), isParent, siblings); r != ipam.SubnetOK {
				n := 113 + int(r) - int(ipam.SubnetVersion)
				if r > ipam.SubnetSameAsParent {
					n-- // an allocation has no same-as-parent rule
				}
				if isParent {
					n = 117 + int(r) - int(ipam.SubnetVersion)
				}
				fe.Add("address_range", q.Code(n), "address_range %s is refused inside %s: %s.", raw, rawRange(container), reason(r))
				return nil, fe.Err()
			}
			b := &wire.IPBlock{Dialect: wire.DialectCloudCIX, ParentID: container.ID, MemberID: alloc.MemberID,
				CIDR: raw.Masked().String(), Gateway: raw.Addr().String(), Generator: wire.GeneratorSequential}
			api.Set(&b.Name, in.Name)
			api.Set(&b.VLAN, in.VLAN)
			api.Set(&b.VXLAN, in.VXLAN)
			api.Set(&b.VirtualRouterID, in.VirtualRouterID)
			api.Set(&b.RouterID, in.RouterID)
			return q.Command(fsm.IPBlockCreateType, b)
		},
		Update: func(q *api.Request, cur *wire.IPBlock, partial bool) (*fsm.Command, error) {
			var in SubnetInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			b := *cur
			if !partial {
				b.Name, b.VLAN, b.VXLAN, b.VirtualRouterID, b.RouterID = "", 0, 0, 0, 0
			}
			if in.AddressRange != nil {
				if raw, ok := parseRange(fe, q, *in.AddressRange, 101); ok {
					if raw.Masked().String() != cur.CIDR {
						fe.Add("address_range", q.Code(108), "Only the gateway (host part) of address_range can change, not the network %s.", cur.CIDR)
					} else {
						b.Gateway = raw.Addr().String()
					}
				}
			} else if !partial {
				fe.Add("address_range", q.Code(101), "This field is required.")
			}
			if in.AllocationID != nil && *in.AllocationID != allocationOf(q.Txn, cur) {
				fe.Add("allocation_id", q.Code(108), "A subnet cannot move to another allocation.")
			}
			if in.ParentID != nil && *in.ParentID != cur.ParentID {
				fe.Add("parent_id", q.Code(108), "A subnet cannot move to another parent.")
			}
			text(fe, q, "name", in.Name, 128, 104)
			validVLAN(fe, q, in.VLAN, in.VXLAN)
			checkRouter(fe, q, in.RouterID, cur.RouterID)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			if cur.VirtualRouterID != 0 && (b.Gateway != cur.Gateway || (in.VLAN != nil && *in.VLAN != cur.VLAN) ||
				(in.VXLAN != nil && *in.VXLAN != cur.VXLAN) || (in.VirtualRouterID != nil && *in.VirtualRouterID != cur.VirtualRouterID) ||
				(in.RouterID != nil && *in.RouterID != cur.RouterID) || (!partial && (in.VLAN == nil || in.VXLAN == nil || in.VirtualRouterID == nil || in.RouterID == nil))) {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(110), "Subnet %d belongs to the virtual router of a cloud project: its gateway and segment are managed through /iaas/cloud/ (only its name changes here).", cur.ID)
			}
			if cur.VirtualRouterID == 0 && in.VirtualRouterID != nil && *in.VirtualRouterID != 0 {
				fe.Add("virtual_router_id", q.Code(122), "The subnets of a project's virtual router are made through /iaas/cloud/, which assigns their VLAN and VXLAN.")
				return nil, fe.Err()
			}
			if b.Gateway != cur.Gateway {
				if ip, ok := q.Txn.IPAddressIn(cur.ID, b.Gateway); ok {
					fe.Add("address_range", q.Code(109), "The new gateway %s is held by IP address %d.", b.Gateway, ip.ID)
					return nil, fe.Err()
				}
				// The network is unchanged, so of CloudCIX's subnet rules
				// only "same as parent" (118), which compares address_range
				// with its host part, can newly fail: against the parent
				// subnet, or with this subnet as the parent of a child.
				raw := rawRange(&b)
				if p, ok := subnet(q.Txn, cur.ParentID); ok && ipam.CheckCloudCIXSubnet(raw, rawRange(p), true, nil) == ipam.SubnetSameAsParent {
					fe.Add("address_range", q.Code(118), "address_range %s would be the same as the parent subnet's.", raw)
				}
				for _, c := range q.Txn.IPBlockChildren(cur.ID) {
					if ipam.CheckCloudCIXSubnet(rawRange(c), raw, true, nil) == ipam.SubnetSameAsParent {
						fe.Add("address_range", q.Code(118), "address_range %s would be the same as child subnet %d's.", raw, c.ID)
						break
					}
				}
				if err := fe.Err(); err != nil {
					return nil, err
				}
			}
			api.Set(&b.Name, in.Name)
			api.Set(&b.VLAN, in.VLAN)
			api.Set(&b.VXLAN, in.VXLAN)
			api.Set(&b.VirtualRouterID, in.VirtualRouterID)
			api.Set(&b.RouterID, in.RouterID)
			return q.Command(fsm.IPBlockUpdateType, &b)
		},
		Delete: func(q *api.Request, cur *wire.IPBlock) (*fsm.Command, error) {
			if cur.VirtualRouterID != 0 {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(103), "Subnet %d belongs to the virtual router of a cloud project.", cur.ID)
			}
			if n := len(q.Txn.IPBlockChildren(cur.ID)); n > 0 {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(101), "The subnet has %d child subnet(s); delete them first.", n)
			}
			if q.Txn.IPBlockHasAddresses(cur.ID) {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(102), "The subnet holds %d IP address(es); delete them first.", q.Txn.IPBlockHeld(cur.ID))
			}
			if rt, ok := q.Txn.FloatingSubnetRouter(cur.ID); ok {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(104), "The subnet is a floating subnet of router %d; remove it from the router's floating_subnet_ids first.", rt.ID)
			}
			return q.Command(fsm.IPBlockDeleteType, fsm.IDPayload{ID: cur.ID})
		},
		StateErr: subnetStateErr,
	})
}

func validVLAN(fe wire.FieldErrors, q *api.Request, vlan, vxlan *uint32) {
	if vlan != nil && *vlan > 4094 {
		fe.Add("vlan", q.Code(105), "vlan must be between 0 and 4094.")
	}
	if vxlan != nil && *vxlan > 1<<24-1 {
		fe.Add("vxlan", q.Code(106), "vxlan must be between 0 and 16777215.")
	}
}

func reason(r ipam.CloudCIXSubnetReason) string {
	switch r {
	case ipam.SubnetVersion:
		return "it is not of the same IP version"
	case ipam.SubnetSameAsParent:
		return "it is the same as the parent subnet"
	case ipam.SubnetOutside:
		return "it is not inside the range"
	case ipam.SubnetDuplicate:
		return "another subnet has the same address_range"
	}
	return "it overlaps another subnet"
}

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// checkRouter: router_id, when given, non-zero and not the subnet's current
// one (had), must name a router.
func checkRouter(fe wire.FieldErrors, q *api.Request, id *uint64, had uint64) {
	if id == nil || *id == 0 || *id == had {
		return
	}
	if _, ok := q.Txn.Router(*id); !ok {
		fe.Add("router_id", q.Code(123), "Router with id = '%d' doesn't exist", *id)
	}
}

// subnetRaced is the subnet's own words for what state refuses a delete
// for when the handler's checks passed: gained while the delete waited.
var subnetRaced = map[string]struct {
	n      int
	detail string
}{
	"ipam_block_delete_101": {101, "The subnet gained child subnet(s) meanwhile; delete them first."},
	"ipam_block_delete_102": {102, "The subnet gained IP address(es) meanwhile; delete them first."},
	"ipam_block_delete_104": {104, "The subnet became a floating subnet of a router meanwhile; remove it from the router's floating_subnet_ids first."},
}

// subnetStateErr maps state's refusals met inside the FSM to the subnet's
// own codes: router_id (the router deleted meanwhile); on update, an
// address_range the same as the parent's or a child's (118: the parent or
// the child changed its gateway meanwhile); on delete, the handler's own
// 101, 102 and 104 (a child subnet, an address, or the router's floating
// subnet ids gained meanwhile). Other errors pass unchanged (the subnet
// deleted meanwhile: Service.stateErr).
func subnetStateErr(q *api.Request, err error) error {
	var e *wire.Error
	if !errors.As(err, &e) {
		return err
	}
	switch code := stateCode(e); code {
	case "ipam_block_delete_101", "ipam_block_delete_102", "ipam_block_delete_104":
		r := subnetRaced[code]
		return wire.Errorf(e.Status, q.Code(r.n), "%s", r.detail)
	}
	fe := wire.FieldErrors{}
	switch stateCode(e) {
	case fmt.Sprintf("ipam_block_%s_123", q.Action):
		fe.Add("router_id", q.Code(123), "%s", e.Errors["router_id"].Detail)
	case "ipam_block_update_116":
		fe.Add("address_range", q.Code(118), "%s", e.Errors["cidr"].Detail)
	default:
		return err
	}
	return fe.Err()
}
