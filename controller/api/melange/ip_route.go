package melange

import (
	"net/http"
	"strconv"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	wire "github.com/regentcloud/regent/pkg/api"
)

// Static routes of a block (melange-facts §11) and the allocated-address
// listings (melange-api-spec "List tenant's allocated addresses").

// Permission-table services of these routes.
const (
	ServiceIPRoute = "melange_ip_route"
	// ServiceAllocatedIP is the tenant listing; ServiceProviderAllocatedIP
	// the provider's (no tenant in the URL: global callers only).
	ServiceAllocatedIP         = "melange_allocated_ip"
	ServiceProviderAllocatedIP = "melange_provider_allocated_ip"
)

// RouteView is a Melange ip_route as the API shows it.
type RouteView struct {
	ID          string  `json:"id"`
	Destination string  `json:"destination"`
	Netmask     *string `json:"netmask"`
	Gateway     string  `json:"gateway"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

func routeView(rt *wire.IPRoute) any {
	return &RouteView{ID: idString(rt.ID), Destination: rt.Destination, Netmask: optional(rt.Netmask), Gateway: rt.Gateway,
		CreatedAt: rt.Created, UpdatedAt: rt.Updated}
}

func routeID(rt *wire.IPRoute) uint64 { return rt.ID }

func registerIPRoutes(a *api.API) {
	const routes = "/tenants/{tenant_id}/ip_blocks/{id}/ip_routes"
	handle(a, "GET", routes, ServiceIPRoute, auth.List, listRoutes)
	handle(a, "POST", routes, ServiceIPRoute, auth.Create, createRoute)
	handle(a, "GET", routes+"/{route_id}", ServiceIPRoute, auth.Read, readRoute)
	handle(a, "PUT", routes+"/{route_id}", ServiceIPRoute, auth.Update, updateRoute)
	handle(a, "DELETE", routes+"/{route_id}", ServiceIPRoute, auth.Delete, deleteRoute)

	handle(a, "GET", "/allocated_ip_addresses", ServiceProviderAllocatedIP, auth.List, listAllocated)
	handle(a, "GET", "/tenants/{tenant_id}/allocated_ip_addresses", ServiceAllocatedIP, auth.List, listAllocated)
}

// route finds {route_id} of the URL tenant's block {id}.
func (q *request) route() (*wire.IPRoute, error) {
	b, err := q.block()
	if err != nil {
		return nil, err
	}
	id, err := strconv.ParseUint(q.PathValue("route_id"), 10, 64)
	if err == nil {
		if rt, ok := q.Txn.IPRoute(id); ok && rt.BlockID == b.ID {
			return rt, nil
		}
	}
	return nil, fault(http.StatusNotFound, "IpRoute Not Found")
}

func listRoutes(q *request) error {
	b, err := q.block()
	if err != nil {
		return err
	}
	res, err := page(q, "ip_routes", q.Txn.IPRouteList(b.ID), routeID, routeView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

func readRoute(q *request) error {
	rt, err := q.route()
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, map[string]any{"ip_route": routeView(rt)})
	return nil
}

// routeFields reads destination, netmask and gateway (present ones only);
// source_block_id is ignored (the URL's block).
func routeFields(b body, rt *wire.IPRoute) error {
	for _, f := range []struct {
		name string
		dst  *string
	}{{"destination", &rt.Destination}, {"netmask", &rt.Netmask}, {"gateway", &rt.Gateway}} {
		v, present, err := b.str(f.name)
		if err != nil {
			return err
		}
		if present {
			*f.dst = v
		}
	}
	return nil
}

// createRoute: body {"ip_route": {destination, netmask, gateway}} → 201;
// destination and gateway are required (400).
func createRoute(q *request) error {
	b, err := q.block()
	if err != nil {
		return err
	}
	in, err := decode(q, "ip_route")
	if err != nil {
		return err
	}
	rt := &wire.IPRoute{BlockID: b.ID}
	if err := routeFields(in, rt); err != nil {
		return err
	}
	v, index, err := apply(q, fsm.IPRouteCreateType, rt, 0)
	if err != nil {
		return err
	}
	reply(q, http.StatusCreated, index, map[string]any{"ip_route": routeView(v.(*wire.IPRoute))})
	return nil
}

// updateRoute changes the fields given; source_block_id is ignored.
func updateRoute(q *request) error {
	in, err := decode(q, "ip_route")
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		cur, err := q.route()
		if err != nil {
			return err
		}
		rt := *cur
		if err := routeFields(in, &rt); err != nil {
			return err
		}
		v, index, err := apply(q, fsm.IPRouteUpdateType, &rt, cur.ModifiedIndex)
		if err != nil && stale(err) && attempt < api.ConflictRetries {
			q.Txn = q.API.Store().Read()
			continue
		}
		if err != nil {
			return err
		}
		reply(q, http.StatusOK, index, map[string]any{"ip_route": routeView(v.(*wire.IPRoute))})
		return nil
	}
}

func deleteRoute(q *request) error {
	return deleteObject(q, fsm.IPRouteDeleteType, func() (wire.Object, error) { return q.route() })
}

// listAllocated lists allocated (not soft-deallocated) addresses of
// Melange blocks by id: every one for the provider route, those used by
// the URL tenant (the interface owner, used_by_tenant) for the tenant
// route; ?used_by_device filters by device. The tenant and the device are
// the interface's, so with either only addresses on an interface count,
// as in Melange, which joined the interfaces for them (melange-facts §2,
// checklist 36 and 37): an address allocated without interface_id, or
// restored (which leaves it on none), is not "used by" anyone.
func listAllocated(q *request) error {
	qs, err := q.ParseQuery()
	if err != nil {
		return err
	}
	device := qs.Get("used_by_device")
	tenant := ""
	if q.PathValue("tenant_id") != "" {
		tenant = idString(q.tenant)
	}
	melange := map[uint64]bool{} // block id → a Melange block
	var candidates []*wire.IPAddress
	if tenant != "" {
		// the tenant's from the used_by_tenant index, not the region's,
		// and only their blocks looked up
		candidates = q.Txn.IPAddressListByTenant(tenant)
		for _, ip := range candidates {
			if _, seen := melange[ip.BlockID]; !seen {
				b, ok := q.Txn.IPBlock(ip.BlockID)
				melange[ip.BlockID] = ok && b.Dialect == wire.DialectMelange
			}
		}
	} else {
		candidates = q.Txn.IPAddressListAll()
		for _, b := range q.Txn.IPBlockList() {
			melange[b.ID] = b.Dialect == wire.DialectMelange
		}
	}
	var items []*wire.IPAddress
	for _, ip := range candidates {
		if !melange[ip.BlockID] || ip.Deallocated || (device != "" && ip.UsedByDevice != device) || (tenant != "" && ip.UsedByTenant != tenant) ||
			((device != "" || tenant != "") && ip.InterfaceID == "") {
			continue
		}
		items = append(items, ip)
	}
	res, err := page(q, "ip_addresses", items, addressID, addressView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}
