package state

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"
	mdns "github.com/miekg/dns"
	"github.com/regentcloud/regent/controller/dns/rdata"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// DNS tables.
const (
	Domains = "dns_domains"
	Records = "dns_records"
)

func dnsSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		Domains: {Name: Domains, Indexes: map[string]*memdb.IndexSchema{
			"id":     idIndex(),
			"name":   {Name: "name", Unique: true, Indexer: stringFieldIndex("Name", true)},
			"member": uintIndex("member", "MemberID"),
			"suffix": {Name: "suffix", Unique: true, Indexer: suffixIndex{}},
		}},
		Records: {Name: Records, Indexes: map[string]*memdb.IndexSchema{
			"id":     idIndex(),
			"domain": uintIndex("domain", "DomainID"),
			"member": uintIndex("member", "MemberID"),
			"owner": {Name: "owner", Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				uintFieldIndex("DomainID"),
				stringFieldIndex("Name", true),
			}}},
			"ptr": {Name: "ptr", Unique: true, AllowMissing: true, Indexer: stringFieldIndex("IPAddress", false)},
			"suffix": {Name: "suffix", Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				uintFieldIndex("DomainID"),
				suffixIndex{},
			}}},
			// Only NS, MX and SRV records (but the null MX) have a
			// target; the others are left out.
			"target": {Name: "target", AllowMissing: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				uintFieldIndex("DomainID"),
				targetIndex{},
			}}},
		}},
	}
}

// Domain returns a domain by id.
func (r *ReadTxn) Domain(id uint64) (*api.Domain, bool) { return get[*api.Domain](r, Domains, id) }

// DomainByName returns a domain by its name (lower case, no trailing dot).
func (r *ReadTxn) DomainByName(name string) (*api.Domain, bool) {
	raw, err := r.txn.First(Domains, "name", name)
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*api.Domain), true
}

// DomainList returns every domain, by id.
func (r *ReadTxn) DomainList() []*api.Domain { return all[*api.Domain](r, Domains, "id") }

// Record returns a record by id.
func (r *ReadTxn) Record(id uint64) (*api.Record, bool) { return get[*api.Record](r, Records, id) }

// RecordList returns every record, PTR records included, by id.
func (r *ReadTxn) RecordList() []*api.Record { return all[*api.Record](r, Records, "id") }

// RecordListByMember returns the records of member, PTR records
// included, by id.
func (r *ReadTxn) RecordListByMember(member uint64) []*api.Record {
	return all[*api.Record](r, Records, "member", member)
}

// DomainRecords returns the records of a domain, by id.
func (r *ReadTxn) DomainRecords(domain uint64) []*api.Record {
	return all[*api.Record](r, Records, "domain", domain)
}

// PTRFor returns the PTR record of an address (canonical text), if any.
func (r *ReadTxn) PTRFor(addr string) (*api.Record, bool) {
	raw, err := r.txn.First(Records, "ptr", addr)
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*api.Record), true
}

// DomainCreate stores a new zone. Its name must be free, and it may not
// nest inside, or enclose, a domain of another member: that would let one
// tenant take over part of another's name space.
func (t *Txn) DomainCreate(d *api.Domain) (*api.Domain, error) {
	if _, ok := t.Member(d.MemberID); !ok {
		return nil, fieldErr("member_id", "iaas_domain_create_104", "Member %d does not exist.", d.MemberID)
	}
	if _, ok := t.DomainByName(d.Name); ok {
		return nil, fieldErr("name", "iaas_domain_create_105", "The domain %s already exists.", d.Name)
	}
	if o, ok := t.domainOverlap(d); ok {
		return nil, fieldErr("name", "iaas_domain_create_106", "%s overlaps the domain %s of another member.", d.Name, o.Name)
	}
	if t.since(Rules4) {
		if err := t.occludedByDomain(d); err != nil {
			return nil, err
		}
	}
	d.Serial = t.Index
	return d, insertNew(t, Domains, d)
}

