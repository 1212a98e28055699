package iaas

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/ipam"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// IPAddressInput is the body of POST /iaas/ip_address/. Without address
// the subnet's next free address is allocated.
type IPAddressInput = wire.IPAddressInput

// IPAddressView is an IP address as the API shows it: with CloudCIX's
// nested public_ip {id, address} (null when it has none) and subnet
// {id, name, address_range, vlan, vxlan} besides their ids.
type IPAddressView = wire.IPAddressView

// ipAddressViews renders the addresses of one request: a list's addresses
// come subnet by subnet, so the nested subnet of the last one is reused
// (its lookup and address_range text were half of a list's cost).
func ipAddressViews(r *state.ReadTxn) func(*wire.IPAddress) any {
	var last *wire.SubnetRef
	return func(ip *wire.IPAddress) any {
		v := ipAddressViewWith(r, ip, last)
		if v.Subnet != nil {
			last = v.Subnet
		}
		return v
	}
}

// ipAddressViewWith renders ip, taking its nested subnet from cached when
// that is its subnet.
func ipAddressViewWith(r *state.ReadTxn, ip *wire.IPAddress, cached *wire.SubnetRef) *IPAddressView {
	v := &IPAddressView{Meta: ip.Meta, Address: ip.Address, Version: ip.Version, SubnetID: ip.BlockID,
		MemberID: ip.MemberID, Name: ip.Name, MACAddress: ip.MACAddress, VMID: ip.VMID, PublicIPID: ip.PublicIPID,
		Modified: ip.Modified}
	// Most addresses have no NAT partner: no lookup then (a list renders
	// every address before it filters).
	if ip.PublicIPID != 0 {
		if p, ok := r.IPAddress(ip.PublicIPID); ok {
			v.PublicIP = &wire.PubRef{ID: p.ID, Address: p.Address}
		}
	}
	if cached != nil && cached.ID == ip.BlockID {
		v.Subnet = cached
	} else if b, ok := r.IPBlock(ip.BlockID); ok {
		v.Subnet = &wire.SubnetRef{ID: b.ID, Name: b.Name, AddressRange: rawRange(b).String(), VLAN: b.VLAN, VXLAN: b.VXLAN,
			VirtualRouterID: b.VirtualRouterID}
	}
	return v
}

// ipAddresses is every live address of the CloudCIX subnets.
func ipAddresses(r *state.ReadTxn) []*wire.IPAddress {
	var all []*wire.IPAddress
	for _, b := range blocks(r, isSubnet) {
		all = r.AppendIPAddresses(all, b.ID)
	}
	out := all[:0]
	for _, ip := range all {
		if !ip.Deallocated {
			out = append(out, ip)
		}
	}
	return out
}

// cloudcixIP returns the live (not soft-deallocated) address id of a
// cloudcix subnet.
func cloudcixIP(r *state.ReadTxn, id uint64) (*wire.IPAddress, bool) {
	ip, ok := r.IPAddress(id)
	if !ok || ip.Deallocated {
		return nil, false
	}
	if _, ok := subnet(r, ip.BlockID); !ok {
		return nil, false
	}
	return ip, true
}

