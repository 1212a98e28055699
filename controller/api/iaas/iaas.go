// Package iaas serves the CloudCIX IPAM and DNS services under /iaas/:
// ASNs, allocations, subnets, IP addresses, domains, records and PTR
// records, and the CIX blacklist and whitelist (read by id or CIDR),
// through the generic service path of package api, and the subnet_space
// and ip_validator utilities on routes of their own. All of them read and write the one IPAM model of package state
// (docs/ipam-model.md): an allocation is a root cloudcix block, a subnet a
// cloudcix block with a parent, an IP address an address row of a subnet.
//
// Error codes are iaas_<service>_<method>_<nnn>. The checks that depend on
// state are made here against the request's read view first, so that the
// usual failures carry iaas codes; state repeats them inside the command.
// A service whose state checks can fail there (a request that loses a race)
// maps state's ipam_… codes back to its own with api.Service.StateErr
// (ip_address, allocation); elsewhere such a loser gets state's code.
package iaas

import (
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// App is the application name of every route of this package.
const App = "iaas"

// Register adds the iaas services to a.
func Register(a *api.API, opts Options) {
	registerASN(a)
	registerAllocation(a)
	registerSubnet(a)
	registerIPAddress(a)
	registerSubnetSpace(a)
	registerIPValidator(a)
	registerCIXLists(a)
	registerDomain(a)
	registerRecord(a)
	registerPTRRecord(a)
	registerStorageType(a)
	registerImage(a)
	registerRegionImage(a)
	registerServerType(a)
	registerServer(a, opts)
	registerInterface(a)
	registerRouter(a, opts)
	registerProject(a)
	registerCloud(a)
	registerVirtualRouter(a, opts)
	registerVM(a, opts)
	registerVMHistory(a)
	registerStorage(a)
	registerCapacity(a)
	registerMetrics(a)
	registerVPN(a)
	registerSnapshot(a, opts)
	registerBackup(a, opts)
}

// seesAll: global users and robots (which build what the region serves) see
// every member's IPAM objects; anyone else their member's only.
func seesAll(q *api.Request) bool {
	return q.P.Global() || q.P.Role == auth.Robot
}

func owns(q *api.Request, member uint64) bool { return seesAll(q) || member == q.P.MemberID }

// text validates an optional string field (trimmed): at most max
// characters of valid UTF-8 without control characters (api.TextFault).
func text(fe wire.FieldErrors, q *api.Request, field string, v *string, max int, n int) {
	if v == nil {
		return
	}
	*v = strings.TrimSpace(*v)
	if msg := api.TextFault(*v, max); msg != "" {
		fe.Add(field, q.Code(n), "%s", msg)
	}
}

// nameFault is why a required name is refused, or "": absent or blank,
// else api.TextFault of it trimmed.
func nameFault(v *string, max int) string {
	if v == nil || strings.TrimSpace(*v) == "" {
		return "This field is required."
	}
	return api.TextFault(strings.TrimSpace(*v), max)
}

func required(fe wire.FieldErrors, q *api.Request, field string, present bool, n int) bool {
	if !present {
		fe.Add(field, q.Code(n), "This field is required.")
	}
	return present
}

// --- lookups of the cloudcix block kinds ---

func isAllocation(b *wire.IPBlock) bool {
	return b.Dialect == wire.DialectCloudCIX && b.ParentID == 0
}

func isSubnet(b *wire.IPBlock) bool {
	return b.Dialect == wire.DialectCloudCIX && b.ParentID != 0
}

func allocation(r *state.ReadTxn, id uint64) (*wire.IPBlock, bool) {
	b, ok := r.IPBlock(id)
	if !ok || !isAllocation(b) {
		return nil, false
	}
	return b, true
}

func subnet(r *state.ReadTxn, id uint64) (*wire.IPBlock, bool) {
	b, ok := r.IPBlock(id)
	if !ok || !isSubnet(b) {
		return nil, false
	}
	return b, true
}

// allocationOf returns the allocation a subnet lies in (its root block).
func allocationOf(r *state.ReadTxn, b *wire.IPBlock) uint64 {
	for i := 0; b.ParentID != 0 && i < 256; i++ {
		p, ok := r.IPBlock(b.ParentID)
		if !ok {
			return 0
		}
		b = p
	}
	return b.ID
}

// memberBlocks is a list's AllFor over the blocks keep selects: a caller
// who sees only its member's reads that member's from the member index.
func memberBlocks(keep func(*wire.IPBlock) bool) func(*api.Request) []*wire.IPBlock {
	return func(q *api.Request) []*wire.IPBlock {
		if seesAll(q) {
			return blocks(q.Txn, keep)
		}
		var out []*wire.IPBlock
		for _, b := range q.Txn.IPBlockListByMember(q.P.MemberID) {
			if keep(b) {
				out = append(out, b)
			}
		}
		return out
	}
}

func blocks(r *state.ReadTxn, keep func(*wire.IPBlock) bool) []*wire.IPBlock {
	var out []*wire.IPBlock
	for _, b := range r.IPBlockList() {
		if keep(b) {
			out = append(out, b)
		}
	}
	return out
}

// --- routes of their own (subnet_space, ip_validator) ---

// handle registers a route of its own that authenticates and checks the
// permission table like the generic service path, then runs fn.
func handle(a *api.API, pattern, service string, action auth.Action, fn func(*api.Request) error) {
	a.Handle(pattern, a.Route(App, service, action, fn))
}
