package iaas

// capacity and metrics: per-region views of the hardware.

import (
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// CapacityMaxStorage caps the storage a capacity entry offers (GB), as
// CloudCIX does.
const CapacityMaxStorage = 2000

// regionOf reads the {region_id} path value and checks that the caller may
// see the region: a customer of it, its robot, or a global user.
func regionOf(q *api.Request, code int) (*wire.Region, error) {
	id, err := strconv.ParseUint(q.PathValue("region_id"), 10, 64)
	reg, ok := q.Txn.Region(id)
	if err != nil || !ok || !(q.P.Global() || (q.P.Role == auth.Robot && q.P.RegionID == id) ||
		(q.P.Role != auth.Robot && slices.Contains(reg.Customers, q.P.MemberID))) {
		return nil, wire.Errorf(http.StatusBadRequest, q.Code(code), "Region %q does not exist or you are not a customer of it.", q.PathValue("region_id"))
	}
	return reg, nil
}

// Capacity lists, per server type and storage type, the largest VMs the
// region can still build: the remaining [ram, storage, cpu] of every
// enabled, non-phantom server after its VMs (placement create limits),
// storage capped at 2000 GB, keeping only vectors no other dominates.
func Capacity(r *state.ReadTxn, region uint64, f wire.PlacementFactors) map[string]map[string][]wire.CapacityEntry {
	type key struct{ typ, st string }
	groups := map[key][]wire.CapacityEntry{}
	var order []key
	for _, s := range r.ServersInRegion(region) {
		if !s.Enabled || s.TypeID == wire.ServerTypePhantom {
			continue
		}
		st, ok := r.StorageType(s.StorageTypeID)
		if !ok {
			continue
		}
		typ := ""
		for _, t := range wire.ServerTypes {
			if t.ID == s.TypeID {
				typ = t.Name
			}
		}
		rem := r.Remaining(s, f, false)
		e := wire.CapacityEntry{RAM: max(rem[0], 0), Storage: min(max(rem[1], 0), CapacityMaxStorage), CPU: max(rem[2], 0)}
		k := key{typ, st.Name}
		if _, seen := groups[k]; !seen {
			order = append(order, k)
		}
		groups[k] = append(groups[k], e)
	}
	out := map[string]map[string][]wire.CapacityEntry{}
	for _, k := range order {
		var front []wire.CapacityEntry
		all := groups[k]
		for i, e := range all {
			dominated := false
			for j, o := range all {
				if i == j {
					continue
				}
				ge := o.RAM >= e.RAM && o.Storage >= e.Storage && o.CPU >= e.CPU
				if ge && (o != e || j < i) {
					dominated = true
					break
				}
			}
			if !dominated {
				front = append(front, e)
			}
		}
		if out[k.typ] == nil {
			out[k.typ] = map[string][]wire.CapacityEntry{}
		}
		out[k.typ][k.st] = front
	}
	return out
}

func registerCapacity(a *api.API) {
	handle(a, "GET /iaas/capacity/{region_id}/{$}", "capacity", auth.List, func(q *api.Request) error {
		tables := []string{state.Servers, state.VMs, state.Storages, state.StorageTypes}
		if err := q.Blocking(tables...); err != nil {
			return err
		}
		reg, err := regionOf(q, 1)
		if err != nil {
			return err
		}
		q.W.Header().Set("X-Regent-Index", strconv.FormatUint(max(q.Txn.MaxIndex(tables...), 1), 10))
		api.WriteJSON(q.W, http.StatusOK, wire.Item[any]{Content: Capacity(q.Txn, reg.ID, q.API.Placement())})
		return nil
	})
}

// regionMetrics computes the metrics of a region and the index of its last
// compute change (the highest modified_index of its objects).
func regionMetrics(r *state.ReadTxn, region uint64, f wire.PlacementFactors) *wire.Metrics {
	m := &wire.Metrics{RegionID: region, VMs: []wire.StateCount{}, VirtualRouters: []wire.StateCount{}, Capacity: []wire.ServerUsage{}}
	see := func(meta *wire.Meta) { m.Index = max(m.Index, meta.ModifiedIndex) }
	count := func(list *[]wire.StateCount, host uint64, st int) {
		for i := range *list {
			if (*list)[i].HostID == host && (*list)[i].State == st {
				(*list)[i].Count++
				return
			}
		}
		*list = append(*list, wire.StateCount{HostID: host, State: st, Count: 1})
	}
	for _, vm := range r.VMsInRegion(region) {
		see(&vm.Meta)
		count(&m.VMs, vm.ServerID, vm.State)
	}
	for _, vr := range r.VirtualRoutersInRegion(region) {
		see(&vr.Meta)
		count(&m.VirtualRouters, vr.RouterID, vr.State)
		if p, ok := r.Project(vr.ProjectID); ok {
			see(&p.Meta)
			m.Projects++
			m.Subnets += len(r.ProjectSubnets(p))
		}
	}
	for _, s := range r.ServersInRegion(region) {
		see(&s.Meta)
		m.Servers++
		rem := r.Remaining(s, f, false)
		m.Capacity = append(m.Capacity, wire.ServerUsage{ServerID: s.ID, RAM: rem[0], Storage: rem[1], CPU: rem[2]})
	}
	for _, rt := range r.RoutersInRegion(region) {
		see(&rt.Meta)
		m.Routers++
	}
	return m
}

// metricsSeen remembers, per region, the change index the last metrics
// answer reported. It is leader memory: after a failover the first read
// answers in full (never a missed change, at worst a repeated report).
type metricsSeen struct {
	mu   sync.Mutex
	seen map[uint64]uint64
}

func registerMetrics(a *api.API) {
	ms := &metricsSeen{seen: map[uint64]uint64{}}
	handle(a, "GET /iaas/metrics/{region_id}/{$}", "metrics", auth.Read, func(q *api.Request) error {
		id, err := strconv.ParseUint(q.PathValue("region_id"), 10, 64)
		if _, ok := q.Txn.Region(id); err != nil || !ok || !seesRegion(q, id) ||
			(len(q.Txn.ServersInRegion(id)) == 0 && len(q.Txn.RoutersInRegion(id)) == 0) {
			return wire.NotFound(q.Code(1))
		}
		m := regionMetrics(q.Txn, id, q.API.Placement())
		force := q.URL.Query().Get("force") == "true"
		ms.mu.Lock()
		unchanged := ms.seen[id] == m.Index
		ms.seen[id] = m.Index
		ms.mu.Unlock()
		q.W.Header().Set("X-Regent-Index", strconv.FormatUint(max(m.Index, 1), 10))
		if unchanged && !force {
			q.W.WriteHeader(http.StatusNoContent)
			return nil
		}
		api.WriteJSON(q.W, http.StatusOK, wire.Item[any]{Content: m})
		return nil
	})
}