// Update (PUT, PATCH) changes name, mac_address, vm_id and public_ip_id;
// subnet_id and address are immutable and may be sent only with their
// current value (110). Delete frees the address at once in one command (CloudCIX
// deletes are final; the soft deallocation is Melange's).
//
// Codes (create): 101 subnet_id, 102 address, 103 mac_address, 104 name,
// 105 public_ip_id, 110 public_ip_id already the public IP of another
// address (public_ip is one-to-one), 111 vm_id (a VM's addresses are made
// with the VM), 112 address is IPv4-mapped IPv6 (::ffff:10.0.0.5); 422 106 the subnet has child subnets, 107 the subnet is
// full; 409 108 the address is held, 109 reserved (network, broadcast,
// gateway). Update: 103 mac_address, 104 name, 105 public_ip_id (unknown,
// not the caller's, or the address itself), 106 public_ip_id already the
// public IP of another address, 110 subnet_id or address changed, 111
// vm_id changed, or the MAC address or public IP of a VM's address (the
// compute service's: its virtual router and the VM's NICs follow them).
func registerIPAddress(a *api.API) {
	api.Register(a, api.Service[*wire.IPAddress]{
		App: App, Name: "ip_address", Tables: []string{state.IPAddresses},
		FilterView: true,
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"address": query.CIDR, "subnet_id": query.Number,
			"member_id": query.Number, "name": query.String, "mac_address": query.String, "vm_id": query.Number,
			"version": query.Number, "public_ip_id": query.Number, "modified_by": query.Number,
			"subnet__virtual_router_id": query.Number}),
			Ordering:   []string{"id", "address", "name", "created", "updated"},
			ZeroIsNull: []string{"vm_id", "public_ip_id", "subnet__virtual_router_id"}},
		// The view's fields that are the stored address's (subnet and
		// public_ip are looked up; subnet__… is the subnet's).
		Stored: api.StoredFields(map[string]string{"subnet_id": "block_id"}, "address", "member_id", "name",
			"mac_address", "vm_id", "version", "public_ip_id", "modified_by"),
		All: ipAddresses,
		// A member's addresses from the member index: the same rows as
		// All's of that member (live, in a CloudCIX subnet).
		AllFor: func(q *api.Request) []*wire.IPAddress {
			if seesAll(q) {
				return ipAddresses(q.Txn)
			}
			var out []*wire.IPAddress
			for _, ip := range q.Txn.IPAddressListByMember(q.P.MemberID) {
				if _, ok := subnet(q.Txn, ip.BlockID); ok && !ip.Deallocated {
					out = append(out, ip)
				}
			}
			return out
		},
		Get: cloudcixIP,
		Visible: func(q *api.Request, ip *wire.IPAddress) bool {
			return owns(q, ip.MemberID)
		},
		Expander: ipAddressViews,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in IPAddressInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			var sn *wire.IPBlock
			if required(fe, q, "subnet_id", in.SubnetID != nil, 101) {
				if b, ok := subnet(q.Txn, *in.SubnetID); ok && owns(q, b.MemberID) {
					sn = b
				} else {
					fe.Add("subnet_id", q.Code(101), "Subnet with id = '%d' doesn't exist", *in.SubnetID)
				}
			}
			ip := &wire.IPAddress{}
			if in.MACAddress != nil && *in.MACAddress != "" {
				m, err := netx.ParseMAC(*in.MACAddress)
				if err != nil {
					fe.Add("mac_address", q.Code(103), "mac_address %q is not a valid MAC address.", *in.MACAddress)
				} else {
					ip.MACAddress = m.String()
				}
			}
			text(fe, q, "name", in.Name, 64, 104)
			api.Set(&ip.Name, in.Name)
			if in.VMID != nil && *in.VMID != 0 {
				fe.Add("vm_id", q.Code(111), "A VM's addresses are made with the VM (/iaas/cloud/, /iaas/vm/), not here.")
			}
			if in.PublicIPID != nil && *in.PublicIPID != 0 {
				if p, ok := cloudcixIP(q.Txn, *in.PublicIPID); !ok || !owns(q, p.MemberID) {
					fe.Add("public_ip_id", q.Code(105), "IP address with id = '%d' doesn't exist", *in.PublicIPID)
				} else if o := q.Txn.IPAddressesByPublicIP(p.ID); len(o) > 0 {
					fe.Add("public_ip_id", q.Code(110), "IP address %s is already the public IP of address %d.", p.Address, o[0].ID)
				} else {
					ip.PublicIPID = p.ID
				}
			}
			if in.Address != nil && *in.Address != "" && sn != nil {
				addr, err := netx.ParseAddrUnmapped(*in.Address)
				cidr := netipPrefix(sn.CIDR)
				switch {
				case errors.Is(err, netx.ErrMapped):
					fe.Add("address", q.Code(112), "address %q is an IPv4-mapped IPv6 address; write IPv4 addresses in IPv4 notation.", *in.Address)
				case err != nil:
					fe.Add("address", q.Code(102), "address %q is not a valid IP address.", *in.Address)
				case addr.BitLen() != cidr.Addr().BitLen():
					fe.Add("address", q.Code(102), "address %s is not of the IP version of subnet %s.", addr, cidr)
				case !cidr.Contains(addr):
					fe.Add("address", q.Code(102), "address %s is not inside subnet %s.", addr, cidr)
				default:
					ip.Address = addr.String()
				}
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			if n := len(q.Txn.IPBlockChildren(sn.ID)); n > 0 {
				return nil, wire.Errorf(http.StatusUnprocessableEntity, q.Code(106), "Subnet %d has %d child subnet(s); IP addresses go into the children.", sn.ID, n)
			}
			if ip.Address == "" {
				if _, err := q.Txn.IPBlockNextFree(sn.ID, ipam.Request{}); errors.Is(err, ipam.ErrFull) {
					return nil, wire.Errorf(http.StatusUnprocessableEntity, q.Code(107), "Subnet %s has no free address.", rawRange(sn))
				}
			} else {
				cidr := netipPrefix(sn.CIDR)
				addr := netipAddr(ip.Address)
				res := ipam.CloudCIX.Reservation(cidr)
				if ip.Address == sn.Gateway || (res.Network && addr == netx.First(cidr)) || (res.Broadcast && addr == netx.Last(cidr)) {
					return nil, wire.Errorf(http.StatusConflict, q.Code(109), "Address %s is reserved in subnet %s (network, broadcast or gateway).", addr, rawRange(sn))
				}
				if _, held := q.Txn.IPAddressIn(sn.ID, ip.Address); held {
					return nil, wire.Errorf(http.StatusConflict, q.Code(108), "Address %s is already allocated.", addr)
				}
			}
			ip.BlockID = sn.ID
			return q.Command(fsm.IPAddressAllocateType, ip)
		},
		Update: func(q *api.Request, cur *wire.IPAddress, partial bool) (*fsm.Command, error) {
			var in IPAddressInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if in.SubnetID != nil && *in.SubnetID != cur.BlockID {
				fe.Add("subnet_id", q.Code(110), "The subnet of an IP address cannot be changed; delete it and create one in the other subnet.")
			}
			if in.Address != nil {
				if a, err := netx.ParseAddr(*in.Address); err != nil || a.String() != cur.Address {
					fe.Add("address", q.Code(110), "The address of an IP address cannot be changed; delete it and create another.")
				}
			}
			ip := *cur
			if !partial {
				ip.Name, ip.MACAddress, ip.VMID, ip.PublicIPID = "", "", 0, 0
			}
			text(fe, q, "name", in.Name, 64, 104)
			api.Set(&ip.Name, in.Name)
			api.Set(&ip.VMID, in.VMID)
			if ip.VMID != cur.VMID {
				fe.Add("vm_id", q.Code(111), "An address moves to or from a VM only with the VM (/iaas/cloud/, /iaas/vm/), not here.")
			}
			if in.MACAddress != nil {
				ip.MACAddress = ""
				if *in.MACAddress != "" {
					if m, err := netx.ParseMAC(*in.MACAddress); err != nil {
						fe.Add("mac_address", q.Code(103), "mac_address %q is not a valid MAC address.", *in.MACAddress)
					} else {
						ip.MACAddress = m.String()
					}
				}
			}
			if in.PublicIPID != nil {
				ip.PublicIPID = 0
				if id := *in.PublicIPID; id != 0 {
					p, ok := cloudcixIP(q.Txn, id)
					switch {
					case id == cur.PublicIPID:
						// Unchanged: a NAT address is the region's (member
						// 1's), which the tenant does not own, but sending
						// back what a read showed is no change.
						ip.PublicIPID = id
					case !ok || !owns(q, p.MemberID):
						fe.Add("public_ip_id", q.Code(105), "IP address with id = '%d' doesn't exist", id)
					case id == cur.ID:
						fe.Add("public_ip_id", q.Code(105), "An IP address cannot be its own public IP.")
					case publicIPOf(q, id, cur.ID) != 0:
						fe.Add("public_ip_id", q.Code(106), "IP address %s is already the public IP of address %d.", p.Address, publicIPOf(q, id, cur.ID))
					default:
						ip.PublicIPID = id
					}
				}
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			if cur.VMID != 0 && (ip.MACAddress != cur.MACAddress || ip.PublicIPID != cur.PublicIPID) {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(111), "IP address %d belongs to VM %d: its MAC address and public IP are managed through /iaas/cloud/ and /iaas/vm/ (only its name changes here).", cur.ID, cur.VMID)
			}
			return q.Command(fsm.IPAddressUpdateType, &ip)
		},
		Delete: func(q *api.Request, cur *wire.IPAddress) (*fsm.Command, error) {
			// A VM's address, a NAT address and a virtual router's address
			// go with their owner (closing it frees them).
			if cur.VMID != 0 {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(103), "IP address %d belongs to VM %d; it is freed when the VM is closed.", cur.ID, cur.VMID)
			}
			for _, vr := range q.Txn.VirtualRouterList() {
				if vr.IPAddressID == cur.ID && vr.State != wire.StateClosed {
					return nil, wire.Errorf(http.StatusBadRequest, q.Code(103), "IP address %d belongs to virtual router %d.", cur.ID, vr.ID)
				}
			}
			// One command frees the address and removes its row.
			return q.Command(fsm.IPAddressDeleteType, state.IPRef{ID: cur.ID})
		},
		StateErr: ipAddressStateErr,
	})
}

