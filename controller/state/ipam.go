package state

// IPAM state: blocks (Melange ip_blocks and subnets, CloudCIX allocations and
// subnets), addresses, policies, MAC ranges and ASNs. The model and its
// mapping onto both dialects is docs/ipam-model.md.
//
// Engine placement. Each stored block row (*BlockRecord) carries its
// allocation engine (*ipam.Block) in an unexported field. Every change
// clones the engine (O(1)), mutates the clone and inserts a new row holding
// it, inside the command's memdb transaction. So:
//   - a read transaction sees the engine that matches the address rows of
//     its own MVCC snapshot, with no lock;
//   - an aborted transaction (a failed command, or a batch that ApplyBatch
//     drops and replays) discards the engine change together with the rows:
//     there is no side table to roll back or to keep in step;
//   - snapshots never contain the engine (it is not serialised); load
//     rebuilds it from the block, policy and address rows with ipam.Load.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/controller/ipam"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// ipamSeed keys the engine's treaps. Any fixed value is deterministic; the
// engine is never serialised, so it can change between releases.
const ipamSeed = 0x5265_6765_6e74_4950

// ipPolicyEntries is the sequence (a key of the index table, not a table)
// that numbers unusable ranges and octets.
const ipPolicyEntries = "ipam_policy_entries"

// BlockRecord is a stored block: the API view plus its allocation engine,
// which is derived state (see the file comment) and never serialised.
type BlockRecord struct {
	api.IPBlock
	engine *ipam.Block
}

// IPRef names an address by id, or by block and address.
type IPRef struct {
	ID      uint64 `json:"id,omitempty"`
	BlockID uint64 `json:"block_id,omitempty"`
	Address string `json:"address,omitempty"`
}

// addrIndexer indexes addresses by (block id, address) in numeric address
// order: 8 bytes of block id then the 16-byte address (IPv4 mapped).
type addrIndexer struct{}

func addrIndexKey(block uint64, a netip.Addr) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 24), block)
	a16 := a.As16()
	return append(b, a16[:]...)
}

func (addrIndexer) FromObject(raw any) (bool, []byte, error) {
	a, ok := raw.(*api.IPAddress)
	if !ok {
		return false, nil, fmt.Errorf("address index: unexpected %T", raw)
	}
	ip, err := netip.ParseAddr(a.Address)
	if err != nil {
		return false, nil, fmt.Errorf("address index: %w", err)
	}
	return true, addrIndexKey(a.BlockID, ip), nil
}

func (addrIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("address index: want (block id, address), got %d args", len(args))
	}
	block, ok := args[0].(uint64)
	if !ok {
		return nil, fmt.Errorf("address index: block id must be uint64, got %T", args[0])
	}
	ip, ok := args[1].(netip.Addr)
	if !ok {
		return nil, fmt.Errorf("address index: address must be netip.Addr, got %T", args[1])
	}
	return addrIndexKey(block, ip), nil
}

func (addrIndexer) PrefixFromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("address index: want (block id), got %d args", len(args))
	}
	block, ok := args[0].(uint64)
	if !ok {
		return nil, fmt.Errorf("address index: block id must be uint64, got %T", args[0])
	}
	return binary.BigEndian.AppendUint64(nil, block), nil
}

func uintIndex(name, field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, Indexer: uintFieldIndex(field)}
}

// optionalRefIndex indexes an optional reference: rows whose field is 0
// (no reference) are left out of the index, so it holds only the few rows
// that refer to something. Look it up by a non-zero id only.
func optionalRefIndex(name, field string) *memdb.IndexSchema {
	ix := uintFieldIndex(field)
	ix.skipZero = true
	return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: ix}
}

func ipamSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		ASNs: {Name: ASNs, Indexes: map[string]*memdb.IndexSchema{
			"id":     idIndex(),
			"number": {Name: "number", Unique: true, Indexer: uintFieldIndex("Number")},
			"member": uintIndex("member", "MemberID"),
		}},
		IPPolicies: {Name: IPPolicies, Indexes: map[string]*memdb.IndexSchema{
			"id":     idIndex(),
			"member": uintIndex("member", "MemberID"),
		}},
		IPBlocks: {Name: IPBlocks, Indexes: map[string]*memdb.IndexSchema{
			"id":     idIndex(),
			"member": uintIndex("member", "MemberID"),
			"parent": uintIndex("parent", "ParentID"),
			"policy": uintIndex("policy", "PolicyID"),
			"asn":    uintIndex("asn", "ASNID"),
			// virtual_router: the subnets of a project's virtual router
			// (ProjectSubnets; the others are not indexed).
			"virtual_router": optionalRefIndex("virtual_router", "VirtualRouterID"),
			// network: the Melange blocks of a network_id (none: not indexed).
			"network": {Name: "network", AllowMissing: true, Indexer: stringFieldIndex("NetworkID", false)},
			// type: the public blocks are few, the private ones many.
			"type": {Name: "type", AllowMissing: true, Indexer: stringFieldIndex("Type", false)},
		}},
		IPAddresses: {Name: IPAddresses, Indexes: map[string]*memdb.IndexSchema{
			"id":        idIndex(),
			"block":     uintIndex("block", "BlockID"),
			"address":   {Name: "address", Unique: true, Indexer: addrIndexer{}},
			"member":    uintIndex("member", "MemberID"),
			"tenant":    {Name: "tenant", AllowMissing: true, Indexer: stringFieldIndex("UsedByTenant", false)},
			"interface": {Name: "interface", AllowMissing: true, Indexer: stringFieldIndex("InterfaceID", false)},
			"public_ip": optionalRefIndex("public_ip", "PublicIPID"),
		}},
		MACRanges: {Name: MACRanges, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(),
		}},
	}
}

// --- conversions to the engine ---

func engineDialect(s string) (ipam.Dialect, bool) {
	switch s {
	case api.DialectMelange:
		return ipam.Melange, true
	case api.DialectCloudCIX:
		return ipam.CloudCIX, true
	}
	return 0, false
}

func engineGenerator(s string) (ipam.Generator, bool) {
	switch s {
	case api.GeneratorSequential:
		return ipam.Sequential, true
	case api.GeneratorEUI64:
		return ipam.EUI64, true
	case api.GeneratorTenantHash:
		return ipam.TenantHash, true
	}
	return 0, false
}

func enginePolicy(p *api.IPPolicy) ipam.Policy {
	var out ipam.Policy
	if p == nil {
		return out
	}
	for _, r := range p.UnusableRanges {
		out.Ranges = append(out.Ranges, ipam.Range{Offset: r.Offset, Length: r.Length})
	}
	for _, o := range p.UnusableOctets {
		out.Octets = append(out.Octets, o.Octet)
	}
	return out
}

// newEngine builds the empty engine of a block whose fields are valid.
func newEngine(b *api.IPBlock, pol *api.IPPolicy) (*ipam.Block, error) {
	p, err := netx.ParsePrefix(b.CIDR)
	if err != nil {
		return nil, err
	}
	cfg := ipam.Config{Prefix: p, Policy: enginePolicy(pol), Seed: ipamSeed}
	if b.Gateway != "" {
		if cfg.Gateway, err = netx.ParseAddr(b.Gateway); err != nil {
			return nil, err
		}
	}
	var ok bool
	if cfg.Dialect, ok = engineDialect(b.Dialect); !ok {
		return nil, fmt.Errorf("unknown dialect %q", b.Dialect)
	}
	if cfg.Generator, ok = engineGenerator(b.Generator); !ok {
		return nil, fmt.Errorf("unknown generator %q", b.Generator)
	}
	return ipam.NewBlock(cfg)
}

