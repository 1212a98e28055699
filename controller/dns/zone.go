package dns

import (
	"strings"

	"github.com/hashicorp/go-hclog"
	mdns "github.com/miekg/dns"
)

// node is one existing name of a zone. An empty non-terminal has no sets.
// Nodes are immutable once the zone is built.
type node struct {
	name  string
	sets  map[uint16][]mdns.RR
	cname *mdns.CNAME // the CNAME at this name, if any
	cut   bool        // NS below the apex: a delegation point
	wild  *node       // the child "*.<name>", if it exists
}

// zone is the immutable, query-ready form of one Zone.
type zone struct {
	name   string // lower case fqdn
	labels int    // label count of name
	serial uint32
	soa    *mdns.SOA
	negSOA *mdns.SOA // SOA for negative answers: TTL min(TTL, MINIMUM)
	ns     []mdns.RR // apex NS set
	apex   *node
	nodes  map[string]*node
	xfr    []mdns.RR // every RR except the SOA, apex NS first (AXFR body)
	// journal holds the changes from earlier versions served by this
	// node, oldest first, for IXFR (journal.go).
	journal []*delta
}

// buildZone turns a Zone from the Source into its lookup structure. Records
// outside the zone, SOA records and nil records are skipped with a warning.
func buildZone(src *Zone, st *settings, log hclog.Logger) *zone {
	name := strings.ToLower(mdns.Fqdn(src.Name))
	z := &zone{
		name:   name,
		labels: mdns.CountLabel(name),
		serial: src.Serial,
		nodes:  make(map[string]*node, len(src.RRs)+1),
	}
	nsNames, mname, rname := st.NS, st.MName, st.RName
	if len(src.NS) > 0 {
		// The source's apex: this server's own RName does not apply, so
		// that every server of the zone has the same SOA at a serial.
		nsNames, rname = src.NS, src.RName
		if !st.mnameGiven {
			mname = src.NS[0]
		}
	} else if src.RName != "" {
		rname = src.RName
	}
	if rname == "" {
		rname = "hostmaster." + name
		if name == "." {
			rname = "hostmaster."
		}
	}
	hdr := mdns.RR_Header{Name: name, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: st.TTL}
	z.soa = &mdns.SOA{Hdr: hdr, Ns: mname, Mbox: rname, Serial: src.Serial,
		Refresh: st.Refresh, Retry: st.Retry, Expire: st.Expire, Minttl: st.Minimum}
	neg := *z.soa
	neg.Hdr.Ttl = min(st.TTL, st.Minimum)
	z.negSOA = &neg

	z.apex = &node{name: name, sets: map[uint16][]mdns.RR{mdns.TypeSOA: {z.soa}}}
	z.nodes[name] = z.apex

	nsSeen := make(map[string]bool)
	for _, n := range nsNames {
		nsSeen[n] = true
		z.ns = append(z.ns, &mdns.NS{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeNS, Class: mdns.ClassINET, Ttl: st.TTL}, Ns: n})
	}

	var body []mdns.RR
	skipped := 0
	for _, rr := range src.RRs {
		if rr == nil || rr.Header() == nil {
			skipped++
			continue
		}
		// The Source's records are never modified: copy the few that
		// need a lower-case owner or a class.
		h := rr.Header()
		if owner := strings.ToLower(mdns.Fqdn(h.Name)); owner != h.Name || h.Class == 0 {
			rr = mdns.Copy(rr)
			h = rr.Header()
			h.Name = owner
			if h.Class == 0 {
				h.Class = mdns.ClassINET
			}
		}
		if h.Rrtype == mdns.TypeSOA || h.Rrtype == mdns.TypeOPT || h.Rrtype == mdns.TypeTSIG || !mdns.IsSubDomain(name, h.Name) {
			skipped++
			continue
		}
		if h.Rrtype == mdns.TypeNS && h.Name == name {
			target := strings.ToLower(rr.(*mdns.NS).Ns)
			if !nsSeen[target] {
				nsSeen[target] = true
				z.ns = append(z.ns, rr)
			}
			continue
		}
		n := z.nodes[h.Name]
		if n == nil {
			n = &node{name: h.Name}
			z.nodes[h.Name] = n
		}
		if n.sets == nil {
			n.sets = make(map[uint16][]mdns.RR, 1)
		}
		dup := false
		for _, o := range n.sets[h.Rrtype] {
			if mdns.IsDuplicate(o, rr) {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		if c, ok := rr.(*mdns.CNAME); ok {
			if n.cname != nil { // one CNAME per name
				skipped++
				continue
			}
			n.cname = c
		}
		n.sets[h.Rrtype] = append(n.sets[h.Rrtype], rr)
		body = append(body, rr)
	}
	if skipped > 0 {
		log.Warn("skipped records that cannot be served", "zone", name, "count", skipped)
	}
	// RFC 2181 §5.2: one TTL for the apex NS set, configured names and
	// tenants' apex NS records alike: the lowest.
	ttl := st.TTL
	for _, rr := range z.ns {
		ttl = min(ttl, rr.Header().Ttl)
	}
	for i, rr := range z.ns {
		if rr.Header().Ttl != ttl {
			rr = mdns.Copy(rr)
			rr.Header().Ttl = ttl
			z.ns[i] = rr
		}
	}
	z.apex.sets[mdns.TypeNS] = z.ns
	z.xfr = append(append(make([]mdns.RR, 0, len(z.ns)+len(body)), z.ns...), body...)

	// Empty non-terminals: every ancestor of an owner up to the apex exists.
	owners := make([]string, 0, len(z.nodes))
	for n := range z.nodes {
		owners = append(owners, n)
	}
	for _, o := range owners {
		for off, end := mdns.NextLabel(o, 0); !end; off, end = mdns.NextLabel(o, off) {
			anc := o[off:]
			if len(anc) <= len(name) {
				break
			}
			if _, ok := z.nodes[anc]; ok {
				break
			}
			z.nodes[anc] = &node{name: anc}
		}
	}
	for _, n := range z.nodes {
		if n != z.apex && len(n.sets[mdns.TypeNS]) > 0 {
			n.cut = true
		}
		if strings.HasPrefix(n.name, "*.") {
			if p := z.nodes[n.name[2:]]; p != nil {
				p.wild = n
			}
		}
	}
	return z
}

// lookup descends from the apex towards qname (lower case, inside the zone).
// It returns the delegation point when the name is at or below a zone cut
// (except a DS query at the cut itself, which the parent answers); else the
// node for qname, or the wildcard of the closest encloser (wild=true); or
// nothing (NXDOMAIN).
func (z *zone) lookup(qname string, qtype uint16) (n *node, wild bool, cut *node) {
	if len(qname) == len(z.name) {
		return z.apex, false, nil
	}
	idx := mdns.Split(qname)
	below := len(idx) - z.labels
	ce := z.apex
	for i := below - 1; i >= 0; i-- {
		nd := z.nodes[qname[idx[i]:]]
		if nd == nil {
			if ce.wild != nil {
				return ce.wild, true, nil
			}
			return nil, false, nil
		}
		if nd.cut && (i != 0 || qtype != mdns.TypeDS) {
			return nil, false, nd
		}
		ce = nd
	}
	return ce, false, nil
}

// zoneSet is one immutable snapshot of every served zone, with the packed
// response cache that is valid for exactly this snapshot.
type zoneSet struct {
	zones map[string]*zone
	cache *packetCache
}

// findFor returns the zone that answers qname/qtype: the longest zone
// qname is in, except that a DS query at a zone's apex goes to the parent
// zone when this server has it and it delegates the child (the DS set
// lives on the parent's side of the cut, RFC 4035 §3.1.4.1). Without a
// delegation in the parent the child answers: the parent would say
// NXDOMAIN, which tells resolvers nothing exists below the name.
func (zs *zoneSet) findFor(qname string, qtype uint16) *zone {
	z := zs.find(qname)
	if z != nil && qtype == mdns.TypeDS && z.name == qname && qname != "." {
		if off, end := mdns.NextLabel(qname, 0); !end {
			if p := zs.find(qname[off:]); p != nil {
				if nd := p.nodes[qname]; nd != nil && nd.cut {
					return p
				}
			}
		}
	}
	return z
}

// find returns the longest zone that qname (lower case fqdn) is in.
func (zs *zoneSet) find(qname string) *zone {
	if len(zs.zones) == 0 {
		return nil
	}
	off := 0
	for {
		if z, ok := zs.zones[qname[off:]]; ok {
			return z
		}
		next, end := mdns.NextLabel(qname, off)
		if end || next >= len(qname) {
			break
		}
		off = next
	}
	if z, ok := zs.zones["."]; ok {
		return z
	}
	return nil
}
