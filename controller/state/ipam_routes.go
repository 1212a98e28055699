package state

import (
	"github.com/regentcloud/regent/pkg/api"
)

// Melange static routes of a block (melange-facts §11). They belong to
// their block: a block delete removes them.

func (t *Txn) routeChecks(rt *api.IPRoute, method string) error {
	c := func(n int) string { return code("ipam", "ip_route", method, n) }
	fe := api.FieldErrors{}
	if rt.Destination == "" {
		fe.Add("destination", c(101), "destination should be present")
	}
	if rt.Gateway == "" {
		fe.Add("gateway", c(102), "gateway should be present")
	}
	if b, ok := t.IPBlock(rt.BlockID); !ok || b.Dialect != api.DialectMelange {
		fe.Add("source_block_id", c(103), "IpBlock with id = '%d' doesn't exist", rt.BlockID)
	}
	return fe.Err()
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