// publicIPOf returns an address other than self whose public IP is id, or 0.
func publicIPOf(q *api.Request, id, self uint64) uint64 {
	for _, o := range q.Txn.IPAddressesByPublicIP(id) {
		if o.ID != self {
			return o.ID
		}
	}
	return 0
}

// ipAddressStateErr maps the errors state's IPAddressCreate, Update and
// Delete return inside the FSM to the codes the checks above give the same
// failures against the read view: a request that passes them and then loses
// a race (another write took the address, filled the subnet, removed it)
// gets the iaas code all the same. Other errors pass unchanged.
func ipAddressStateErr(q *api.Request, err error) error {
	var e *wire.Error
	if !errors.As(err, &e) {
		return err
	}
	field := func(name string, n int, detail string) error {
		fe := wire.FieldErrors{}
		fe.Add(name, q.Code(n), "%s", detail)
		return fe.Err()
	}
	switch stateCode(e) {
	case "ipam_ip_address_create_001":
		return field("subnet_id", 101, "The subnet no longer exists.")
	case "ipam_ip_address_create_101":
		return wire.Errorf(http.StatusUnprocessableEntity, q.Code(106), "The subnet has child subnets; IP addresses go into the children.")
	case "ipam_ip_address_create_102":
		return field("mac_address", 103, "mac_address is not a valid MAC address.")
	case "ipam_ip_address_create_104":
		return wire.Errorf(http.StatusUnprocessableEntity, q.Code(107), "The subnet has no free address.")
	case "ipam_ip_address_create_105", "ipam_ip_address_create_106":
		return field("address", 102, "address is not an address of the subnet.")
	case "ipam_ip_address_create_107":
		return wire.Errorf(http.StatusConflict, q.Code(108), "The address is already allocated.")
	case "ipam_ip_address_create_110":
		return field("public_ip_id", 105, "The public IP address no longer exists.")
	case "ipam_ip_address_create_111":
		return field("public_ip_id", 110, "The public IP address is already the public IP of another address.")
	}
	// Update and delete: state's numbers mean what the iaas ones do (001
	// gone, 002 changed meanwhile, 103 mac_address, 105 and 106 public_ip_id).
	if q.Action == auth.Update || q.Action == auth.Delete {
		return renameCodes(e, fmt.Sprintf("ipam_ip_address_%s_", q.Action), fmt.Sprintf("%s_%s_%s_", q.App, q.Service, q.Action))
	}
	return err
}

// stateCode is the code of a state error: its own, or that of its one
// field error (state refuses a field with a field error only).
func stateCode(e *wire.Error) string {
	if e.ErrorCode == "" && len(e.Errors) == 1 {
		for _, f := range e.Errors {
			return f.ErrorCode
		}
	}
	return e.ErrorCode
}

// renameCodes returns a copy of e with the prefix from of its code and of
// its field errors' codes replaced by to.
func renameCodes(e *wire.Error, from, to string) error {
	n := *e
	if r, ok := strings.CutPrefix(e.ErrorCode, from); ok {
		n.ErrorCode = to + r
	}
	if len(e.Errors) > 0 {
		n.Errors = map[string]wire.FieldError{}
		for k, v := range e.Errors {
			if r, ok := strings.CutPrefix(v.ErrorCode, from); ok {
				v.ErrorCode = to + r
			}
			n.Errors[k] = v
		}
	}
	return &n
}