// domainOverlap finds a domain of another member that d is inside of
// (an ancestor: one look-up per label) or that is inside d (a descendant:
// one prefix scan of the suffix index), without reading every domain.
func (r *ReadTxn) domainOverlap(d *api.Domain) (*api.Domain, bool) {
	for name := d.Name; ; {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			break
		}
		name = name[i+1:]
		if o, ok := r.DomainByName(name); ok && o.MemberID != d.MemberID {
			return o, true
		}
	}
	it, err := r.txn.Get(Domains, "suffix_prefix", reverseLabels(d.Name)+".")
	if err != nil {
		return nil, false
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if o := raw.(*api.Domain); o.MemberID != d.MemberID {
			return o, true
		}
	}
	return nil, false
}

// parentDomain is the most specific domain strictly above name (one
// look-up per label), if any.
func (r *ReadTxn) parentDomain(name string) (*api.Domain, bool) {
	for n := name; ; {
		i := strings.IndexByte(n, '.')
		if i < 0 {
			return nil, false
		}
		n = n[i+1:]
		if d, ok := r.DomainByName(n); ok {
			return d, true
		}
	}
}

// atOrBelow reports whether name is apex or a name under it.
func atOrBelow(name, apex string) bool {
	return name == apex || strings.HasSuffix(name, "."+apex)
}

// delegated reports whether r, a record of domain at or below the apex of
// a (would-be) child domain, is the parent's delegation of the child: an
// NS record at the child's apex, or glue, an A or AAAA record whose name
// such an NS record of the domain names. Those belong in the parent (its
// secondaries hand out the referral); anything else there is never
// served once the child exists, as the server answers from the most
// specific zone.
func (r *ReadTxn) delegated(rec *api.Record, child string) bool {
	switch rec.Type {
	case "NS":
		return rec.Name == child
	case "A", "AAAA":
		it, err := r.txn.Get(Records, "owner", rec.DomainID, child)
		if err != nil {
			return false
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if o := raw.(*api.Record); o.Type == "NS" && recordTarget(o) == rec.Name {
				return true
			}
		}
	}
	return false
}

// recordsAtOrBelow returns the records of domain whose names are apex or
// under it, by name: two scans of the suffix index, apex exactly and then
// the names whose reversed labels begin with apex's and a dot (so that
// dev.example.com does not take in devx.example.com), without reading the
// domain's other records.
func (r *ReadTxn) recordsAtOrBelow(domain uint64, apex string) []*api.Record {
	out := all[*api.Record](r, Records, "suffix", domain, apex)
	return append(out, all[*api.Record](r, Records, "suffix_prefix", domain, reverseLabels(apex)+".")...)
}

// occludedByDomain refuses a new domain d while its parent domain holds
// records at or below d's apex other than d's delegation and glue: they
// would stay in the parent's zone (and its transfers) but no longer be
// served, as the server answers from the most specific zone.
func (t *Txn) occludedByDomain(d *api.Domain) error {
	p, ok := t.parentDomain(d.Name)
	if !ok {
		return nil
	}
	var names []string
	n := 0
	for _, rec := range t.recordsAtOrBelow(p.ID, d.Name) {
		if t.delegated(rec, d.Name) {
			continue
		}
		n++
		if len(names) < 3 && !slices.Contains(names, rec.Name) {
			names = append(names, rec.Name)
		}
	}
	if n == 0 {
		return nil
	}
	return api.Errorf(http.StatusConflict, "iaas_domain_create_109",
		"The domain %s (id %d) holds %d record(s) at or below %s (%s): they would no longer be served once %s is a domain. Delete them first (or move them: delete them and create them in %s once it exists); an NS delegation at %s and its glue may stay.",
		p.Name, p.ID, n, d.Name, strings.Join(names, ", "), d.Name, d.Name, d.Name)
}

