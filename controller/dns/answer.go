package dns

import (
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// maxChase is the longest in-zone CNAME chain we follow; a longer one (or a
// loop) is answered SERVFAIL, as CoreDNS does.
const maxChase = 8

// reqInfo is what respond needs to know about how a request arrived.
type reqInfo struct {
	tcp    bool
	remote netip.Addr
	// tsigStatus is the result of verifying the request's TSIG, if signed.
	tsigStatus error
}

// respond builds the response to a parsed request, or returns nil when the
// request must be dropped (it is itself a response). It does not handle
// zone transfers over TCP (see transfer); over UDP they are refused (AXFR)
// or answered with the SOA (IXFR, RFC 1995 §2). The caller applies the size
// limit and, when the response carries a TSIG record, signs it.
func (s *Server) respond(zs *zoneSet, req *mdns.Msg, ri reqInfo) *mdns.Msg {
	if req.Response {
		return nil
	}
	m := new(mdns.Msg)
	m.SetReply(req)
	if !optPlacement(req) {
		// RFC 6891 §6.1.1: more than one OPT RR is FORMERR; so is one
		// outside the additional section. The reply has no OPT: which
		// of the request's would it answer?
		m.Rcode = mdns.RcodeFormatError
		return m
	}
	opt := req.IsEdns0()
	finish := func() *mdns.Msg {
		if opt != nil {
			m.SetEdns0(uint16(s.cfg.UDPSize), opt.Do())
		}
		return m
	}
	if opt != nil && opt.Version() != 0 {
		m.Rcode = mdns.RcodeBadVers
		return finish()
	}
	if req.Opcode != mdns.OpcodeQuery && req.Opcode != mdns.OpcodeNotify {
		// SetReply copies RD and CD for QUERY alone; the reply to an
		// opcode we do not implement keeps them too, as RFC 1035 §4.1.1
		// has RD copied.
		m.RecursionDesired, m.CheckingDisabled = req.RecursionDesired, req.CheckingDisabled
		m.Rcode = mdns.RcodeNotImplemented
		return finish()
	}
	if len(req.Question) != 1 {
		// No question (dig +header-only) or several: which one would
		// the reply answer? It echoes none.
		m.Question = nil
		m.Rcode = mdns.RcodeFormatError
		return finish()
	}
	if req.Opcode == mdns.OpcodeNotify {
		// We are never a secondary: refuse like NSD does.
		m.Rcode = mdns.RcodeRefused
		return finish()
	}
	if t := req.IsTsig(); t != nil {
		if ri.tsigStatus != nil || s.cfg.tsigSecrets == nil {
			m.Rcode = mdns.RcodeNotAuth
			return finish()
		}
		defer m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
	}
	q := req.Question[0]
	switch q.Qtype {
	case mdns.TypeOPT, mdns.TypeTKEY, mdns.TypeTSIG:
		// Pseudo-RR types that only live in the additional section
		// (RFC 6891 §6.1.1, RFC 2930, RFC 8945): not a question.
		m.Rcode = mdns.RcodeFormatError
		return finish()
	case mdns.TypeMAILA, mdns.TypeMAILB:
		// Obsolete meta queries (RFC 1035 §3.2.3, RFC 2505): not served.
		m.Rcode = mdns.RcodeNotImplemented
		return finish()
	}
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		m.Rcode = mdns.RcodeRefused
		return finish()
	}
	qname := strings.ToLower(q.Name)
	switch q.Qtype {
	case mdns.TypeAXFR, mdns.TypeIXFR:
		// Only reached over UDP (TCP transfers are streamed by transfer).
		z := zs.zones[qname]
		if q.Qtype == mdns.TypeAXFR || z == nil || !s.transferAllowed(ri.remote, req) {
			m.Rcode = mdns.RcodeRefused
			return finish()
		}
		m.Authoritative = true
		m.Answer = append(m.Answer, z.soa)
		return finish()
	}
	z := zs.findFor(qname, q.Qtype)
	if z == nil {
		m.Rcode = mdns.RcodeRefused
		return finish()
	}
	m.Authoritative = true
	z.answer(zs, m, qname, q.Name, q.Qtype)
	return finish()
}

// optPlacement reports whether req has at most one OPT record, and none
// in the answer or authority section.
func optPlacement(req *mdns.Msg) bool {
	for _, sec := range [][]mdns.RR{req.Answer, req.Ns} {
		for _, rr := range sec {
			if rr.Header().Rrtype == mdns.TypeOPT {
				return false
			}
		}
	}
	n := 0
	for _, rr := range req.Extra {
		if rr.Header().Rrtype == mdns.TypeOPT {
			n++
		}
	}
	return n <= 1
}

