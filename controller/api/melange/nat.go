package melange

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// NAT (inside_globals / inside_locals, melange-facts §10) and the allowed
// IPs of interfaces (§12).

// Permission-table services of these routes.
const (
	ServiceNAT = "melange_nat"
	// ServiceProviderNAT: the spec's NAT paths without a tenant (global
	// callers only); addresses are resolved in any tenant's blocks.
	ServiceProviderNAT = "melange_provider_nat"
	ServiceAllowedIP   = "melange_allowed_ip"
)

func registerNAT(a *api.API) {
	// The fact sheet's tenant paths and the spec's provider paths.
	for _, r := range []struct{ base, service string }{
		{"/tenants/{tenant_id}/ip_blocks/{id}/ip_addresses/{address}", ServiceNAT},
		{"/ip_blocks/{id}/ip_addresses/{address}", ServiceProviderNAT},
	} {
		base, svc := r.base, r.service
		for _, dir := range []string{"inside_globals", "inside_locals"} {
			globals := dir == "inside_globals"
			handle(a, "GET", base+"/"+dir, svc, auth.List, func(q *request) error { return listNAT(q, globals) })
			handle(a, "POST", base+"/"+dir, svc, auth.Create, func(q *request) error { return createNAT(q, globals) })
			handle(a, "DELETE", base+"/"+dir, svc, auth.Delete, func(q *request) error { return deleteNAT(q, globals, false) })
			handle(a, "DELETE", base+"/"+dir+"/{partner}", svc, auth.Delete, func(q *request) error { return deleteNAT(q, globals, true) })
		}
	}
	const allowed = "/tenants/{tenant_id}/interfaces/{vif}/allowed_ips"
	handle(a, "GET", allowed, ServiceAllowedIP, auth.List, listAllowedIPs)
	handle(a, "POST", allowed, ServiceAllowedIP, auth.Create, createAllowedIP)
	handle(a, "GET", allowed+"/{address}", ServiceAllowedIP, auth.Read, readAllowedIP)
	handle(a, "DELETE", allowed+"/{address}", ServiceAllowedIP, auth.Delete, deleteAllowedIP)
}

// natAddress is the path address for NAT: as q.address, and not
// soft-deallocated (422 Address is locked).
func (q *request) natAddress() (*wire.IPAddress, error) {
	ip, err := q.address()
	if err != nil {
		return nil, err
	}
	if ip.Deallocated {
		return nil, fault(http.StatusUnprocessableEntity, "Address is locked")
	}
	return ip, nil
}

func (q *request) natPartners(ip *wire.IPAddress, globals bool) []*wire.IPAddress {
	if globals {
		return q.Txn.InsideGlobals(ip.ID)
	}
	return q.Txn.InsideLocals(ip.ID)
}