// insideChild refuses a forward record whose name lies inside a more
// specific domain than its own: that domain serves the name, so the
// record would never be, except the delegation of that domain and its
// glue (delegated). Glue counts as glue only once the NS record naming it
// is there, so an A or AAAA refused says so.
func (t *Txn) insideChild(r *api.Record, zone, op string) error {
	if r.Type == "PTR" {
		return nil // PTRCreate puts a PTR in the most specific reverse zone
	}
	for n := r.Name; n != zone && strings.Contains(n, "."); n = n[strings.IndexByte(n, '.')+1:] {
		c, ok := t.DomainByName(n)
		if !ok || c.ID == r.DomainID {
			continue
		}
		if t.delegated(r, c.Name) {
			return nil
		}
		glue := ""
		if r.Type == "A" || r.Type == "AAAA" {
			glue = fmt.Sprintf(" Glue for the delegation of %s is accepted here once the NS record at %s naming %s exists: create the NS record first.", c.Name, c.Name, r.Name)
		}
		return fieldErr("name", "iaas_record_"+op+"_122", "%s is in domain %s (id %d): create it there.%s", r.Name, c.Name, c.ID, glue)
	}
	return nil
}

// suffixIndex indexes a domain or a record by its name's labels in
// reverse order and lowercase ("www.Example.com" → "com.example.www"), so
// that the names under a name are one prefix scan: those under
// example.com have keys that begin with "com.example.".
type suffixIndex struct{}

func (suffixIndex) FromObject(obj any) (bool, []byte, error) {
	var name string
	switch o := obj.(type) {
	case *api.Domain:
		name = o.Name
	case *api.Record:
		name = o.Name
	default:
		return false, nil, fmt.Errorf("suffix index: %T is not a domain or a record", obj)
	}
	return true, []byte(reverseLabels(name) + "\x00"), nil
}

func (suffixIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("suffix index: one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("suffix index: %T is not a string", args[0])
	}
	return []byte(reverseLabels(s) + "\x00"), nil
}

// PrefixFromArgs takes a key prefix as it is, already reversed.
func (suffixIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("suffix index: one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("suffix index: %T is not a string", args[0])
	}
	return []byte(s), nil
}

// reverseLabels is name's labels in reverse order, lowercase.
func reverseLabels(name string) string {
	l := strings.Split(strings.ToLower(name), ".")
	slices.Reverse(l)
	return strings.Join(l, ".")
}

// DomainDelete removes a zone and every record in it.
func (t *Txn) DomainDelete(id uint64) error {
	if _, ok := t.Domain(id); !ok {
		return api.NotFound("iaas_domain_delete_001")
	}
	recs := t.DomainRecords(id)
	for _, r := range recs {
		if err := t.txn.Delete(Records, r); err != nil {
			return err
		}
	}
	if len(recs) > 0 {
		if _, err := t.bump(Records, false); err != nil {
			return err
		}
	}
	return remove(t, Domains, id, "iaas_domain_delete")
}

// touchZone moves a zone's serial to this command's index.
func (t *Txn) touchZone(id uint64) error {
	d, ok := t.Domain(id)
	if !ok {
		return api.NotFound("iaas_domain_001")
	}
	n := *d
	n.Serial = t.Index
	if _, err := t.bump(Domains, false); err != nil {
		return err
	}
	return t.txn.Insert(Domains, &n)
}

// recordConflict enforces what depends on the other records of the owner
// name: CNAME exclusivity and no duplicate content. self is the record
// being updated (0 on create).
func (t *Txn) recordConflict(r *api.Record, self uint64, op string) error {
	it, err := t.txn.Get(Records, "owner", r.DomainID, r.Name)
	if err != nil {
		return err
	}
	rrset := []*api.Record{r}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		o := raw.(*api.Record)
		if o.ID == self {
			continue
		}
		if r.Type == "CNAME" || o.Type == "CNAME" {
			return fieldErr("type", "iaas_record_"+op+"_118", "%s already has a %s record (id %d); a CNAME record cannot share its name with any other record.", r.Name, o.Type, o.ID)
		}
		if o.Type == r.Type && t.sameContent(r.Type, o.Content, r.Content) && o.Priority == r.Priority {
			return fieldErr("content", "iaas_record_"+op+"_119", "%s already has this %s record (id %d).", r.Name, r.Type, o.ID)
		}
		if o.Type == r.Type {
			rrset = append(rrset, o)
		}
	}
	if t.since(Rules8) {
		if n := rrsetOctets(rrset); n > MaxRRsetOctets && n > t.rrsetBefore(rrset, self) {
			return fieldErr("content", "iaas_record_"+op+"_123", "The %d %s records at %s would take %d octets in an answer; one DNS message carries at most %d: remove some, or shorten them.", len(rrset), r.Type, r.Name, n, MaxRRsetOctets)
		}
		if loop := t.cnameLoop(r); loop != nil {
			return fieldErr("content", "iaas_record_"+op+"_111", "This CNAME would close a loop: %s. Resolvers answer a loop with SERVFAIL.", strings.Join(loop, " → "))
		}
	}
	return t.aliasTarget(r, op)
}

