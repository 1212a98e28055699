package melange

import (
	"net/http"
	"net/netip"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// AddressView is a Melange ip_address as the API shows it. IPv6 addresses
// are shown fully expanded, as Melange stored them.
type AddressView struct {
	ID           string  `json:"id"`
	IPBlockID    string  `json:"ip_block_id"`
	Address      string  `json:"address"`
	Version      int     `json:"version"`
	UsedByTenant *string `json:"used_by_tenant"`
	UsedByDevice *string `json:"used_by_device"`
	InterfaceID  *string `json:"interface_id"`
	CreatedAt    string  `json:"created_at"`
	UpdatedAt    string  `json:"updated_at"`
}

func addressView(ip *wire.IPAddress) any {
	v := &AddressView{ID: idString(ip.ID), IPBlockID: idString(ip.BlockID), Address: ip.Address, Version: ip.Version,
		UsedByTenant: optional(ip.UsedByTenant), UsedByDevice: optional(ip.UsedByDevice), InterfaceID: optional(ip.InterfaceID),
		CreatedAt: ip.Created, UpdatedAt: ip.Updated}
	if a, err := netip.ParseAddr(ip.Address); err == nil {
		v.Address = netx.Expand(a)
	}
	return v
}

func addressID(ip *wire.IPAddress) uint64 { return ip.ID }

func registerIPAddresses(a *api.API) {
	const base = "/tenants/{tenant_id}/ip_blocks/{id}/ip_addresses"
	handle(a, "GET", base, ServiceIPAddress, auth.List, listAddresses)
	handle(a, "POST", base, ServiceIPAddress, auth.Create, createAddress)
	handle(a, "GET", base+"/{address}", ServiceIPAddress, auth.Read, readAddress)
	handle(a, "DELETE", base+"/{address}", ServiceIPAddress, auth.Delete, deallocateAddress)
	handle(a, "PUT", base+"/{address}/restore", ServiceIPAddress, auth.Update, restoreAddress)
}

// address finds {address} in the {id} block of the URL tenant.
func (q *request) address() (*wire.IPAddress, error) {
	b, err := q.block()
	if err != nil {
		return nil, err
	}
	if ip, ok := q.Txn.IPAddressIn(b.ID, q.PathValue("address")); ok {
		return ip, nil
	}
	return nil, fault(http.StatusNotFound, "IpAddress Not Found")
}

// listAddresses: every address of the block, allocated and
// soft-deallocated, by id.
func listAddresses(q *request) error {
	b, err := q.block()
	if err != nil {
		return err
	}
	res, err := page(q, "ip_addresses", q.Txn.IPAddressList(b.ID), addressID, addressView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

func readAddress(q *request) error {
	ip, err := q.address()
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, map[string]any{"ip_address": addressView(ip)})
	return nil
}

// createAddress allocates body address, or the block's next free address.
// tenant_id is the lessee (used_by_tenant; default the block's tenant).
// With interface_id the address goes on that interface, which is created
// when missing (owner tenant_id, device used_by_device, MAC mac_address or
// one from the MAC ranges) in the same command; an existing interface
// keeps its owner and MAC, and an IPv6 generator gets its MAC.
func createAddress(q *request) error {
	b, err := q.block()
	if err != nil {
		return err
	}
	in, err := decode(q, "ip_address")
	if err != nil {
		return err
	}
	ip := &wire.IPAddress{BlockID: b.ID}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"address", &ip.Address}, {"interface_id", &ip.InterfaceID}, {"tenant_id", &ip.UsedByTenant},
		{"used_by_device", &ip.UsedByDevice}, {"mac_address", &ip.MACAddress}} {
		v, _, err := in.str(f.name)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	if err := q.forTenant(ip.UsedByTenant, "addresses"); err != nil {
		return err
	}
	if ip.UsedByTenant == "" {
		ip.UsedByTenant = idString(b.MemberID)
	}
	t, payload := fsm.IPAddressAllocateType, any(ip)
	if ip.InterfaceID != "" {
		t, payload = fsm.IPAddressAllocateOnIfaceType, fsm.InterfaceAllocatePayload{BlockID: b.ID, Address: ip.Address,
			Interface: wire.Interface{VIF: ip.InterfaceID, TenantID: ip.UsedByTenant, DeviceID: ip.UsedByDevice, MACAddress: ip.MACAddress},
			Scope:     q.scope()}
	}
	v, index, err := apply(q, t, payload, 0)
	if err != nil {
		return err
	}
	reply(q, http.StatusCreated, index, map[string]any{"ip_address": addressView(v.(*wire.IPAddress))})
	return nil
}

// deallocateAddress soft-deallocates: the address stays taken until it is
// restored or purged (melange-facts §8). 200, empty body.
func deallocateAddress(q *request) error {
	ip, err := q.address()
	if err != nil {
		return err
	}
	_, index, err := apply(q, fsm.IPAddressReleaseType, state.IPRef{ID: ip.ID}, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}

// restoreAddress undoes a soft deallocation. 200, empty body.
func restoreAddress(q *request) error {
	ip, err := q.address()
	if err != nil {
		return err
	}
	_, index, err := apply(q, fsm.IPAddressRestoreType, state.IPRef{ID: ip.ID}, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}