// listNAT: the addresses linked to the path address, by id, paged.
func listNAT(q *request, globals bool) error {
	ip, err := q.natAddress()
	if err != nil {
		return err
	}
	res, err := page(q, "ip_addresses", q.natPartners(ip, globals), addressID, addressView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

// rawBody reads a request body as an object of raw fields; an XML body is
// read by decodeXMLRaw.
func rawBody(q *request) (map[string]json.RawMessage, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, q.Body, api.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fault(http.StatusRequestEntityTooLarge, "The request body is larger than %d bytes.", api.MaxBodyBytes)
		}
		return nil, fault(http.StatusBadRequest, "The request body could not be read.")
	}
	out := map[string]json.RawMessage{}
	if strings.TrimSpace(string(raw)) == "" {
		return out, nil
	}
	if xmlBody(q.Request.Request) {
		return decodeXMLRaw(raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fault(http.StatusBadRequest, "Malformed request body: %v", err)
	}
	return out, nil
}

// createNAT: body {"ip_addresses": [{"ip_block_id", "ip_address"}, ...]}
// links the path address with each, every one resolved in the URL
// tenant's blocks. 200 with an empty body.
func createNAT(q *request, globals bool) error {
	ip, err := q.natAddress()
	if err != nil {
		return err
	}
	raw, err := rawBody(q)
	if err != nil {
		return err
	}
	var refs []body
	if v, ok := raw["ip_addresses"]; !ok || string(v) == "null" {
		return fault(http.StatusBadRequest, "Required params are missing: ip_addresses")
	} else if err := json.Unmarshal(v, &refs); err != nil {
		return invalid("ip_addresses", "ip_addresses should be a list of {ip_block_id, ip_address}")
	}
	if len(refs) > maxNATEntries {
		return tooMany("ip_addresses", maxNATEntries)
	}
	var partners []uint64
	for _, r := range refs {
		var blockRef, addr string
		if err := r.fields(map[string]*string{"ip_block_id": &blockRef, "ip_address": &addr}); err != nil {
			return err
		}
		if blockRef == "" || addr == "" {
			return fault(http.StatusBadRequest, "Required params are missing: ip_block_id, ip_address")
		}
		id, perr := strconv.ParseUint(blockRef, 10, 64)
		b, ok := q.Txn.IPBlock(id)
		if perr != nil || !ok || b.Dialect != wire.DialectMelange || !q.ownsBlock(b) {
			return fault(http.StatusNotFound, "IpBlock Not Found")
		}
		p, ok := q.Txn.IPAddressIn(b.ID, addr)
		if !ok {
			return fault(http.StatusNotFound, "IpAddress Not Found")
		}
		if p.Deallocated {
			return fault(http.StatusUnprocessableEntity, "Address is locked")
		}
		partners = append(partners, p.ID)
	}
	p := fsm.NATPayload{Locals: []uint64{ip.ID}, Globals: partners}
	if !globals {
		p = fsm.NATPayload{Locals: partners, Globals: []uint64{ip.ID}}
	}
	_, index, err := apply(q, fsm.NATLinkType, p, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}

// deleteNAT removes every link of the path address in the direction, or,
// with one, the link to {partner} (404 IpAddress Not Found when it is not
// linked). 200 with an empty body.
func deleteNAT(q *request, globals, one bool) error {
	ip, err := q.natAddress()
	if err != nil {
		return err
	}
	var p fsm.NATUnlinkPayload
	if globals {
		p.LocalID = ip.ID
	} else {
		p.GlobalID = ip.ID
	}
	if one {
		want, perr := netx.ParseAddr(q.PathValue("partner"))
		var found *wire.IPAddress
		for _, x := range q.natPartners(ip, globals) {
			if perr == nil && netip.MustParseAddr(x.Address) == want {
				found = x
				break
			}
		}
		if found == nil {
			return fault(http.StatusNotFound, "IpAddress Not Found")
		}
		if globals {
			p.GlobalID = found.ID
		} else {
			p.LocalID = found.ID
		}
	}
	_, index, err := apply(q, fsm.NATUnlinkType, p, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}

// --- allowed IPs ---

// allowed returns the addresses allowed on ifc: explicitly allowed ones
// and those allocated on it, by id, without duplicates.
func (q *request) allowed(ifc *wire.Interface) []*wire.IPAddress {
	seen := map[uint64]bool{}
	var out []*wire.IPAddress
	for _, list := range [][]*wire.IPAddress{q.Txn.AllowedIPs(ifc.VIF), q.Txn.InterfaceAddresses(ifc.VIF)} {
		for _, ip := range list {
			if !seen[ip.ID] {
				seen[ip.ID] = true
				out = append(out, ip)
			}
		}
	}
	return out
}

func listAllowedIPs(q *request) error {
	ifc, err := q.tenantInterface()
	if err != nil {
		return err
	}
	res, err := page(q, "ip_addresses", q.allowed(ifc), addressID, addressView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

// createAllowedIP: body {"allowed_ip": {network_id, ip_address}}: the
// address of that network used by the URL tenant, allowed on the interface
// → 201 {"ip_address": ...}.
func createAllowedIP(q *request) error {
	ifc, err := q.tenantInterface()
	if err != nil {
		return err
	}
	b, err := decode(q, "allowed_ip")
	if err != nil {
		return err
	}
	var net, addr string
	if err := b.fields(map[string]*string{"network_id": &net, "ip_address": &addr}); err != nil {
		return err
	}
	if net == "" || addr == "" {
		return fault(http.StatusBadRequest, "Required params are missing: network_id, ip_address")
	}
	tenant := idString(q.tenant)
	var found *wire.IPAddress
	for _, blk := range q.Txn.IPBlockListByNetwork(net) {
		if blk.Dialect != wire.DialectMelange {
			continue
		}
		if ip, ok := q.Txn.IPAddressIn(blk.ID, addr); ok && ip.UsedByTenant == tenant && !ip.Deallocated {
			found = ip
			break
		}
	}
	if found == nil {
		return fault(http.StatusNotFound, "IpAddress with {'used_by_tenant_id': '%s', 'address': '%s'} for network %s not found", tenant, addr, net)
	}
	v, index, err := apply(q, fsm.AllowedIPCreateType, fsm.AllowedIPPayload{VIF: ifc.VIF, AddressID: found.ID}, 0)
	if err != nil {
		return err
	}
	reply(q, http.StatusCreated, index, map[string]any{"ip_address": addressView(v.(*wire.IPAddress))})
	return nil
}

// allowedIP finds {address} among the addresses allowed on the interface.
func (q *request) allowedIP(ifc *wire.Interface, explicitOnly bool) (*wire.IPAddress, error) {
	raw := q.PathValue("address")
	want, err := netx.ParseAddr(raw)
	if err == nil {
		list := q.allowed(ifc)
		if explicitOnly {
			list = q.Txn.AllowedIPs(ifc.VIF)
		}
		for _, ip := range list {
			if netip.MustParseAddr(ip.Address) == want {
				return ip, nil
			}
		}
	}
	return nil, fault(http.StatusNotFound, "Ip Address %s hasnt been allowed on interface %s", raw, ifc.VIF)
}

func readAllowedIP(q *request) error {
	ifc, err := q.tenantInterface()
	if err != nil {
		return err
	}
	ip, err := q.allowedIP(ifc, false)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, map[string]any{"ip_address": addressView(ip)})
	return nil
}

// deleteAllowedIP removes an explicit allowance (an address allocated on
// the interface is not an allowance: 404). 200 with an empty body.
func deleteAllowedIP(q *request) error {
	ifc, err := q.tenantInterface()
	if err != nil {
		return err
	}
	ip, err := q.allowedIP(ifc, true)
	if err != nil {
		return err
	}
	_, index, err := apply(q, fsm.AllowedIPDeleteType, fsm.AllowedIPPayload{VIF: ifc.VIF, AddressID: ip.ID}, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}