// MaxRRsetOctets is the most the records of one name and type (an RRset)
// may take in an answer, header included: a DNS message carries at most
// 65,535 octets, and the rest leaves room for the question, an OPT and a
// TSIG record (Rules8).
const MaxRRsetOctets = 64000

// rrsetBefore is what the RRset of an update (rrset: the record as it
// will be first, then the others) took before it, 0 for a create or a
// record that changes its name (it joins this RRset): an RRset over the
// bound from before Rules8 may still shrink, or keep its size.
func (t *Txn) rrsetBefore(rrset []*api.Record, self uint64) int {
	cur, ok := t.Record(self)
	if self == 0 || !ok || !strings.EqualFold(cur.Name, rrset[0].Name) {
		return 0
	}
	return rrsetOctets(append([]*api.Record{cur}, rrset[1:]...))
}

// rrsetOctets is the size of an answer holding the records, owner names
// compressed as the server sends them. It is miekg/dns's Msg.Len of
// rdata.RR's records: an upgrade of either that changes a size changes
// what Apply decides near the bound, and so needs a new rules version. Most RRsets are far below the
// bound, which a cheap over-estimate shows without building the records.
func rrsetOctets(recs []*api.Record) int {
	bound := 12 + 256 // the header, the first owner name in full
	for _, rec := range recs {
		// A compressed owner (2), type, class, TTL and length (10), MX and
		// SRV priority (2), then at most the content's text plus a length
		// octet per 255 of it, or an AAAA's 16 octets, or a LOC's 16.
		bound += 14 + max(len(rec.Content)+len(rec.Content)/255+2, 16)
	}
	if bound <= MaxRRsetOctets {
		return bound
	}
	m := new(mdns.Msg)
	m.Compress = true
	for _, rec := range recs {
		if rr, err := rdata.RR(rec.Name, rec.Type, rec.TTL, rec.Priority, rec.Content); err == nil {
			m.Answer = append(m.Answer, rr) // (one that does not parse is not served)
		}
	}
	return m.Len()
}

// cnameLoop returns the chain r, a CNAME, would close into a loop of its
// domain's CNAMEs (r's name first and last), or nil. The server chases a
// chain inside a zone for at most 8 links (controller/dns maxChase), so
// longer ones are not followed here either. The bound is Rules8's own, not
// the server's constant: a change of how far the server chases must not
// change what an old entry decides on replay.
func (t *Txn) cnameLoop(r *api.Record) []string {
	if r.Type != "CNAME" {
		return nil
	}
	const maxChase = 8
	chain := []string{r.Name}
	next := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(r.Content), "."))
	for range maxChase {
		chain = append(chain, next)
		if next == strings.ToLower(r.Name) {
			return chain
		}
		it, err := t.txn.Get(Records, "owner", r.DomainID, next)
		if err != nil {
			return nil
		}
		var c *api.Record
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if o := raw.(*api.Record); o.Type == "CNAME" && o.ID != r.ID {
				c = o
				break
			}
		}
		if c == nil {
			return nil
		}
		next = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(c.Content), "."))
	}
	return nil
}