// answer fills m with the authoritative answer for qname/qtype in z. A
// wildcard answer to the query itself is owned by owner, the query name as
// the client spelled it; the other records keep their stored (lower case)
// owners, which the caller turns into the client's spelling when it packs
// the response (pointOwners, echoOwners). A CNAME is chased inside z, by
// the zone of zs the target is in (z, or a zone nested in it).
func (z *zone) answer(zs *zoneSet, m *mdns.Msg, qname, owner string, qtype uint16) {
	name := qname
	for i := 0; ; i++ {
		n, wild, cut := z.lookup(name, qtype)
		if cut != nil {
			if i == 0 {
				m.Authoritative = false
			}
			ns := cut.sets[mdns.TypeNS]
			m.Ns = append(m.Ns, ns...)
			z.addGlue(m, ns)
			return
		}
		if n == nil {
			m.Rcode = mdns.RcodeNameError
			m.Ns = append(m.Ns, z.negSOA)
			return
		}
		// RFC 1034 §4.3.2 step 3a: a CNAME is chased unless the query
		// matches it (QTYPE CNAME or ANY); ANY then answers the RRsets at
		// the node, which is the CNAME alone.
		if n.cname != nil && qtype != mdns.TypeCNAME && qtype != mdns.TypeANY {
			if i >= maxChase {
				m.Rcode = mdns.RcodeServerFailure
				m.Answer = nil
				return
			}
			m.Answer = append(m.Answer, synth(n.cname, owner, wild))
			target := strings.ToLower(n.cname.Target)
			// Chased inside z only (RFC 1034 §4.3.2 step 3a allows more),
			// and there, as step 3a starts over at step 1, by the most
			// specific zone the target is in: a zone nested in z answers
			// for its names, not z's wildcard or NXDOMAIN.
			if !mdns.IsSubDomain(z.name, target) {
				return
			}
			if inner := zs.find(target); inner != nil {
				z = inner
			}
			name, owner = target, target
			continue
		}
		if qtype == mdns.TypeANY && len(n.sets) > 0 {
			for _, rrs := range n.sets {
				for _, rr := range rrs {
					m.Answer = append(m.Answer, synth(rr, owner, wild))
				}
			}
			return
		}
		rrs := n.sets[qtype]
		if len(rrs) == 0 {
			m.Ns = append(m.Ns, z.negSOA)
			return
		}
		for _, rr := range rrs {
			m.Answer = append(m.Answer, synth(rr, owner, wild))
		}
		switch qtype {
		case mdns.TypeSOA:
			if n == z.apex {
				m.Ns = append(m.Ns, z.ns...)
			}
		case mdns.TypeNS:
			z.addGlue(m, rrs)
		case mdns.TypeMX, mdns.TypeSRV:
			z.addGlue(m, rrs)
		}
		return
	}
}

// synth returns rr, or for a wildcard match a copy owned by name.
func synth(rr mdns.RR, name string, wild bool) mdns.RR {
	if !wild {
		return rr
	}
	c := mdns.Copy(rr)
	c.Header().Name = name
	return c
}

// echoOwners replaces the records of m owned by the query name, in any
// section, by copies owned by the name exactly as the client spelled it
// (dns-facts §3: answer with the query's case). It is for responses that
// miekg/dns packs with compression or signs (TCP, TSIG, a UDP response
// compressed to fit): compression then turns these owners into pointers to
// the question. Uncompressed UDP responses use pointOwners instead, which
// copies nothing. A lower-case query copies nothing either.
func echoOwners(m *mdns.Msg) {
	if len(m.Question) != 1 {
		return
	}
	q := m.Question[0].Name
	echoIn(m.Answer, q)
	echoIn(m.Ns, q)
	echoIn(m.Extra, q)
}

// echoIn is echoOwners for one section. The sections of a response are
// built by appending to nil slices, so they never share an array with the
// zone and may be changed in place.
func echoIn(rrs []mdns.RR, q string) {
	for i, rr := range rrs {
		h := rr.Header()
		if h.Name == q || len(h.Name) != len(q) || h.Rrtype == mdns.TypeOPT || h.Rrtype == mdns.TypeTSIG || !strings.EqualFold(h.Name, q) {
			continue
		}
		c := mdns.Copy(rr)
		c.Header().Name = q
		rrs[i] = c
	}
}

// addGlue appends in-zone A/AAAA records of the NS, MX or SRV targets in rrs
// to the additional section.
func (z *zone) addGlue(m *mdns.Msg, rrs []mdns.RR) {
	for i, rr := range rrs {
		var t string
		switch v := rr.(type) {
		case *mdns.NS:
			t = v.Ns
		case *mdns.MX:
			t = v.Mx
		case *mdns.SRV:
			t = v.Target
		default:
			continue
		}
		t = strings.ToLower(t)
		if !mdns.IsSubDomain(z.name, t) {
			continue
		}
		seen := false
		for _, p := range rrs[:i] {
			if strings.EqualFold(target(p), t) {
				seen = true
				break
			}
		}
		if seen {
			continue
		}
		if n := z.nodes[t]; n != nil {
			m.Extra = append(m.Extra, n.sets[mdns.TypeA]...)
			m.Extra = append(m.Extra, n.sets[mdns.TypeAAAA]...)
		}
	}
}

func target(rr mdns.RR) string {
	switch v := rr.(type) {
	case *mdns.NS:
		return v.Ns
	case *mdns.MX:
		return v.Mx
	case *mdns.SRV:
		return v.Target
	}
	return ""
}

// transferAllowed reports whether remote may transfer zones (ACL only; TSIG
// is checked by the caller when keys are configured).
func (s *Server) transferAllowed(remote netip.Addr, req *mdns.Msg) bool {
	remote = remote.Unmap()
	for _, p := range s.cfg.AllowTransfer {
		if p.Contains(remote) {
			return s.cfg.tsigSecrets == nil || req.IsTsig() != nil
		}
	}
	return false
}
