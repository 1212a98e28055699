package melange

import (
	"net/http"
	"net/netip"
	"strconv"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// BlockView is a Melange ip_block (or subnet) as the API shows it.
type BlockView struct {
	ID        string  `json:"id"`
	CIDR      string  `json:"cidr"`
	NetworkID *string `json:"network_id"`
	PolicyID  *string `json:"policy_id"`
	TenantID  string  `json:"tenant_id"`
	Gateway   *string `json:"gateway"`
	ParentID  *string `json:"parent_id"`
	Type      string  `json:"type"`
	DNS1      *string `json:"dns1"`
	DNS2      *string `json:"dns2"`
	Broadcast string  `json:"broadcast"`
	Netmask   string  `json:"netmask"`
	// IPv6Generator is how the block makes IPv6 addresses from a MAC:
	// "tenant" (Melange's tenant-based generator) or "eui64" (modified
	// EUI-64, RFC 2462); null on an IPv4 block.
	IPv6Generator *string `json:"ipv6_generator"`
	CreatedAt     string  `json:"created_at"`
	UpdatedAt     string  `json:"updated_at"`
}

// The values of the ipv6_generator field of a block (melange-facts §7:
// Melange's generator was pluggable; here it is chosen per block).
const (
	IPv6GeneratorTenant = "tenant"
	IPv6GeneratorEUI64  = "eui64"
)

// ipv6Generators maps the ipv6_generator values to the store's generators.
var ipv6Generators = map[string]string{IPv6GeneratorTenant: wire.GeneratorTenantHash, IPv6GeneratorEUI64: wire.GeneratorEUI64}

// ipv6GeneratorName is the ipv6_generator value of a store generator, ""
// for the sequential generator of IPv4 blocks.
func ipv6GeneratorName(g string) string {
	for name, v := range ipv6Generators {
		if v == g {
			return name
		}
	}
	return ""
}

func blockView(b *wire.IPBlock) any {
	v := &BlockView{ID: idString(b.ID), CIDR: b.CIDR, NetworkID: optional(b.NetworkID), PolicyID: optionalID(b.PolicyID),
		TenantID: idString(b.MemberID), Gateway: optional(b.Gateway), ParentID: optionalID(b.ParentID), Type: b.Type,
		DNS1: optional(b.DNS1), DNS2: optional(b.DNS2), IPv6Generator: optional(ipv6GeneratorName(b.Generator)),
		CreatedAt: b.Created, UpdatedAt: b.Updated}
	if p, err := netip.ParsePrefix(b.CIDR); err == nil {
		v.Broadcast = netx.Last(p).String()
		// A mask in address form for both families, as the spec shows
		// (255.255.255.0; ffff:ffff:ffff:ffff:ffff:ffff:: for a /96). The
		// 2012 code gave an IPv6 block's prefix length ("96"); the spec
		// wins where the two differ.
		v.Netmask = netx.Netmask(p).String()
	}
	return v
}

func blockID(b *wire.IPBlock) uint64 { return b.ID }

// ownsBlock: b is the URL tenant's, or the route has no tenant (a
// provider route, global callers only) and any tenant's block will do.
func (q *request) ownsBlock(b *wire.IPBlock) bool {
	return b.MemberID == q.tenant || (q.tenant == 0 && q.PathValue("tenant_id") == "")
}

// block finds the {id} block of the URL tenant: another tenant's block, a
// CloudCIX block or a missing one is 404 IpBlock Not Found.
func (q *request) block() (*wire.IPBlock, error) {
	id, err := strconv.ParseUint(q.PathValue("id"), 10, 64)
	if err == nil {
		if b, ok := q.Txn.IPBlock(id); ok && b.Dialect == wire.DialectMelange && q.ownsBlock(b) {
			return b, nil
		}
	}
	return nil, fault(http.StatusNotFound, "IpBlock Not Found")
}

func registerIPBlocks(a *api.API, opts Options) {
	const blocks = "/tenants/{tenant_id}/ip_blocks"
	handle(a, "GET", blocks, ServiceIPBlock, auth.List, listBlocks)
	handle(a, "POST", blocks, ServiceIPBlock, auth.Create, func(q *request) error { return createBlock(q, opts) })
	handle(a, "GET", blocks+"/{id}", ServiceIPBlock, auth.Read, readBlock)
	handle(a, "PUT", blocks+"/{id}", ServiceIPBlock, auth.Update, updateBlock)
	handle(a, "DELETE", blocks+"/{id}", ServiceIPBlock, auth.Delete, deleteBlock)
	handle(a, "GET", blocks+"/{id}/subnets", ServiceSubnet, auth.List, listSubnets)
	handle(a, "POST", blocks+"/{id}/subnets", ServiceSubnet, auth.Create, func(q *request) error { return createSubnet(q, opts) })
}

// listBlocks: the tenant's blocks, subnets included, filtered by ?type.
func listBlocks(q *request) error {
	qs, err := q.ParseQuery()
	if err != nil {
		return err
	}
	typ := qs.Get("type")
	var items []*wire.IPBlock
	for _, b := range q.Txn.IPBlockListByMember(q.tenant) {
		if b.Dialect == wire.DialectMelange && (typ == "" || b.Type == typ) {
			items = append(items, b)
		}
	}
	res, err := page(q, "ip_blocks", items, blockID, blockView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

func readBlock(q *request) error {
	b, err := q.block()
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, map[string]any{"ip_block": blockView(b)})
	return nil
}

// blockFields reads the fields a create accepts (melange-facts §3: the
// body's tenant_id and parent_id are ignored on a block create). gen is the
// generator of an IPv6 block without ipv6_generator (a subnet's parent's;
// "" for the default, tenant).
func blockFields(b body, in *wire.IPBlock, gen string, opts Options) error {
	for _, f := range []struct {
		name string
		dst  *string
	}{{"cidr", &in.CIDR}, {"type", &in.Type}, {"network_id", &in.NetworkID}, {"gateway", &in.Gateway},
		{"dns1", &in.DNS1}, {"dns2", &in.DNS2}} {
		v, _, err := b.str(f.name)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	pol, _, err := b.str("policy_id")
	if err != nil {
		return err
	}
	if in.PolicyID, err = parsePolicy(pol); err != nil {
		return err
	}
	if in.Generator, err = generatorField(b, in.CIDR, gen); err != nil {
		return err
	}
	defaults(in, opts)
	return nil
}

// generatorField reads the ipv6_generator of a block of cidr: "tenant" or
// "eui64", on IPv6 blocks only (400 otherwise); absent, null or "" is cur,
// the block's generator as it stands ("" on a create: the default).
func generatorField(b body, cidr, cur string) (string, error) {
	v, _, err := b.str("ipv6_generator")
	if err != nil {
		return "", err
	}
	if v == "" {
		return cur, nil
	}
	g, ok := ipv6Generators[v]
	if !ok {
		return "", invalid("ipv6_generator", "ipv6_generator should be one among tenant, eui64")
	}
	if p, err := netx.ParsePrefixRaw(cidr); err == nil && !p.Addr().Is6() {
		return "", invalid("ipv6_generator", "ipv6_generator applies to IPv6 blocks only")
	}
	return g, nil
}

func parsePolicy(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, invalid("policy_id", "Policy with id = '"+s+"' doesn't exist")
	}
	return n, nil
}

// defaults applies Melange's request defaults: dns1 and dns2 are the
// configured ones (opts; none when unset), the gateway is the second
// address of the block (melange-api-spec; the spec wins over the 2012
// code), and IPv6 blocks use the tenant-based generator unless one is
// chosen.
func defaults(in *wire.IPBlock, opts Options) {
	if in.DNS1 == "" {
		in.DNS1 = opts.DNS1
	}
	if in.DNS2 == "" {
		in.DNS2 = opts.DNS2
	}
	p, err := netx.ParsePrefixRaw(in.CIDR)
	if err != nil {
		return
	}
	p = p.Masked()
	if in.Gateway == "" && p.Bits() < p.Addr().BitLen() {
		in.Gateway = p.Addr().Next().String()
	}
	switch {
	case !p.Addr().Is6():
		in.Generator = ""
	case in.Generator == "":
		in.Generator = wire.GeneratorTenantHash
	}
}

// createBlock: cidr and type are mandatory; tenant_id and parent_id in
// the body are ignored (the tenant is the URL's).
func createBlock(q *request, opts Options) error {
	b, err := decode(q, "ip_block")
	if err != nil {
		return err
	}
	in := &wire.IPBlock{Dialect: wire.DialectMelange, MemberID: q.tenant}
	if err := blockFields(b, in, "", opts); err != nil {
		return err
	}
	// type is mandatory (melange-api-spec, "Create tenant's IP block"):
	// state would default it to private, which the spec does not. A
	// subnet's type comes from its parent. A malformed cidr is reported
	// with it, as Melange's validation lists both.
	if in.Type != wire.BlockPublic && in.Type != wire.BlockPrivate {
		errs := map[string]wire.FieldError{"type": {Detail: "type should be one among public, private"}}
		if _, err := netx.ParsePrefixRaw(in.CIDR); err != nil {
			errs["cidr"] = wire.FieldError{Detail: "cidr is invalid"}
		}
		return fault(http.StatusBadRequest, "The following values are invalid: %s", pyDict(errs))
	}
	v, index, err := apply(q, fsm.IPBlockCreateType, in, 0)
	if err != nil {
		return err
	}
	reply(q, http.StatusCreated, index, map[string]any{"ip_block": blockView(v.(*wire.IPBlock))})
	return nil
}

// updateBlock changes network_id, policy_id, gateway, dns1 and dns2 (as
// Melange's update, which excluded only cidr and type), and the
// ipv6_generator of an IPv6 block (the addresses it holds stay; the next
// ones come from the new generator); cidr, type, tenant_id and parent_id in
// the body are ignored (melange-facts §3). A gateway outside the block, or
// one an address of the block holds, is 400, and so is an ipv6_generator
// on an IPv4 block.
func updateBlock(q *request) error {
	b, err := decode(q, "ip_block")
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		cur, err := q.block()
		if err != nil {
			return err
		}
		in := *cur
		for _, f := range []struct {
			name string
			dst  *string
		}{{"network_id", &in.NetworkID}, {"gateway", &in.Gateway}, {"dns1", &in.DNS1}, {"dns2", &in.DNS2}} {
			v, present, err := b.str(f.name)
			if err != nil {
				return err
			}
			if present {
				*f.dst = v
			}
		}
		if pol, present, err := b.str("policy_id"); err != nil {
			return err
		} else if present {
			if in.PolicyID, err = parsePolicy(pol); err != nil {
				return err
			}
		}
		if in.Generator, err = generatorField(b, cur.CIDR, cur.Generator); err != nil {
			return err
		}
		v, index, err := apply(q, fsm.IPBlockUpdateType, &in, cur.ModifiedIndex)
		if err != nil && stale(err) && attempt < api.ConflictRetries {
			q.Txn = q.API.Store().Read()
			continue
		}
		if err != nil {
			return err
		}
		reply(q, http.StatusOK, index, map[string]any{"ip_block": blockView(v.(*wire.IPBlock))})
		return nil
	}
}

// deleteBlock: 200 with an empty body. As in Melange the block's subnets,
// their addresses and routes go with it, in one command.
func deleteBlock(q *request) error {
	return deleteObject(q, fsm.IPBlockCascadeDeleteType, func() (wire.Object, error) { return q.block() })
}

// listSubnets: the children of the block, whoever owns them.
func listSubnets(q *request) error {
	parent, err := q.block()
	if err != nil {
		return err
	}
	res, err := page(q, "subnets", q.Txn.IPBlockChildren(parent.ID), blockID, blockView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

// createSubnet: type and parent_id come from the parent; network_id and
// tenant_id may be given (default: the parent's). Only a global caller may
// give the subnet to another tenant.
func createSubnet(q *request, opts Options) error {
	parent, err := q.block()
	if err != nil {
		return err
	}
	b, err := decode(q, "subnet")
	if err != nil {
		return err
	}
	in := &wire.IPBlock{Dialect: wire.DialectMelange}
	if err := blockFields(b, in, parent.Generator, opts); err != nil {
		return err
	}
	in.ParentID, in.Type = parent.ID, parent.Type
	t, _, err := b.str("tenant_id")
	if err != nil {
		return err
	}
	if t != "" {
		n, perr := strconv.ParseUint(t, 10, 64)
		if perr != nil || n == 0 {
			return invalid("tenant_id", "tenant_id is invalid")
		}
		if err := q.forTenant(t, "subnets"); err != nil {
			return err
		}
		in.MemberID = n
	}
	v, index, err := apply(q, fsm.IPBlockCreateType, in, 0)
	if err != nil {
		return err
	}
	reply(q, http.StatusCreated, index, map[string]any{"subnet": blockView(v.(*wire.IPBlock))})
	return nil
}