// sameContent reports whether two records of type typ say the same: their
// names compared without case or a final dot, but the character strings of
// TXT and SPF (and NAPTR's, which hold regular expressions) byte for byte
// (RFC 1035 §3.3, RFC 2181 §5).
func (t *Txn) sameContent(typ, a, b string) bool {
	switch typ {
	case "TXT", "SPF", "NAPTR":
		if t.since(Rules1) {
			return a == b
		}
	}
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// aliasTarget enforces RFC 2181 §10.3 inside a zone: the target of an NS,
// MX or SRV record must be the host itself, not a name with a CNAME
// (resolvers and mail servers do not follow it there), and a CNAME cannot
// be put at a name such a record of the zone names.
func (t *Txn) aliasTarget(r *api.Record, op string) error {
	code := "iaas_record_" + op + "_121"
	if target := recordTarget(r); target != "" {
		it, err := t.txn.Get(Records, "owner", r.DomainID, target)
		if err != nil {
			return err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if o := raw.(*api.Record); o.Type == "CNAME" {
				return fieldErr("content", code, "%s is an alias (CNAME record id %d); a %s record must name the host itself (RFC 2181 section 10.3).", target, o.ID, r.Type)
			}
		}
		return nil
	}
	if r.Type != "CNAME" {
		return nil
	}
	// The records of the domain whose target is r.Name, by id (a
	// non-unique index orders equal keys by the primary key): the first
	// other than r is the one a scan of DomainRecords found first.
	it, err := t.txn.Get(Records, "target", r.DomainID, r.Name)
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if o := raw.(*api.Record); o.ID != r.ID {
			return fieldErr("type", code, "%s is the target of %s record id %d; it cannot be an alias (RFC 2181 section 10.3).", r.Name, o.Type, o.ID)
		}
	}
	return nil
}

// targetIndex indexes a record by its recordTarget, lower case without
// the trailing dot; a record without one is not indexed. Look-ups take
// the name as it is, not lowered, so that they match exactly where
// recordTarget(o) == name.
type targetIndex struct{}

func (targetIndex) FromObject(obj any) (bool, []byte, error) {
	r, ok := obj.(*api.Record)
	if !ok {
		return false, nil, fmt.Errorf("target index: %T is not a record", obj)
	}
	target := recordTarget(r)
	if target == "" {
		return false, nil, nil
	}
	return true, []byte(target + "\x00"), nil
}

func (targetIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("target index: one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("target index: %T is not a string", args[0])
	}
	return []byte(s + "\x00"), nil
}

// recordTarget is the host name an NS, MX or SRV record points to, lower
// case without the trailing dot; "" for other types and the null MX.
func recordTarget(r *api.Record) string {
	var target string
	switch r.Type {
	case "NS", "MX":
		target = r.Content
	case "SRV":
		if f := strings.Fields(r.Content); len(f) == 3 {
			target = f[2]
		}
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(target), "."))
}

// RecordCreate stores a record in its domain. The API has validated the
// record's own fields; what depends on other records is checked here.
func (t *Txn) RecordCreate(r *api.Record) (*api.Record, error) {
	d, ok := t.Domain(r.DomainID)
	if !ok {
		return nil, fieldErr("domain_id", "iaas_record_create_103", "Domain with id = '%d' doesn't exist", r.DomainID)
	}
	if r.Type != "PTR" {
		r.MemberID = d.MemberID
	}
	if t.since(Rules4) {
		if err := t.insideChild(r, d.Name, "create"); err != nil {
			return nil, err
		}
	}
	if err := t.recordConflict(r, 0, "create"); err != nil {
		return nil, err
	}
	if err := insertNew(t, Records, r); err != nil {
		return nil, err
	}
	return r, t.touchZone(d.ID)
}