func parseStamp(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// rebuildIPAM attaches an engine to every block loaded from a snapshot,
// from the block, its policy and its address rows. It refuses addresses of
// unknown blocks, outside their block, or held twice.
func rebuildIPAM(txn *memdb.Txn) error {
	r := &ReadTxn{txn: memTxn{Txn: txn}}
	inBlocks := 0 // the addresses of the blocks: all of them, or one is an orphan
	var allocated []netip.Addr
	var released []ipam.Released
	for _, rec := range all[*BlockRecord](r, IPBlocks, "id") {
		var pol *api.IPPolicy
		if rec.PolicyID != 0 {
			p, ok := get[*api.IPPolicy](r, IPPolicies, rec.PolicyID)
			if !ok {
				return fmt.Errorf("block %d: policy %d does not exist", rec.ID, rec.PolicyID)
			}
			pol = p
		}
		eng, err := newEngine(&rec.IPBlock, pol)
		if err != nil {
			return fmt.Errorf("block %d: %v", rec.ID, err)
		}
		allocated, released = allocated[:0], released[:0]
		it, err := txn.Get(IPAddresses, "address_prefix", rec.ID)
		if err != nil {
			return err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			a := raw.(*api.IPAddress)
			inBlocks++
			ip, err := netx.ParseAddr(a.Address)
			if err != nil {
				return fmt.Errorf("address %d: %v", a.ID, err)
			}
			if !a.Deallocated {
				allocated = append(allocated, ip)
				continue
			}
			at, err := parseStamp(a.DeallocatedAt)
			if err != nil {
				return fmt.Errorf("address %d: deallocated_at: %v", a.ID, err)
			}
			released = append(released, ipam.Released{Addr: ip, At: at})
		}
		if err := eng.Load(allocated, released); err != nil {
			return fmt.Errorf("block %d: %v", rec.ID, err)
		}
		// rec was decoded from this snapshot and is seen by nobody else.
		rec.engine = eng
	}
	it, err := txn.Get(IPAddresses, "id")
	if err != nil {
		return err
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	if n == inBlocks {
		return nil
	}
	for _, a := range all[*api.IPAddress](r, IPAddresses, "id") {
		if _, ok := get[*BlockRecord](r, IPBlocks, a.BlockID); !ok {
			return fmt.Errorf("address %d: block %d does not exist", a.ID, a.BlockID)
		}
	}
	return fmt.Errorf("%d addresses, %d in blocks", n, inBlocks)
}

// --- reads ---

// IPBlock returns the block with id.
func (r *ReadTxn) IPBlock(id uint64) (*api.IPBlock, bool) {
	rec, ok := get[*BlockRecord](r, IPBlocks, id)
	if !ok {
		return nil, false
	}
	return &rec.IPBlock, true
}

// IPBlockList returns all blocks ordered by id.
func (r *ReadTxn) IPBlockList() []*api.IPBlock {
	return blockViews(all[*BlockRecord](r, IPBlocks, "id"))
}

// IPBlockListByMember returns the blocks of member ordered by id.
func (r *ReadTxn) IPBlockListByMember(member uint64) []*api.IPBlock {
	return blockViews(all[*BlockRecord](r, IPBlocks, "member", member))
}

// IPBlockChildren returns the subnets of block id ordered by id.
func (r *ReadTxn) IPBlockChildren(id uint64) []*api.IPBlock {
	return blockViews(all[*BlockRecord](r, IPBlocks, "parent", id))
}

func blockViews(recs []*BlockRecord) []*api.IPBlock {
	out := make([]*api.IPBlock, len(recs))
	for i, rec := range recs {
		out[i] = &rec.IPBlock
	}
	return out
}

// IPBlockUtilisation returns the address counts of block id.
func (r *ReadTxn) IPBlockUtilisation(id uint64) (ipam.Utilisation, bool) {
	rec, ok := get[*BlockRecord](r, IPBlocks, id)
	if !ok {
		return ipam.Utilisation{}, false
	}
	return r.engineOf(rec).Utilisation(), true
}

// IPBlockNextFree returns the address an allocation in block id would get
// now, without allocating it.
func (r *ReadTxn) IPBlockNextFree(id uint64, req ipam.Request) (netip.Addr, error) {
	rec, ok := get[*BlockRecord](r, IPBlocks, id)
	if !ok {
		return netip.Addr{}, api.NotFound("ipam_block_read_001")
	}
	return r.engineOf(rec).NextFree(req)
}

// IPBlockSubnetSpace returns the free and used space of block id among its
// subnets (CloudCIX subnet_space).
func (r *ReadTxn) IPBlockSubnetSpace(id uint64) ([]ipam.SpaceEntry, bool) {
	rec, ok := get[*BlockRecord](r, IPBlocks, id)
	if !ok {
		return nil, false
	}
	var used []netip.Prefix
	for _, c := range r.IPBlockChildren(id) {
		used = append(used, netip.MustParsePrefix(c.CIDR))
	}
	return ipam.SubnetSpaceAll(netip.MustParsePrefix(rec.CIDR), used), true
}

// IPAddress returns the address row with id.
func (r *ReadTxn) IPAddress(id uint64) (*api.IPAddress, bool) {
	return get[*api.IPAddress](r, IPAddresses, id)
}

// IPAddressIn returns the row of addr in block.
func (r *ReadTxn) IPAddressIn(block uint64, addr string) (*api.IPAddress, bool) {
	ip, err := netx.ParseAddr(addr)
	if err != nil {
		return nil, false
	}
	raw, err := r.txn.First(IPAddresses, "address", block, ip)
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*api.IPAddress), true
}

// IPAddressList returns the addresses of block in address order.
func (r *ReadTxn) IPAddressList(block uint64) []*api.IPAddress {
	return all[*api.IPAddress](r, IPAddresses, "address_prefix", block)
}

// IPBlockHasAddresses reports whether block holds an address row
// (allocated or soft-deallocated): the first row of the block's part of
// the address index, O(log n), where IPAddressList loaded them all.
func (r *ReadTxn) IPBlockHasAddresses(block uint64) bool {
	raw, err := r.txn.First(IPAddresses, "address_prefix", block)
	return err == nil && raw != nil
}

// IPBlockHeld is the number of address rows of block id (allocated and
// soft-deallocated): the engine's count, kept with the rows, O(1).
func (r *ReadTxn) IPBlockHeld(id uint64) uint64 {
	u, _ := r.IPBlockUtilisation(id)
	return u.Allocated.AddSat(u.Deallocated).Lo // one per row: far below 2^64
}

// AppendIPAddresses appends the addresses of block, ordered by address,
// to out: IPAddressList without a slice per block, for callers that gather
// the addresses of many blocks.
func (r *ReadTxn) AppendIPAddresses(out []*api.IPAddress, block uint64) []*api.IPAddress {
	it, err := r.txn.Get(IPAddresses, "address_prefix", block)
	if err != nil {
		return out
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*api.IPAddress))
	}
	return out
}

// IPAddressListAll returns every address, by id.
func (r *ReadTxn) IPAddressListAll() []*api.IPAddress {
	return all[*api.IPAddress](r, IPAddresses, "id")
}

