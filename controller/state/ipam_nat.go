package state

// Melange NAT links (inside locals ↔ inside globals, melange-facts §10) and
// allowed IPs of interfaces (§12). Both reference address rows (and allowed
// IPs an interface row): a purge or hard delete of an address removes its
// links and allows, an interface delete its allows, in the same
// transaction, so no reference dangles.

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"net/netip"
	"sort"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/pkg/api"
)

// pairIndexer indexes a row by its two uint64 references (a unique pair):
// an IPNat's local and global, an allowed IP's interface and address.
type pairIndexer struct{}

func (p pairIndexer) values(raw any) (uint64, uint64, error) {
	switch v := raw.(type) {
	case *api.IPNat:
		return v.LocalID, v.GlobalID, nil
	case *api.AllowedIP:
		return v.InterfaceID, v.AddressID, nil
	}
	return 0, 0, fmt.Errorf("pair index: unexpected %T", raw)
}

func (p pairIndexer) FromObject(raw any) (bool, []byte, error) {
	x, y, err := p.values(raw)
	if err != nil {
		return false, nil, err
	}
	return true, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, x), y), nil
}

func (p pairIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("pair index: want 2 args, got %d", len(args))
	}
	x, ok1 := args[0].(uint64)
	y, ok2 := args[1].(uint64)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("pair index: args must be uint64")
	}
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, x), y), nil
}

func natSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		IPNats: {Name: IPNats, Indexes: map[string]*memdb.IndexSchema{
			"id":     idIndex(),
			"pair":   {Name: "pair", Unique: true, Indexer: pairIndexer{}},
			"local":  uintIndex("local", "LocalID"),
			"global": uintIndex("global", "GlobalID"),
		}},
		AllowedIPs: {Name: AllowedIPs, Indexes: map[string]*memdb.IndexSchema{
			"id":        idIndex(),
			"pair":      {Name: "pair", Unique: true, Indexer: pairIndexer{}},
			"interface": uintIndex("interface", "InterfaceID"),
			"address":   uintIndex("address", "AddressID"),
		}},
	}
}

// rebuildNAT validates the references of NAT links and allowed IPs.
func rebuildNAT(txn *memdb.Txn) error {
	r := &ReadTxn{txn: memTxn{Txn: txn}}
	for _, n := range all[*api.IPNat](r, IPNats, "id") {
		_, ok1 := r.IPAddress(n.LocalID)
		_, ok2 := r.IPAddress(n.GlobalID)
		if !ok1 || !ok2 || n.LocalID == n.GlobalID {
			return fmt.Errorf("nat %d: bad addresses %d, %d", n.ID, n.LocalID, n.GlobalID)
		}
	}
	for _, a := range all[*api.AllowedIP](r, AllowedIPs, "id") {
		_, ok1 := get[*api.Interface](r, Interfaces, a.InterfaceID)
		_, ok2 := r.IPAddress(a.AddressID)
		if !ok1 || !ok2 {
			return fmt.Errorf("allowed ip %d: bad interface %d or address %d", a.ID, a.InterfaceID, a.AddressID)
		}
	}
	return nil
}