// RecordUpdate replaces a record; its domain, type and (PTR) address do
// not change.
func (t *Txn) RecordUpdate(r *api.Record, expect uint64) (*api.Record, error) {
	cur, ok := t.Record(r.ID)
	if !ok {
		return nil, api.NotFound("iaas_record_update_001")
	}
	if r.DomainID != cur.DomainID || r.Type != cur.Type || r.IPAddress != cur.IPAddress || r.MemberID != cur.MemberID {
		return nil, api.Errorf(http.StatusBadRequest, "iaas_record_update_120", "The domain, type and address of a record cannot change.")
	}
	// Only a new name can move a record into a child domain: one stored
	// there before Rules4 keeps its name and may still be changed.
	if t.since(Rules4) && r.Name != cur.Name {
		if d, ok := t.Domain(r.DomainID); ok {
			if err := t.insideChild(r, d.Name, "update"); err != nil {
				return nil, err
			}
		}
	}
	if err := t.recordConflict(r, r.ID, "update"); err != nil {
		return nil, err
	}
	if err := replace(t, Records, r, expect, "iaas_record_update"); err != nil {
		return nil, err
	}
	return r, t.touchZone(r.DomainID)
}

// RecordDelete removes a record.
func (t *Txn) RecordDelete(id uint64) error {
	cur, ok := t.Record(id)
	if !ok {
		return api.NotFound("iaas_record_delete_001")
	}
	if err := remove(t, Records, id, "iaas_record_delete"); err != nil {
		return err
	}
	return t.touchZone(cur.DomainID)
}

// PTRCreate stores the PTR record of r.IPAddress (canonical text) with
// owner name r.Name (its reverse name). Unless anyOwner, r.MemberID must
// own the address in IPAM. The record goes into the longest existing
// reverse domain that encloses its name; when there is none, the CloudCIX
// reverse zone (/24 for IPv4, /48 for IPv6) is created for the region,
// owned by the global member.
func (t *Txn) PTRCreate(r *api.Record, anyOwner bool) (*api.Record, error) {
	addr, err := netip.ParseAddr(r.IPAddress)
	if err != nil || strings.TrimSuffix(netx.ReverseName(addr), ".") != r.Name {
		return nil, fieldErr("ip_address", "iaas_ptr_record_create_102", "ip_address %q is not an IP address.", r.IPAddress)
	}
	if !anyOwner && !t.ownsAddress(r.MemberID, addr) {
		return nil, fieldErr("ip_address", "iaas_ptr_record_create_109", "Your member does not hold the IP address %s in IPAM.", addr)
	}
	if o, ok := t.PTRFor(r.IPAddress); ok {
		return nil, fieldErr("ip_address", "iaas_ptr_record_create_110", "%s already has a PTR record (id %d); update it instead.", addr, o.ID)
	}
	zone := t.reverseZone(r.Name)
	if zone == nil {
		zone = &api.Domain{MemberID: api.GlobalMemberID, Name: netx.CloudCIXReverseZone(addr)}
		if _, err := t.DomainCreate(zone); err != nil {
			return nil, err
		}
	}
	r.DomainID = zone.ID
	return t.RecordCreate(r)
}

// reverseZone is the longest domain enclosing the reverse name n.
func (t *Txn) reverseZone(n string) *api.Domain {
	for rest := n; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return nil
		}
		rest = rest[i+1:]
		if !strings.Contains(rest, ".") {
			return nil // never serve a bare "arpa"
		}
		if d, ok := t.DomainByName(rest); ok {
			return d
		}
	}
}

// ownsAddress reports whether member holds addr (allocated, not released)
// in any of its IPAM blocks, or, from Rules5, as the public (NAT) address
// of one of its addresses (a VM's public address is the region's row).
func (t *Txn) ownsAddress(member uint64, addr netip.Addr) bool {
	return t.holdsAddress(member, addr, 0)
}

// holdsAddress is ownsAddress through rows other than except (a row going
// away, or the public address a row is leaving).
func (t *Txn) holdsAddress(member uint64, addr netip.Addr, except uint64) bool {
	is := func(text string) bool { a, err := netip.ParseAddr(text); return err == nil && a == addr }
	for _, ip := range t.IPAddressListByMember(member) {
		if ip.ID == except || ip.Deallocated {
			continue
		}
		if is(ip.Address) {
			return true
		}
		if t.since(Rules5) && ip.PublicIPID != 0 && ip.PublicIPID != except {
			if p, ok := t.IPAddress(ip.PublicIPID); ok && !p.Deallocated && is(p.Address) {
				return true
			}
		}
	}
	return false
}
