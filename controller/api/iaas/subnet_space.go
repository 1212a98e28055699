package iaas

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// FreeSpace is a free item of subnet_space: only its range.
type FreeSpace struct {
	AddressRange string `json:"address_range"`
}

// Space types of subnet_space (search[space_type]).
const (
	SpaceAll      = "all"
	SpaceFree     = "free"
	SpaceExisting = "existing"
)

// registerSubnetSpace serves GET /iaas/subnet_space/{allocation_id}/: the
// free space of an allocation (the minimal CIDR cover of the allocation
// minus its subnets) and its existing subnets, sorted by address.
// search[space_type] (or the legacy space_type) is all (default), free or
// existing. Errors: 400 iaas_subnet_space_list_001 for an unknown or
// invisible allocation (CloudCIX answers 400, not 404), 400
// iaas_subnet_space_list_002 for another space_type.
func registerSubnetSpace(a *api.API) {
	handle(a, "GET /iaas/subnet_space/{allocation_id}/{$}", "subnet_space", auth.List, func(q *api.Request) error {
		if err := q.Blocking(state.IPBlocks, state.IPAddresses); err != nil {
			return err
		}
		id, err := strconv.ParseUint(q.PathValue("allocation_id"), 10, 64)
		alloc, ok := allocation(q.Txn, id)
		if err != nil || !ok || !owns(q, alloc.MemberID) {
			return wire.Errorf(http.StatusBadRequest, q.Code(1), "Allocation with id = %q doesn't exist.", q.PathValue("allocation_id"))
		}
		params, err := q.ParseQuery()
		if err != nil {
			return err
		}
		values := url.Values{}
		spaceType := SpaceAll
		for k, v := range params {
			switch k {
			case "search[space_type]", "search[space_type__iexact]", "space_type":
				spaceType = strings.ToLower(strings.TrimSpace(v[len(v)-1]))
			default:
				values[k] = v
			}
		}
		if spaceType != SpaceAll && spaceType != SpaceFree && spaceType != SpaceExisting {
			return wire.Errorf(http.StatusBadRequest, q.Code(2), "space_type must be one of all, free, existing; got %q.", spaceType)
		}
		entries, _ := q.Txn.IPBlockSubnetSpace(alloc.ID)
		children := q.Txn.IPBlockChildren(alloc.ID)
		items := []any{}
		for _, e := range entries {
			switch {
			case e.Free && spaceType != SpaceExisting:
				items = append(items, &FreeSpace{AddressRange: e.Prefix.String()})
			case !e.Free && spaceType != SpaceFree:
				items = append(items, subnetView(q.Txn, children[e.Index]))
			}
		}
		qry := query.Parse(query.Spec{}, values)
		total := len(items)
		lo, hi := qry.Window(total)
		q.W.Header().Set("X-Regent-Index", strconv.FormatUint(max(q.Txn.MaxIndex(state.IPBlocks, state.IPAddresses), 1), 10))
		api.WriteJSON(q.W, http.StatusOK, wire.List[any]{Content: items[lo:hi], Metadata: wire.ListMetadata{
			Page: qry.Page, Limit: qry.Limit, Order: qry.Order, TotalRecords: total, Warnings: qry.Warnings}})
		return nil
	})
}