// IPAddressListByTenant returns the addresses used by a Melange tenant
// (used_by_tenant), by id.
func (r *ReadTxn) IPAddressListByTenant(tenant string) []*api.IPAddress {
	out := all[*api.IPAddress](r, IPAddresses, "tenant", tenant)
	slices.SortFunc(out, func(a, b *api.IPAddress) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// IPBlockListByNetwork returns the blocks of a Melange network, by id.
func (r *ReadTxn) IPBlockListByNetwork(network string) []*api.IPBlock {
	out := blockViews(r.networkBlockRecords(network, true))
	slices.SortFunc(out, func(a, b *api.IPBlock) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// networkBlockRecords are the blocks of network (exactly: see exactly).
func (r *ReadTxn) networkBlockRecords(network string, exact bool) []*BlockRecord {
	return exactly(all[*BlockRecord](r, IPBlocks, "network", network), func(b *BlockRecord) string { return b.NetworkID }, network, exact)
}

// IPAddressListByMember returns the addresses owned by member, by id.
func (r *ReadTxn) IPAddressListByMember(member uint64) []*api.IPAddress {
	return all[*api.IPAddress](r, IPAddresses, "member", member)
}

// IPPolicy returns the policy with id.
func (r *ReadTxn) IPPolicy(id uint64) (*api.IPPolicy, bool) {
	return get[*api.IPPolicy](r, IPPolicies, id)
}

// IPPolicyList returns all policies ordered by id.
func (r *ReadTxn) IPPolicyList() []*api.IPPolicy { return all[*api.IPPolicy](r, IPPolicies, "id") }

// MACRange returns the MAC range with id.
func (r *ReadTxn) MACRange(id uint64) (*api.MACRange, bool) {
	return get[*api.MACRange](r, MACRanges, id)
}

// MACRangeList returns all MAC ranges ordered by id (Melange's order of use).
func (r *ReadTxn) MACRangeList() []*api.MACRange { return all[*api.MACRange](r, MACRanges, "id") }

// ASN returns the ASN with id.
func (r *ReadTxn) ASN(id uint64) (*api.ASN, bool) { return get[*api.ASN](r, ASNs, id) }

// ASNList returns all ASNs ordered by id.
func (r *ReadTxn) ASNList() []*api.ASN { return all[*api.ASN](r, ASNs, "id") }

// --- blocks ---

// engineOf is the IPAM engine of rec as this transaction sees it: the one
// an earlier command of the transaction left (setEngine), else the stored
// one. Engines are never changed in place: a change clones, and a failed
// change leaves the clone behind.
func (r *ReadTxn) engineOf(rec *BlockRecord) *ipam.Block {
	if e, ok := r.engines[rec.ID]; ok {
		return e
	}
	return rec.engine
}

// setEngine makes eng the engine of block id from now on in this
// transaction. The block record in memdb gets it at Commit (flushEngines):
// re-inserting the record after every address would update each of the
// block table's indexes each time, for fields that did not change. The
// block's own fields are unchanged, so its modified_index and the table
// index stay.
func (t *Txn) setEngine(id uint64, eng *ipam.Block) error {
	t.engines[id] = eng
	return nil
}

// flushEngines stores the engines this transaction changed into their
// block records, in block id order (the same on every node). A block
// deleted meanwhile is skipped.
func (t *Txn) flushEngines() error {
	ids := make([]uint64, 0, len(t.engines))
	for id := range t.engines {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		rec, ok := get[*BlockRecord](&t.ReadTxn, IPBlocks, id)
		if !ok {
			continue
		}
		if rec.engine == t.engines[id] {
			continue
		}
		n := *rec
		n.engine = t.engines[id]
		if err := t.txn.Insert(IPBlocks, &n); err != nil {
			return err
		}
	}
	return nil
}

func (t *Txn) blockRecord(id uint64) (*BlockRecord, bool) {
	return get[*BlockRecord](&t.ReadTxn, IPBlocks, id)
}

// IPBlockCreate stores a new block (a Melange block or subnet, a CloudCIX
// allocation or subnet) after the dialect's CIDR rules. Request defaults
// (Melange's gateway and IPv6 generator, DNS servers) are the dialect's job;
// here an empty generator means sequential and an empty type private.
func (t *Txn) IPBlockCreate(b *api.IPBlock) (*api.IPBlock, error) {
	const method = "create"
	c := func(n int) string { return code("ipam", "block", method, n) }
	fe := api.FieldErrors{}
	var parent *BlockRecord
	if b.ParentID != 0 {
		p, ok := t.blockRecord(b.ParentID)
		if !ok || (b.Dialect != "" && p.Dialect != b.Dialect) {
			return nil, fieldErr("parent_id", c(107), "IpBlock with id = '%d' doesn't exist", b.ParentID)
		}
		parent = p
		// Forced from the parent (melange-facts §3); tenant and network default to it.
		b.Dialect, b.Type, b.ASNID = p.Dialect, p.Type, p.ASNID
		if b.MemberID == 0 {
			b.MemberID = p.MemberID
		}
		if b.NetworkID == "" {
			b.NetworkID = p.NetworkID
		} else if p.NetworkID != "" && p.NetworkID != b.NetworkID {
			fe.Add("network_id", c(108), "network_id should be same as that of parent")
		}
		if t.IPBlockHasAddresses(p.ID) {
			fe.Add("parent_id", c(109), "parent is not subnettable since it has allocated ips")
		}
		// A subnet of a project's virtual router holds the project's VMs:
		// a subnet under it would make it refuse every later one.
		if p.Dialect == api.DialectCloudCIX && p.VirtualRouterID != 0 && t.since(Rules2) {
			fe.Add("parent_id", c(124), "Subnet %d belongs to the virtual router of a cloud project and cannot have subnets.", p.ID)
		}
	}
	if b.Type == "" {
		b.Type = api.BlockPrivate
	}
	if b.Generator == "" {
		b.Generator = api.GeneratorSequential
	}
	t.blockFieldChecks(b, method, fe)
	t.blockRouterCheck(b, method, fe)
	prefix, perr := netx.ParsePrefixRaw(b.CIDR)
	if perr != nil {
		fe.Add("cidr", c(102), "cidr is invalid")
	} else {
		b.CIDR = prefix.Masked().String()
	}
	if b.Type != api.BlockPublic && b.Type != api.BlockPrivate {
		fe.Add("type", c(103), "type should be one among public, private")
	}
	if _, ok := engineDialect(b.Dialect); !ok {
		fe.Add("dialect", c(104), "dialect should be one among melange, cloudcix")
	}
	if b.Dialect == api.DialectMelange {
		b.ASNID = 0
	}
	if b.Dialect == api.DialectCloudCIX && parent == nil {
		if a, ok := t.ASN(b.ASNID); !ok || a.MemberID != b.MemberID {
			fe.Add("asn_id", c(110), "ASN with id = '%d' doesn't exist", b.ASNID)
		}
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	gw := netip.Addr{}
	if b.Gateway != "" {
		gw, _ = netx.ParseAddr(b.Gateway)
	}
	if err := t.blockOverlaps(b, parent, prefix, gw, method); err != nil {
		return nil, err
	}
	pol, _ := t.IPPolicy(b.PolicyID)
	eng, err := newEngine(b, pol)
	if err != nil {
		return nil, fieldErr("generator", c(105), "The block cannot be built: %v", err)
	}
	rec := &BlockRecord{IPBlock: *b, engine: eng}
	if err := insertNew(t, IPBlocks, rec); err != nil {
		return nil, err
	}
	return &rec.IPBlock, nil
}

// blockRouterCheck: router_id, when set, names a router (a foreign key,
// cloudcix-facts §5.7). An update checks it only when it changes, so a
// block keeps the router it had.
func (t *Txn) blockRouterCheck(b *api.IPBlock, method string, fe api.FieldErrors) {
	if b.RouterID == 0 {
		return
	}
	if _, ok := t.Router(b.RouterID); !ok {
		fe.Add("router_id", code("ipam", "block", method, 123), "Router with id = '%d' doesn't exist", b.RouterID)
	}
}

// blockFieldChecks validates the fields a create and an update share:
// member, gateway, DNS servers, generator, policy and the type-per-network
// rule.
//
// The gateway must lie inside the block (120). Melange did not check this
// (melange-facts §3 rule 10), but a gateway outside the block is bad input
// (issue 3, "Bad input"): no host on the block can reach it. The network and
// broadcast addresses are inside and allowed (melange-facts §4). CloudCIX
// gateways are the host part of an address_range, always inside. dns1 and
// dns2 are addresses of either family (121): an IPv6 block may well name
// IPv4 resolvers, as Melange's defaults (8.8.8.8, 8.8.4.4) did.
func (t *Txn) blockFieldChecks(b *api.IPBlock, method string, fe api.FieldErrors) {
	c := func(n int) string { return code("ipam", "block", method, n) }
	if _, ok := t.Member(b.MemberID); !ok {
		fe.Add("member_id", c(101), "Member %d does not exist.", b.MemberID)
	}
	prefix, perr := netx.ParsePrefixRaw(b.CIDR)
	if b.Gateway != "" {
		gw, err := netx.ParseAddr(b.Gateway)
		switch {
		case err != nil || (perr == nil && gw.BitLen() != prefix.Addr().BitLen()):
			fe.Add("gateway", c(106), "Gateway is not a valid address")
		case perr == nil && !prefix.Masked().Contains(gw):
			fe.Add("gateway", c(120), "gateway should be within cidr %s of the block", prefix.Masked())
		default:
			b.Gateway = gw.String()
		}
	}
	for _, d := range []struct {
		name string
		v    *string
	}{{"dns1", &b.DNS1}, {"dns2", &b.DNS2}} {
		if *d.v == "" {
			continue
		}
		if a, err := netx.ParseAddr(*d.v); err != nil {
			fe.Add(d.name, c(121), "%s is not a valid address", d.name)
		} else {
			*d.v = a.String()
		}
	}
	if g, ok := engineGenerator(b.Generator); !ok {
		fe.Add("generator", c(105), "generator should be one among sequential, eui64, tenant-hash")
	} else if g != ipam.Sequential && perr == nil && !prefix.Addr().Is6() {
		fe.Add("generator", c(105), "The %s generator needs an IPv6 block.", b.Generator)
	}
	if b.PolicyID != 0 {
		if p, ok := t.IPPolicy(b.PolicyID); !ok || p.MemberID != b.MemberID {
			fe.Add("policy_id", c(111), "Policy with id = '%d' doesn't exist", b.PolicyID)
		}
	}
	if b.NetworkID != "" {
		for _, o := range t.networkBlockRecords(b.NetworkID, t.since(Rules2)) {
			if o.ID != b.ID && o.Dialect == b.Dialect && o.Type != b.Type {
				fe.Add("type", c(112), "type should be same within a network")
				break
			}
		}
	}
}

// blockOverlaps applies the dialect's CIDR rules: Melange rules 3–6
// (melange-facts §3), CloudCIX's subnet rules, and for CloudCIX allocations
// no overlap within one ASN nor with a public allocation (either side: only
// private ranges of different ASNs may repeat). On an update
// (b.ID set) the block itself is left out of the others, and so are its
// subnets as top-level blocks of b's network: they share b's network.
func (t *Txn) blockOverlaps(b *api.IPBlock, parent *BlockRecord, raw netip.Prefix, gw netip.Addr, method string) error {
	c := func(n int) string { return code("ipam", "block", method, n) }
	cidr := raw.Masked()
	// The other blocks a check compares with come from the indexes (top
	// level, children of parent, same network): a scan of every block made
	// each create O(blocks), and parsed every block's CIDR.
	others := func(index string, arg any) []*BlockRecord {
		var out []*BlockRecord
		for _, o := range all[*BlockRecord](&t.ReadTxn, IPBlocks, index, arg) {
			if o.Dialect == b.Dialect && (b.ID == 0 || o.ID != b.ID) {
				out = append(out, o)
			}
		}
		return out
	}
	pfx := func(o *BlockRecord) netip.Prefix { return netip.MustParsePrefix(o.CIDR) }
	if b.Dialect == api.DialectMelange {
		chk := ipam.MelangeCIDRCheck{CIDR: cidr, Public: b.Type == api.BlockPublic,
			TopLevelInNetwork: parent == nil || parent.NetworkID != b.NetworkID}
		if parent != nil {
			chk.Parent = pfx(parent)
		}
		for _, o := range others("type", api.BlockPublic) {
			if o.ParentID == 0 {
				chk.PublicRoots = append(chk.PublicRoots, pfx(o))
			}
		}
		if parent != nil {
			for _, o := range others("parent", parent.ID) {
				chk.Siblings = append(chk.Siblings, pfx(o))
			}
		}
		if chk.TopLevelInNetwork && b.NetworkID != "" {
			for _, o := range others("network", b.NetworkID) {
				if o.NetworkID != b.NetworkID && t.since(Rules2) {
					continue // another network's (see exactly)
				}
				if (parent == nil || o.ID != parent.ID) && (b.ID == 0 || o.ParentID != b.ID) && t.topLevel(o) {
					chk.NetworkTopLevel = append(chk.NetworkTopLevel, pfx(o))
				}
			}
		}
		if errs := chk.Errors(); len(errs) > 0 {
			return fieldErr("cidr", c(113), "%s", errs[0])
		}
		return nil
	}
	if parent == nil { // a CloudCIX allocation
		for _, o := range others("parent", uint64(0)) {
			if !netx.Overlaps(cidr, pfx(o)) {
				continue
			}
			if o.ASNID == b.ASNID || o.Type == api.BlockPublic || b.Type == api.BlockPublic {
				return fieldErr("cidr", c(114), "cidr overlaps with allocation %s", o.CIDR)
			}
		}
		return nil
	}
	cand := cidr
	if gw.IsValid() && cidr.Contains(gw) {
		cand = netip.PrefixFrom(gw, cidr.Bits())
	}
	var siblings []netip.Prefix
	for _, o := range others("parent", parent.ID) {
		siblings = append(siblings, blockRaw(&o.IPBlock))
	}
	switch r := ipam.CheckCloudCIXSubnet(cand, blockRaw(&parent.IPBlock), parent.ParentID != 0, siblings); r {
	case ipam.SubnetOK:
		return nil
	default:
		return fieldErr("cidr", c(114+int(r)), "The address range is refused: %s.", r)
	}
}

// blockRaw is a CloudCIX block's address_range: its CIDR with the gateway
// as host part (the network when it has no gateway inside it).
func blockRaw(o *api.IPBlock) netip.Prefix {
	p := netip.MustParsePrefix(o.CIDR)
	if o.Gateway != "" {
		if g, err := netip.ParseAddr(o.Gateway); err == nil && p.Contains(g) {
			return netip.PrefixFrom(g, p.Bits())
		}
	}
	return p
}

// sameAsParentOrChild refuses a CloudCIX subnet b whose new gateway makes
// its address_range, host part included, the same as its parent subnet's
// or a child's (the one CloudCIX subnet rule a new gateway can break).
func (t *Txn) sameAsParentOrChild(b *api.IPBlock, method string) error {
	raw := blockRaw(b)
	refuse := func(what string) error {
		return fieldErr("cidr", code("ipam", "block", method, 114+int(ipam.SubnetSameAsParent)),
			"The address range is refused: %s (%s).", ipam.SubnetSameAsParent, what)
	}
	if p, ok := t.blockRecord(b.ParentID); ok && p.ParentID != 0 &&
		ipam.CheckCloudCIXSubnet(raw, blockRaw(&p.IPBlock), true, nil) == ipam.SubnetSameAsParent {
		return refuse(fmt.Sprintf("parent subnet %d", p.ID))
	}
	for _, c := range all[*BlockRecord](&t.ReadTxn, IPBlocks, "parent", b.ID) {
		if ipam.CheckCloudCIXSubnet(blockRaw(&c.IPBlock), raw, true, nil) == ipam.SubnetSameAsParent {
			return refuse(fmt.Sprintf("child subnet %d", c.ID))
		}
	}
	return nil
}

// topLevel: a block without parent, or whose network differs from its
// parent's (melange-facts §3 rule 6).
func (t *Txn) topLevel(o *BlockRecord) bool {
	if o.ParentID == 0 {
		return true
	}
	p, ok := t.blockRecord(o.ParentID)
	return !ok || p.NetworkID != o.NetworkID
}

// IPBlockUpdate replaces the mutable fields of a block: gateway, generator,
// policy, network and the descriptive fields. CIDR, type, parent, dialect,
// owner and ASN are kept from the stored block (Melange ignores them too).
func (t *Txn) IPBlockUpdate(b *api.IPBlock, expect uint64) (*api.IPBlock, error) {
	const method = "update"
	old, ok := t.blockRecord(b.ID)
	if !ok {
		return nil, api.NotFound(code("ipam", "block", method, 1))
	}
	b.CIDR, b.Type, b.ParentID, b.Dialect, b.MemberID, b.ASNID = old.CIDR, old.Type, old.ParentID, old.Dialect, old.MemberID, old.ASNID
	if b.Generator == "" {
		b.Generator = old.Generator
	}
	fe := api.FieldErrors{}
	if old.ParentID != 0 && b.NetworkID != old.NetworkID {
		if p, ok := t.blockRecord(old.ParentID); ok && p.NetworkID != "" && p.NetworkID != b.NetworkID {
			fe.Add("network_id", code("ipam", "block", method, 108), "network_id should be same as that of parent")
		}
	}
	t.blockFieldChecks(b, method, fe)
	if b.RouterID != old.RouterID {
		t.blockRouterCheck(b, method, fe)
	}
	if b.Gateway != "" && b.Gateway != old.Gateway {
		if a, ok := t.IPAddressIn(b.ID, b.Gateway); ok {
			fe.Add("gateway", code("ipam", "block", method, 122), "gateway %s is held by address %d", b.Gateway, a.ID)
		}
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	// Melange re-checks its CIDR rules on every save (melange-facts §3):
	// a new network_id may put the block over a top-level block of that
	// network (rule 6). CIDR, type and parent do not change here, so of
	// the CloudCIX rules only "same as parent", which compares the
	// address_range with its host part (the gateway), can newly fail:
	// checked here too since Rules2, for the API's check ran on a view
	// that an update of the parent or a child may have changed since.
	if b.Dialect == api.DialectCloudCIX && b.ParentID != 0 && b.Gateway != old.Gateway && t.since(Rules2) {
		if err := t.sameAsParentOrChild(b, method); err != nil {
			return nil, err
		}
	}
	if b.Dialect == api.DialectMelange {
		var parent *BlockRecord
		if b.ParentID != 0 {
			parent, _ = t.blockRecord(b.ParentID)
		}
		if err := t.blockOverlaps(b, parent, netip.MustParsePrefix(b.CIDR), netip.Addr{}, method); err != nil {
			return nil, err
		}
	}
	eng := t.engineOf(old).Clone()
	gw := netip.Addr{}
	if b.Gateway != "" {
		gw = netip.MustParseAddr(b.Gateway)
	}
	gen, _ := engineGenerator(b.Generator)
	pol, _ := t.IPPolicy(b.PolicyID)
	// One rebuild of the engine's index (O(addresses)) at most, and none
	// when the gateway and the policy are unchanged (a rename).
	if err := eng.Reconfigure(gw, gen, enginePolicy(pol)); err != nil {
		return nil, fieldErr("generator", code("ipam", "block", method, 105), "The block cannot be reconfigured: %v", err)
	}
	rec := &BlockRecord{IPBlock: *b, engine: eng}
	if err := replace(t, IPBlocks, rec, expect, "ipam_block_update"); err != nil {
		return nil, err
	}
	return &rec.IPBlock, t.setEngine(rec.ID, eng)
}

// IPBlockDelete removes a block that has no subnets, holds no address
// (allocated or soft-deallocated) and is no router's floating subnet (104,
// Rules2).
func (t *Txn) IPBlockDelete(id uint64) error {
	if _, ok := t.blockRecord(id); !ok {
		return api.NotFound("ipam_block_delete_001")
	}
	if n := len(t.IPBlockChildren(id)); n > 0 {
		return api.Errorf(http.StatusBadRequest, "ipam_block_delete_101", "The block has %d subnet(s); delete them first.", n)
	}
	if t.IPBlockHasAddresses(id) {
		return api.Errorf(http.StatusBadRequest, "ipam_block_delete_102", "The block holds %d address(es); release and purge them first.", t.IPBlockHeld(id))
	}
	// A router's floating subnet: every later check of the router
	// (routerChecks) would find it missing.
	if rt, ok := t.FloatingSubnetRouter(id); ok && t.since(Rules2) {
		return api.Errorf(http.StatusBadRequest, "ipam_block_delete_104", "The block is a floating subnet of router %d; remove it from the router first.", rt.ID)
	}
	// The block's static routes are part of it.
	for _, rt := range t.IPRouteList(id) {
		if err := remove(t, IPRoutes, rt.ID, "ipam_ip_route_delete"); err != nil {
			return err
		}
	}
	return remove(t, IPBlocks, id, "ipam_block_delete")
}

// IPBlockDeleteCascade removes a Melange block the way Melange does
// (melange-facts §8): its subnets, every address of it and of them (hard,
// soft-deallocated ones too, with the NAT links, public-IP references and
// allowances on them) and their static routes go with it, all in this one
// transaction. Interfaces stay; they just no longer hold those addresses.
// CloudCIX blocks are deleted only when empty (IPBlockDelete).
func (t *Txn) IPBlockDeleteCascade(id uint64) error {
	rec, ok := t.blockRecord(id)
	if !ok {
		return api.NotFound("ipam_block_delete_001")
	}
	if rec.Dialect != api.DialectMelange {
		return api.Errorf(http.StatusBadRequest, "ipam_block_delete_103", "Only a Melange block is deleted with its subnets and addresses; delete this one when it is empty.")
	}
	for _, c := range t.IPBlockChildren(id) {
		if err := t.IPBlockDeleteCascade(c.ID); err != nil {
			return err
		}
	}
	for _, a := range t.IPAddressList(id) {
		if err := t.dropAddressRefs(a.ID); err != nil {
			return err
		}
		if err := remove(t, IPAddresses, a.ID, "ipam_ip_address_delete"); err != nil {
			return err
		}
	}
	return t.IPBlockDelete(id)
}

// --- addresses ---

// AllocateNext stores the block's next free address for the request in a
// (MAC, used_by_tenant, interface, ...).
func (t *Txn) AllocateNext(blockID uint64, a *api.IPAddress) (*api.IPAddress, error) {
	a.BlockID, a.Address = blockID, ""
	return t.IPAddressCreate(a)
}

// AllocateAddress stores the specific address addr of the block.
func (t *Txn) AllocateAddress(blockID uint64, addr string, a *api.IPAddress) (*api.IPAddress, error) {
	if addr == "" {
		return nil, fieldErr("address", "ipam_ip_address_create_105", "address is invalid")
	}
	a.BlockID, a.Address = blockID, addr
	return t.IPAddressCreate(a)
}

// IPAddressCreate allocates a.Address in block a.BlockID, or the block's
// next free address when a.Address is empty, and stores the row.
// Errors (melange-facts §4, §5, §7): 404 unknown block; 422 subnetted block,
// block full, address outside the block, disallowed by the policy; 409
// address held (also soft-deallocated) or reserved; 400 malformed address or
// MAC, or the MAC an IPv6 generator needs is missing.
func (t *Txn) IPAddressCreate(a *api.IPAddress) (*api.IPAddress, error) {
	c := func(n int) string { return code("ipam", "ip_address", "create", n) }
	rec, ok := t.blockRecord(a.BlockID)
	if !ok {
		return nil, api.NotFound(c(1))
	}
	if a.InterfaceID != "" {
		if _, ok := t.InterfaceByVIF(a.InterfaceID); !ok {
			return nil, fieldErr("interface_id", c(109), "Interface with id = '%s' doesn't exist", a.InterfaceID)
		}
	}
	if a.UsedByTenant != "" {
		tenant, ok := t.tenantMember(a.UsedByTenant)
		if !ok {
			return nil, fieldErr("used_by_tenant", c(112), "Member %s does not exist.", a.UsedByTenant)
		}
		a.UsedByTenant = tenant
	}
	if len(t.IPBlockChildren(rec.ID)) > 0 {
		return nil, api.Errorf(http.StatusUnprocessableEntity, c(101), "Subnetted block cannot allocate IPAddress")
	}
	if a.PublicIPID != 0 {
		if p, ok := t.IPAddress(a.PublicIPID); !ok || p.Deallocated {
			return nil, fieldErr("public_ip_id", c(110), "IP address with id = '%d' doesn't exist", a.PublicIPID)
		} else if o, taken := t.publicIPTaken(p.ID, 0); taken {
			return nil, fieldErr("public_ip_id", c(111), "IP address %s is already the public IP of address %d.", p.Address, o)
		}
	}
	req := ipam.Request{Tenant: a.UsedByTenant}
	if a.MACAddress != "" {
		m, err := netx.ParseMAC(a.MACAddress)
		if err != nil {
			return nil, fieldErr("mac_address", c(102), "mac_address is invalid")
		}
		req.MAC, req.HasMAC, a.MACAddress = m, true, m.String()
	}
	eng := t.engineOf(rec).Clone()
	var ip netip.Addr
	if a.Address == "" {
		var err error
		if ip, err = eng.AllocateNext(req); err != nil {
			switch {
			case errors.Is(err, ipam.ErrMACRequired):
				return nil, fieldErr("mac_address", c(103), "Required params are missing: mac_address")
			case errors.Is(err, ipam.ErrFull):
				return nil, api.Errorf(http.StatusUnprocessableEntity, c(104), "IpBlock is full")
			}
			return nil, err
		}
	} else {
		var err error
		if ip, err = netx.ParseAddr(a.Address); err != nil {
			return nil, fieldErr("address", c(105), "address is invalid")
		}
		if err := eng.Allocate(ip); err != nil {
			switch {
			case errors.Is(err, ipam.ErrOutside):
				return nil, api.Errorf(http.StatusUnprocessableEntity, c(106), "Address does not belong to IpBlock")
			case errors.Is(err, ipam.ErrInUse), errors.Is(err, ipam.ErrReserved):
				return nil, api.Errorf(http.StatusConflict, c(107), "Address is already allocated")
			case errors.Is(err, ipam.ErrPolicy):
				return nil, api.Errorf(http.StatusUnprocessableEntity, c(108), "Block policy does not allow this address")
			}
			return nil, err
		}
	}
	a.Address, a.MemberID = ip.String(), rec.MemberID
	a.Version = 4
	if ip.Is6() {
		a.Version = 6
	}
	a.Deallocated, a.DeallocatedAt = false, ""
	if err := insertNew(t, IPAddresses, a); err != nil {
		return nil, err
	}
	return a, t.setEngine(rec.ID, eng)
}

func (t *Txn) ipRow(ref IPRef, c string) (*api.IPAddress, *BlockRecord, error) {
	var row *api.IPAddress
	var ok bool
	if ref.ID != 0 {
		row, ok = t.IPAddress(ref.ID)
	} else {
		row, ok = t.IPAddressIn(ref.BlockID, ref.Address)
	}
	if !ok || (ref.BlockID != 0 && row.BlockID != ref.BlockID) {
		return nil, nil, api.NotFound(c + "_001")
	}
	rec, ok := t.blockRecord(row.BlockID)
	if !ok {
		return nil, nil, fmt.Errorf("state: address %d in missing block %d", row.ID, row.BlockID)
	}
	return row, rec, nil
}

// IPAddressRelease soft-deallocates an address at the command's time: the
// row stays (the address is still taken) and loses its interface link
// (melange-facts §8) until it is restored or purged. Releasing an address
// that is deallocated already succeeds and stamps it again, so its
// retention starts over: Melange's deallocate sets deallocated_at to now
// whatever the mark was.
func (t *Txn) IPAddressRelease(ref IPRef) (*api.IPAddress, error) {
	const c = "ipam_ip_address_delete"
	row, rec, err := t.ipRow(ref, c)
	if err != nil {
		return nil, err
	}
	eng := t.engineOf(rec).Clone()
	addr := netip.MustParseAddr(row.Address)
	if row.Deallocated {
		// The engine refuses a second release (ErrReleased): take the old
		// release back first, in the same clone.
		if err := eng.Restore(addr); err != nil {
			return nil, err
		}
	}
	if err := eng.Release(addr, t.Now); err != nil {
		return nil, err
	}
	n := *row
	n.Deallocated, n.DeallocatedAt, n.InterfaceID = true, t.stamp(), ""
	if err := replace(t, IPAddresses, &n, 0, c); err != nil {
		return nil, err
	}
	return &n, t.setEngine(rec.ID, eng)
}

// IPAddressDelete frees an address at once and removes its row, in one
// transaction: the CloudCIX delete, which keeps nothing for restore.
func (t *Txn) IPAddressDelete(ref IPRef) error {
	const c = "ipam_ip_address_delete"
	row, rec, err := t.ipRow(ref, c)
	if err != nil {
		return err
	}
	eng := t.engineOf(rec).Clone()
	if err := eng.Free(netip.MustParseAddr(row.Address)); err != nil {
		return err
	}
	if err := t.dropAddressRefs(row.ID); err != nil {
		return err
	}
	if err := remove(t, IPAddresses, row.ID, c); err != nil {
		return err
	}
	return t.setEngine(rec.ID, eng)
}

// IPAddressRestore turns a soft-deallocated address back into an allocated
// one; the interface link is not restored. Restoring an allocated address
// changes nothing and is no error: Melange's restore just clears the mark
// and its timestamp (melange-facts §8).
func (t *Txn) IPAddressRestore(ref IPRef) (*api.IPAddress, error) {
	const c = "ipam_ip_address_restore"
	row, rec, err := t.ipRow(ref, c)
	if err != nil {
		return nil, err
	}
	if !row.Deallocated {
		return row, nil
	}
	if t.since(Rules3) && row.UsedByTenant != "" {
		if _, ok := t.tenantMember(row.UsedByTenant); !ok {
			return nil, api.Errorf(http.StatusConflict, c+"_101",
				"The address was released by tenant %s, a member since deleted: it cannot be restored; allocate another address for a current tenant (this one is held until the purge).", row.UsedByTenant)
		}
	}
	eng := t.engineOf(rec).Clone()
	if err := eng.Restore(netip.MustParseAddr(row.Address)); err != nil {
		return nil, err
	}
	n := *row
	n.Deallocated, n.DeallocatedAt = false, ""
	if err := replace(t, IPAddresses, &n, 0, c); err != nil {
		return nil, err
	}
	return &n, t.setEngine(rec.ID, eng)
}

// IPPurgeDue reports whether some block holds a soft-deallocated address
// released at or before cutoff, so the leader proposes a purge only when
// there is something to purge.
func (r *ReadTxn) IPPurgeDue(cutoff time.Time) bool {
	for _, rec := range all[*BlockRecord](r, IPBlocks, "id") {
		if at, ok := r.engineOf(rec).OldestRelease(); ok && !at.After(cutoff) {
			return true
		}
	}
	return false
}

// IPAddressPurge deletes every soft-deallocated address released at or
// before cutoff (inclusive; the leader proposes now − keep on a timer), in
// block blockID or, when 0, in every block. The addresses become free.
func (t *Txn) IPAddressPurge(blockID uint64, cutoff time.Time) (*api.IPPurgeResult, error) {
	recs := all[*BlockRecord](&t.ReadTxn, IPBlocks, "id")
	if blockID != 0 {
		rec, ok := t.blockRecord(blockID)
		if !ok {
			return nil, api.NotFound("ipam_ip_address_purge_001")
		}
		recs = []*BlockRecord{rec}
	}
	res := &api.IPPurgeResult{}
	for _, rec := range recs {
		if t.engineOf(rec).Utilisation().Deallocated.IsZero() {
			continue
		}
		eng := t.engineOf(rec).Clone()
		gone := eng.Purge(cutoff)
		if len(gone) == 0 {
			continue
		}
		for _, g := range gone {
			raw, err := t.txn.First(IPAddresses, "address", rec.ID, g.Addr)
			if err != nil || raw == nil {
				return nil, fmt.Errorf("state: purged address %s of block %d has no row", g.Addr, rec.ID)
			}
			if err := t.dropAddressRefs(raw.(*api.IPAddress).ID); err != nil {
				return nil, err
			}
			if err := remove(t, IPAddresses, raw.(*api.IPAddress).ID, "ipam_ip_address_purge"); err != nil {
				return nil, err
			}
		}
		res.Purged += len(gone)
		if err := t.setEngine(rec.ID, eng); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// --- policies ---

// IPPolicyCreate stores a policy; its unusable ranges and octets get ids.
func (t *Txn) IPPolicyCreate(p *api.IPPolicy) (*api.IPPolicy, error) {
	for i := range p.UnusableRanges {
		p.UnusableRanges[i].ID = 0
	}
	for i := range p.UnusableOctets {
		p.UnusableOctets[i].ID = 0
	}
	if err := t.policyChecks(p, nil, "create"); err != nil {
		return nil, err
	}
	if err := t.numberPolicyEntries(p, nil); err != nil {
		return nil, err
	}
	return p, insertNew(t, IPPolicies, p)
}

// IPPolicyUpdate replaces a policy's name, description, ranges and octets
// (entries with id 0 are new; others must exist in the stored policy) and
// re-applies it to every block that uses it.
func (t *Txn) IPPolicyUpdate(p *api.IPPolicy, expect uint64) (*api.IPPolicy, error) {
	old, ok := t.IPPolicy(p.ID)
	if !ok {
		return nil, api.NotFound("ipam_policy_update_001")
	}
	p.MemberID = old.MemberID
	if err := t.policyChecks(p, old, "update"); err != nil {
		return nil, err
	}
	if err := t.numberPolicyEntries(p, old); err != nil {
		return nil, err
	}
	if err := replace(t, IPPolicies, p, expect, "ipam_policy_update"); err != nil {
		return nil, err
	}
	pol := enginePolicy(p)
	for _, rec := range all[*BlockRecord](&t.ReadTxn, IPBlocks, "policy", p.ID) {
		eng := t.engineOf(rec).Clone()
		if err := eng.SetPolicy(pol); err != nil {
			return nil, err
		}
		if err := t.setEngine(rec.ID, eng); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (t *Txn) policyChecks(p, old *api.IPPolicy, method string) error {
	c := func(n int) string { return code("ipam", "policy", method, n) }
	fe := api.FieldErrors{}
	if _, ok := t.Member(p.MemberID); !ok {
		fe.Add("member_id", c(101), "Member %d does not exist.", p.MemberID)
	}
	if p.Name == "" {
		fe.Add("name", c(102), "name should be present")
	}
	for _, r := range p.UnusableRanges {
		if r.Length < 0 {
			fe.Add("unusable_ranges", c(103), "length should be a positive integer")
		}
	}
	if old != nil {
		known := map[uint64]bool{}
		for _, r := range old.UnusableRanges {
			known[r.ID] = true
		}
		for _, o := range old.UnusableOctets {
			known[o.ID] = true
		}
		seen := map[uint64]bool{}
		check := func(field string, id uint64) {
			if id == 0 {
				return
			}
			if !known[id] || seen[id] {
				fe.Add(field, c(104), "Entry %d does not exist in this policy or is listed twice.", id)
			}
			seen[id] = true
		}
		for _, r := range p.UnusableRanges {
			check("unusable_ranges", r.ID)
		}
		for _, o := range p.UnusableOctets {
			check("unusable_octets", o.ID)
		}
	}
	return fe.Err()
}

// numberPolicyEntries gives the new entries of p (id 0) ids and stamps
// them created and updated now; an existing entry (old holds it) keeps its
// created time, and its updated time unless its value changed. Entries
// stored before they had timestamps take their policy's (old's), which is
// what they showed until then. Times a caller sends are ignored.
func (t *Txn) numberPolicyEntries(p, old *api.IPPolicy) error {
	next := func() (uint64, error) { return t.bump(ipPolicyEntries, true) }
	now := t.stamp()
	stamps := func(created, updated string, changed bool) (string, string) {
		if created == "" {
			created = old.Created
		}
		if updated == "" {
			updated = old.Updated
		}
		if changed {
			updated = now
		}
		return created, updated
	}
	for i := range p.UnusableRanges {
		r := &p.UnusableRanges[i]
		if r.ID == 0 {
			id, err := next()
			if err != nil {
				return err
			}
			r.ID, r.Created, r.Updated = id, now, now
			continue
		}
		j := slices.IndexFunc(old.UnusableRanges, func(o api.UnusableRange) bool { return o.ID == r.ID })
		o := old.UnusableRanges[j]
		r.Created, r.Updated = stamps(o.Created, o.Updated, o.Offset != r.Offset || o.Length != r.Length)
	}
	for i := range p.UnusableOctets {
		e := &p.UnusableOctets[i]
		if e.ID == 0 {
			id, err := next()
			if err != nil {
				return err
			}
			e.ID, e.Created, e.Updated = id, now, now
			continue
		}
		j := slices.IndexFunc(old.UnusableOctets, func(o api.UnusableOctet) bool { return o.ID == e.ID })
		o := old.UnusableOctets[j]
		e.Created, e.Updated = stamps(o.Created, o.Updated, o.Octet != e.Octet)
	}
	if p.UnusableRanges == nil {
		p.UnusableRanges = []api.UnusableRange{}
	}
	if p.UnusableOctets == nil {
		p.UnusableOctets = []api.UnusableOctet{}
	}
	return nil
}

// IPPolicyDelete removes a policy; the blocks that used it lose it
// (Melange nulls their policy_id) and their engines drop its rules.
func (t *Txn) IPPolicyDelete(id uint64) error {
	if _, ok := t.IPPolicy(id); !ok {
		return api.NotFound("ipam_policy_delete_001")
	}
	for _, rec := range all[*BlockRecord](&t.ReadTxn, IPBlocks, "policy", id) {
		eng := t.engineOf(rec).Clone()
		if err := eng.SetPolicy(ipam.Policy{}); err != nil {
			return err
		}
		n := &BlockRecord{IPBlock: rec.IPBlock, engine: eng}
		n.PolicyID = 0
		if err := replace(t, IPBlocks, n, 0, "ipam_block_update"); err != nil {
			return err
		}
		if err := t.setEngine(n.ID, eng); err != nil {
			return err
		}
	}
	return remove(t, IPPolicies, id, "ipam_policy_delete")
}

// --- MAC ranges ---

// MACRangeCreate stores a MAC range. Its CIDR is kept as given, as
// Melange keeps it ("ab-bc-cd-12-23-34/40", melange-facts checklist 70);
// allocation parses it (netx.ParseMACRange masks the host bits). Before
// Rules2 it was stored normalised ("ab:bc:cd:12:23:00/40").
func (t *Txn) MACRangeCreate(m *api.MACRange) (*api.MACRange, error) {
	r, err := netx.ParseMACRange(m.CIDR)
	if err != nil {
		return nil, fieldErr("cidr", "ipam_mac_address_range_create_101", "cidr is invalid")
	}
	if !t.since(Rules2) {
		m.CIDR = r.String()
	}
	return m, insertNew(t, MACRanges, m)
}

// MACRangeDelete removes a MAC range.
func (t *Txn) MACRangeDelete(id uint64) error {
	return remove(t, MACRanges, id, "ipam_mac_address_range_delete")
}

// --- ASNs ---

// ASNCreate stores an ASN of an existing member; numbers are unique and
// not in the pseudo range (105): a project's pseudo-ASN is PseudoASNBase +
// its id, made with the project (facts §5.9), so a manual number there
// would make that project's create fail.
func (t *Txn) ASNCreate(a *api.ASN) (*api.ASN, error) { return t.asnCreate(a, false) }

// pseudoASNDetail says why a manual ASN number is refused (105).
func pseudoASNDetail(n uint64) string {
	return fmt.Sprintf("ASN %d is in the pseudo-ASN range (above %d: %d + project id), which projects get with their create.", n, uint64(api.PseudoASNBase), uint64(api.PseudoASNBase))
}

// pseudoASNFixed says why a project's pseudo-ASN keeps its number and
// member (106).
func pseudoASNFixed(a *api.ASN) string {
	return fmt.Sprintf("ASN %d is the pseudo-ASN of project %d: its number and member cannot change.", a.Number, a.Number-api.PseudoASNBase)
}

// asnCreate stores an ASN; pseudo is set for a project's own pseudo-ASN.
func (t *Txn) asnCreate(a *api.ASN, pseudo bool) (*api.ASN, error) {
	fe := api.FieldErrors{}
	if _, ok := t.Member(a.MemberID); !ok {
		fe.Add("member_id", "ipam_asn_create_101", "Member %d does not exist.", a.MemberID)
	}
	if a.Number == 0 {
		fe.Add("number", "ipam_asn_create_102", "number should be a positive integer")
	} else if a.IsPseudo() && !pseudo && t.since(Rules1) {
		fe.Add("number", "ipam_asn_create_105", "%s", pseudoASNDetail(a.Number))
	} else if raw, _ := t.txn.First(ASNs, "number", a.Number); raw != nil {
		fe.Add("number", "ipam_asn_create_103", "ASN %d already exists.", a.Number)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	return a, insertNew(t, ASNs, a)
}

// ASNDelete removes an ASN that has no allocations.
func (t *Txn) ASNDelete(id uint64) error {
	if _, ok := t.ASN(id); !ok {
		return api.NotFound("ipam_asn_delete_001")
	}
	if n := t.ASNAllocations(id); n > 0 {
		return api.Errorf(http.StatusBadRequest, "ipam_asn_delete_101", "The ASN has %d allocation(s); delete them first.", n)
	}
	return remove(t, ASNs, id, "ipam_asn_delete")
}

// ASNAllocations counts the allocations of ASN id: its root blocks (the
// subnets inside them carry the ASN too, and are not counted).
func (r *ReadTxn) ASNAllocations(id uint64) int {
	n := 0
	for _, b := range all[*BlockRecord](r, IPBlocks, "asn", id) {
		if b.ParentID == 0 {
			n++
		}
	}
	return n
}

// ASNUpdate changes an ASN's member and number. The number stays positive
// and unique; a project's pseudo-ASN keeps both (106, Rules2). An ASN whose allocations exist cannot move to another member:
// the allocations, their subnets and addresses carry the ASN's member as
// their owner, and moving them silently would hand a member's addresses to
// another one. Move (or delete) the allocations first.
func (t *Txn) ASNUpdate(a *api.ASN, expect uint64) (*api.ASN, error) {
	const c = "ipam_asn_update"
	old, ok := t.ASN(a.ID)
	if !ok {
		return nil, api.NotFound(c + "_001")
	}
	fe := api.FieldErrors{}
	if a.MemberID != old.MemberID {
		if _, ok := t.Member(a.MemberID); !ok {
			fe.Add("member_id", c+"_101", "Member %d does not exist.", a.MemberID)
		} else if n := t.ASNAllocations(a.ID); n > 0 {
			fe.Add("member_id", c+"_104", "The ASN has %d allocation(s); it cannot move to another member.", n)
		}
	}
	if a.Number == 0 {
		fe.Add("number", c+"_102", "number should be a positive integer")
	} else if a.IsPseudo() && a.Number != old.Number && t.since(Rules1) {
		fe.Add("number", c+"_105", "%s", pseudoASNDetail(a.Number))
	} else if raw, _ := t.txn.First(ASNs, "number", a.Number); raw != nil && raw.(*api.ASN).ID != a.ID {
		fe.Add("number", c+"_103", "ASN %d already exists.", a.Number)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	// A project's pseudo-ASN is the project's (PseudoASNBase + its id,
	// facts §5.9): renumbered or moved, the project's ASN would no longer
	// be it (106).
	if old.IsPseudo() && (a.Number != old.Number || a.MemberID != old.MemberID) && t.since(Rules2) {
		return nil, fieldErr("number", c+"_106", "%s", pseudoASNFixed(old))
	}
	n := &api.ASN{Meta: old.Meta, MemberID: a.MemberID, Number: a.Number}
	return n, replace(t, ASNs, n, expect, c)
}

// IPAddressUpdate changes the descriptive fields of an address: name,
// mac_address, vm_id and public_ip_id. The address, its block, version,
// owner, Melange fields and deallocation state are kept from the stored
// row (they are not updatable). public_ip_id, when set, must name another
// live address that is not already the public IP of a third one (CloudCIX's
// public_ip is one-to-one).
func (t *Txn) IPAddressUpdate(a *api.IPAddress, expect uint64) (*api.IPAddress, error) {
	const c = "ipam_ip_address_update"
	old, ok := t.IPAddress(a.ID)
	if !ok || old.Deallocated {
		return nil, api.NotFound(c + "_001")
	}
	n := *old
	n.Name, n.VMID, n.PublicIPID = a.Name, a.VMID, a.PublicIPID
	fe := api.FieldErrors{}
	n.MACAddress = ""
	if a.MACAddress != "" {
		m, err := netx.ParseMAC(a.MACAddress)
		if err != nil {
			fe.Add("mac_address", c+"_103", "mac_address %q is not a valid MAC address.", a.MACAddress)
		} else {
			n.MACAddress = m.String()
		}
	}
	if n.PublicIPID != 0 {
		p, ok := t.IPAddress(n.PublicIPID)
		switch {
		case !ok || p.Deallocated:
			fe.Add("public_ip_id", c+"_105", "IP address with id = '%d' doesn't exist", n.PublicIPID)
		case p.ID == n.ID:
			fe.Add("public_ip_id", c+"_105", "An IP address cannot be its own public IP.")
		default:
			if o, taken := t.publicIPTaken(p.ID, n.ID); taken {
				fe.Add("public_ip_id", c+"_106", "IP address %s is already the public IP of address %d.", p.Address, o)
			}
		}
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	if err := replace(t, IPAddresses, &n, expect, c); err != nil {
		return nil, err
	}
	// The public address it leaves: its member held it through this row
	// (a PTR record it made for it goes unless it holds it otherwise).
	if t.since(Rules5) && old.PublicIPID != 0 && old.PublicIPID != n.PublicIPID {
		if p, ok := t.IPAddress(old.PublicIPID); ok {
			if err := t.dropUnheldPTR(p.Address, 0); err != nil {
				return nil, err
			}
		}
	}
	return &n, nil
}

// clearPublicIP unsets public_ip_id on the addresses whose public IP is
// address id (CloudCIX's on_delete=SET_NULL).
func (t *Txn) clearPublicIP(id uint64) error {
	for _, o := range all[*api.IPAddress](&t.ReadTxn, IPAddresses, "public_ip", id) {
		n := *o
		n.PublicIPID = 0
		if err := replace(t, IPAddresses, &n, 0, "ipam_ip_address_update"); err != nil {
			return err
		}
	}
	return nil
}

// IPAddressesByPublicIP returns the addresses whose public_ip_id is id.
func (r *ReadTxn) IPAddressesByPublicIP(id uint64) []*api.IPAddress {
	return all[*api.IPAddress](r, IPAddresses, "public_ip", id)
}

// publicIPTaken reports an address other than self whose public IP is id.
func (r *ReadTxn) publicIPTaken(id, self uint64) (uint64, bool) {
	for _, o := range r.IPAddressesByPublicIP(id) {
		if o.ID != self {
			return o.ID, true
		}
	}
	return 0, false
}
