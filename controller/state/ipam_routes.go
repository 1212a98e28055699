package state

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// Melange static routes of a block (melange-facts §11). They belong to
// their block: a block delete removes them.

// routeChecks validates a route and normalises its fields (melange-api-spec
// "Create a Static Route": destination an address or a CIDR, gateway an
// address, netmask that of the destination network when given; 400 when
// field validation fails). Melange itself only required destination and
// gateway; a route of a block is installed in its family's table, so the
// destination, the gateway and the netmask must all be of the block's
// family (a gateway must also be reachable, but it may lie outside the
// block: a route may point at a router of another on-link network).
func (t *Txn) routeChecks(rt *api.IPRoute, method string) error {
	c := func(n int) string { return code("ipam", "ip_route", method, n) }
	fe := api.FieldErrors{}
	b, ok := t.IPBlock(rt.BlockID)
	if !ok || b.Dialect != api.DialectMelange {
		fe.Add("source_block_id", c(103), "IpBlock with id = '%d' doesn't exist", rt.BlockID)
	}
	width := 0 // the block's address width, 0 when unknown
	if ok {
		if p, err := netip.ParsePrefix(b.CIDR); err == nil {
			width = p.Addr().BitLen()
		}
	}
	family := func(bits int) string {
		if bits == 32 {
			return "IPv4"
		}
		return "IPv6"
	}
	destBits := -1 // the destination's prefix length, -1 for an address
	switch {
	case rt.Destination == "":
		fe.Add("destination", c(101), "destination should be present")
	default:
		var d netip.Prefix
		var err error
		if strings.Contains(rt.Destination, "/") {
			d, err = netx.ParsePrefixRaw(rt.Destination)
		} else {
			var a netip.Addr
			if a, err = netx.ParseAddr(rt.Destination); err == nil {
				d = netip.PrefixFrom(a, a.BitLen())
			}
		}
		switch {
		case err != nil:
			fe.Add("destination", c(104), "destination should be an ip address or cidr")
		case width != 0 && d.Addr().BitLen() != width:
			fe.Add("destination", c(104), "destination should be an %s address or cidr, as the block is", family(width))
		case strings.Contains(rt.Destination, "/"):
			rt.Destination, destBits = d.String(), d.Bits()
		default:
			rt.Destination = d.Addr().String()
		}
	}
	if rt.Gateway == "" {
		fe.Add("gateway", c(102), "gateway should be present")
	} else if gw, err := netx.ParseAddr(rt.Gateway); err != nil {
		fe.Add("gateway", c(105), "gateway should be an ip address")
	} else if width != 0 && gw.BitLen() != width {
		fe.Add("gateway", c(105), "gateway should be an %s address, as the block is", family(width))
	} else {
		rt.Gateway = gw.String()
	}
	if rt.Netmask != "" {
		bits, mw, okMask := parseNetmask(rt.Netmask)
		switch {
		case !okMask || (width != 0 && mw != 0 && mw != width):
			fe.Add("netmask", c(106), "netmask should be a contiguous netmask of the family of the block (255.255.255.0, ffff:ffff::) or a prefix length")
		case destBits >= 0 && bits != destBits:
			fe.Add("netmask", c(106), "netmask should agree with the prefix length of destination %s", rt.Destination)
		}
	}
	return fe.Err()
}

// parseNetmask reads a route's netmask: a contiguous mask written as an
// address (255.255.255.0, ffff:ffff:ffff:ffff::) or a prefix length ("24",
// "64", as Melange shows an IPv6 block's netmask). It returns the length and
// the family width of the mask (0 for a bare length, which fits either
// family up to 32).
func parseNetmask(s string) (bits, width int, ok bool) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 128 || (len(s) > 1 && s[0] == '0') || s[0] == '+' {
			return 0, 0, false
		}
		if n > 32 {
			return n, 128, true
		}
		return n, 0, true
	}
	a, err := netx.ParseAddr(s)
	if err != nil {
		return 0, 0, false
	}
	raw := a.AsSlice()
	ones, zero := 0, false
	for _, by := range raw {
		for i := 7; i >= 0; i-- {
			set := by&(1<<i) != 0
			switch {
			case set && zero:
				return 0, 0, false // not contiguous
			case set:
				ones++
			default:
				zero = true
			}
		}
	}
	return ones, a.BitLen(), true
}

// IPRouteCreate stores a static route of block rt.BlockID.
func (t *Txn) IPRouteCreate(rt *api.IPRoute) (*api.IPRoute, error) {
	if err := t.routeChecks(rt, "create"); err != nil {
		return nil, err
	}
	return rt, insertNew(t, IPRoutes, rt)
}

// IPRouteUpdate replaces destination, netmask and gateway of a route; its
// block is kept.
func (t *Txn) IPRouteUpdate(rt *api.IPRoute, expect uint64) (*api.IPRoute, error) {
	old, ok := t.IPRoute(rt.ID)
	if !ok {
		return nil, api.NotFound("ipam_ip_route_update_001")
	}
	rt.BlockID = old.BlockID
	if err := t.routeChecks(rt, "update"); err != nil {
		return nil, err
	}
	return rt, replace(t, IPRoutes, rt, expect, "ipam_ip_route_update")
}

// IPRouteDelete removes a route.
func (t *Txn) IPRouteDelete(id uint64) error {
	return remove(t, IPRoutes, id, "ipam_ip_route_delete")
}
