package state

// The CIX blacklist and whitelist: CIDRs that CIX recognises as malicious
// or as trustworthy, filled by the operator and pulled by appliances. Each
// list is a table of api.CIXListEntry with a unique index on the canonical
// CIDR, so a read by CIDR is one index lookup.

import (
	"net/http"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/pkg/api"
)

// Tables of the CIX lists.
const (
	CIXBlacklist = "iaas_cix_blacklist"
	CIXWhitelist = "iaas_cix_whitelist"
)

// MaxCIXComment is the longest comment of a CIX list entry, in characters.
const MaxCIXComment = 255

func cixListSchema() map[string]*memdb.TableSchema {
	t := func(name string) *memdb.TableSchema {
		return &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex(),
			"cidr": {Name: "cidr", Unique: true, Indexer: stringFieldIndex("CIDR", false)},
		}}
	}
	return map[string]*memdb.TableSchema{CIXBlacklist: t(CIXBlacklist), CIXWhitelist: t(CIXWhitelist)}
}

// cixListName is the service name of a list table, for error codes.
func cixListName(table string) string {
	if table == CIXWhitelist {
		return "cix_whitelist"
	}
	return "cix_blacklist"
}

func cixTable(table string) bool { return table == CIXBlacklist || table == CIXWhitelist }

// CanonicalCIDR parses a CIX list CIDR: a prefix (host bits are cleared,
// as Melange does for blocks) or a bare address (its /32 or /128). IPv4
// mapped IPv6 addresses are unmapped.
func CanonicalCIDR(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 49 {
		return netip.Prefix{}, false
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// CIXList returns every entry of list table (CIXBlacklist or CIXWhitelist)
// in id order.
func (r *ReadTxn) CIXList(table string) []*api.CIXListEntry {
	return all[*api.CIXListEntry](r, table, "id")
}

// CIXEntry returns the entry with id of list table.
func (r *ReadTxn) CIXEntry(table string, id uint64) (*api.CIXListEntry, bool) {
	return get[*api.CIXListEntry](r, table, id)
}

// CIXEntryByCIDR returns the entry of list table whose CIDR is cidr, after
// canonicalisation.
func (r *ReadTxn) CIXEntryByCIDR(table, cidr string) (*api.CIXListEntry, bool) {
	p, ok := CanonicalCIDR(cidr)
	if !ok {
		return nil, false
	}
	raw, err := r.txn.First(table, "cidr", p.String())
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*api.CIXListEntry), true
}

// CIXEntryCreate adds e to list table. Its CIDR is canonicalised and must
// not be in the list yet; the comment is at most MaxCIXComment
// characters.
func (t *Txn) CIXEntryCreate(table string, e *api.CIXListEntry) (*api.CIXListEntry, error) {
	if !cixTable(table) {
		return nil, api.Errorf(http.StatusBadRequest, "ipam_cix_list_001", "Unknown CIX list %q.", table)
	}
	c := "ipam_" + cixListName(table) + "_create"
	p, ok := CanonicalCIDR(e.CIDR)
	if !ok {
		return nil, fieldErr("cidr", c+"_101", "cidr %q is not a valid CIDR or IP address.", e.CIDR)
	}
	if utf8.RuneCountInString(e.Comment) > MaxCIXComment {
		return nil, fieldErr("comment", c+"_102", "Ensure this field has no more than %d characters.", MaxCIXComment)
	}
	e.CIDR = p.String()
	if raw, _ := t.txn.First(table, "cidr", e.CIDR); raw != nil {
		return nil, fieldErr("cidr", c+"_103", "%s is already in the %s (id %d).", e.CIDR, strings.ReplaceAll(cixListName(table), "_", " "), raw.(*api.CIXListEntry).ID)
	}
	return e, insertNew(t, table, e)
}

// CIXEntryDelete removes the entry with id from list table.
func (t *Txn) CIXEntryDelete(table string, id uint64) error {
	if !cixTable(table) {
		return api.Errorf(http.StatusBadRequest, "ipam_cix_list_001", "Unknown CIX list %q.", table)
	}
	return remove(t, table, id, "ipam_"+cixListName(table)+"_delete")
}