func byID(out []*api.IPAddress) []*api.IPAddress {
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// --- NAT ---

// InsideGlobals returns the inside global addresses of local address id.
func (r *ReadTxn) InsideGlobals(id uint64) []*api.IPAddress {
	out := []*api.IPAddress{}
	for _, n := range all[*api.IPNat](r, IPNats, "local", id) {
		if a, ok := r.IPAddress(n.GlobalID); ok {
			out = append(out, a)
		}
	}
	return byID(out)
}

// InsideLocals returns the inside local addresses of global address id.
func (r *ReadTxn) InsideLocals(id uint64) []*api.IPAddress {
	out := []*api.IPAddress{}
	for _, n := range all[*api.IPNat](r, IPNats, "global", id) {
		if a, ok := r.IPAddress(n.LocalID); ok {
			out = append(out, a)
		}
	}
	return byID(out)
}

// natAddress is an address a NAT link may use: it exists and is not
// soft-deallocated (422 Address is locked).
func (t *Txn) natAddress(id uint64, method string) error {
	a, ok := t.IPAddress(id)
	if !ok {
		return api.NotFound(code("ipam", "ip_address", "nat", 1))
	}
	if a.Deallocated {
		return api.Errorf(http.StatusUnprocessableEntity, code("ipam", "nat", method, 101), "Address is locked")
	}
	return nil
}

// NATLink links each of locals to each of globals; existing links are
// kept, so the command is idempotent.
func (t *Txn) NATLink(locals, globals []uint64) error {
	for _, id := range append(append([]uint64(nil), locals...), globals...) {
		if err := t.natAddress(id, "create"); err != nil {
			return err
		}
	}
	for _, l := range locals {
		for _, g := range globals {
			if l == g {
				return api.Errorf(http.StatusBadRequest, code("ipam", "nat", "create", 102), "An address cannot be its own inside global.")
			}
			if raw, _ := t.txn.First(IPNats, "pair", l, g); raw != nil {
				continue
			}
			if err := insertNew(t, IPNats, &api.IPNat{LocalID: l, GlobalID: g}); err != nil {
				return err
			}
		}
	}
	return nil
}

// NATUnlink removes the links of local to global; a zero side means every
// partner of the other side.
func (t *Txn) NATUnlink(local, global uint64) error {
	var rows []*api.IPNat
	switch {
	case local != 0 && global != 0:
		rows = all[*api.IPNat](&t.ReadTxn, IPNats, "pair", local, global)
	case local != 0:
		rows = all[*api.IPNat](&t.ReadTxn, IPNats, "local", local)
	case global != 0:
		rows = all[*api.IPNat](&t.ReadTxn, IPNats, "global", global)
	}
	for _, n := range rows {
		if err := remove(t, IPNats, n.ID, "ipam_nat_delete"); err != nil {
			return err
		}
	}
	return nil
}

// --- allowed IPs ---

// AllowedIPs returns the addresses explicitly allowed on interface vif.
func (r *ReadTxn) AllowedIPs(vif string) []*api.IPAddress {
	out := []*api.IPAddress{}
	ifc, ok := r.InterfaceByVIF(vif)
	if !ok {
		return out
	}
	for _, a := range all[*api.AllowedIP](r, AllowedIPs, "interface", ifc.ID) {
		if ip, ok := r.IPAddress(a.AddressID); ok {
			out = append(out, ip)
		}
	}
	return byID(out)
}

// AllowIP allows address id on interface vif. The interface must be
// plugged into the network of the address's block (422 otherwise).
func (t *Txn) AllowIP(vif string, id uint64) (*api.IPAddress, error) {
	c := func(n int) string { return code("ipam", "allowed_ip", "create", n) }
	ifc, ok := t.InterfaceByVIF(vif)
	if !ok {
		return nil, ifcNotFound("allowed_ip")
	}
	a, ok := t.IPAddress(id)
	if !ok {
		return nil, api.NotFound(c(1))
	}
	b, _ := t.IPBlock(a.BlockID)
	if b == nil || t.pluggedNetwork(vif) != b.NetworkID || b.NetworkID == "" {
		return nil, api.Errorf(http.StatusUnprocessableEntity, c(101),
			"Ip %s cannot be allowed on interface %s as interface is not configured for ip's network", a.Address, vif)
	}
	if raw, _ := t.txn.First(AllowedIPs, "pair", ifc.ID, id); raw != nil {
		return a, nil
	}
	return a, insertNew(t, AllowedIPs, &api.AllowedIP{InterfaceID: ifc.ID, AddressID: id})
}

// DisallowIP removes the allowance of address id on interface vif.
func (t *Txn) DisallowIP(vif string, id uint64) error {
	ifc, ok := t.InterfaceByVIF(vif)
	if !ok {
		return ifcNotFound("allowed_ip")
	}
	raw, _ := t.txn.First(AllowedIPs, "pair", ifc.ID, id)
	if raw == nil {
		return api.NotFound("ipam_allowed_ip_delete_001")
	}
	return remove(t, AllowedIPs, raw.(*api.AllowedIP).ID, "ipam_allowed_ip_delete")
}

// dropAddressRefs removes the NAT links, allowances and PTR record of
// address id (the row is going away).
func (t *Txn) dropAddressRefs(id uint64) error {
	if err := t.clearPublicIP(id); err != nil {
		return err
	}
	if err := t.dropPTR(id); err != nil {
		return err
	}
	if err := t.NATUnlink(id, 0); err != nil {
		return err
	}
	if err := t.NATUnlink(0, id); err != nil {
		return err
	}
	for _, a := range all[*api.AllowedIP](&t.ReadTxn, AllowedIPs, "address", id) {
		if err := remove(t, AllowedIPs, a.ID, "ipam_allowed_ip_delete"); err != nil {
			return err
		}
	}
	return nil
}

// dropInterfaceRefs removes the allowances on interface row id.
func (t *Txn) dropInterfaceRefs(id uint64) error {
	for _, a := range all[*api.AllowedIP](&t.ReadTxn, AllowedIPs, "interface", id) {
		if err := remove(t, AllowedIPs, a.ID, "ipam_allowed_ip_delete"); err != nil {
			return err
		}
	}
	return nil
}

// dropPTR deletes the PTR record of address row id (going away) unless the
// record's member still holds the address in another row that is not
// deallocated (overlapping private ranges) or, from Rules5, as the public
// address of another row: a PTR is created only for an address its member
// holds (PTRCreate), and must not outlive it and name the address's next
// holder. From Rules5 the same goes for the row's public (NAT) address,
// which its member held through it. The deletion moves the reverse zone's
// serial as any record delete does.
func (t *Txn) dropPTR(id uint64) error {
	if !t.since(Rules1) {
		return nil
	}
	row, ok := t.IPAddress(id)
	if !ok {
		return nil
	}
	if err := t.dropUnheldPTR(row.Address, id); err != nil {
		return err
	}
	if t.since(Rules5) && row.PublicIPID != 0 {
		if p, ok := t.IPAddress(row.PublicIPID); ok {
			return t.dropUnheldPTR(p.Address, id)
		}
	}
	return nil
}

// dropUnheldPTR deletes the PTR record of addr when its member no longer
// holds addr through a row other than except.
func (t *Txn) dropUnheldPTR(addr string, except uint64) error {
	rec, ok := t.PTRFor(addr)
	if !ok {
		return nil
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || t.holdsAddress(rec.MemberID, a, except) {
		return nil
	}
	return t.RecordDelete(rec.ID)
}
