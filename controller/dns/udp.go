package dns

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// keyMax bounds a fast-path key: a wire name (≤ 255) plus type, class,
// EDNS flag, UDP size and DO.
const keyMax = 255 + 4 + 4

// parseFast recognises a plain query: opcode QUERY, QR=0, one question with
// an uncompressed name, no answer or authority records, and either no
// additional record or one EDNS0 version-0 OPT without options, with nothing
// after it. It writes the cache key into key (lower-cased wire name, qtype,
// qclass, EDNS flag, effective UDP size, DO) and returns the wire length of
// the name and of the key. Anything else returns ok=false and takes the
// full path.
func parseFast(req, key []byte, maxUDP int) (qlen, klen int, ok bool) {
	if len(req) < 12+5 || req[2]&0xf8 != 0 {
		return 0, 0, false
	}
	if req[4] != 0 || req[5] != 1 || req[6]|req[7]|req[8]|req[9]|req[10] != 0 || req[11] > 1 {
		return 0, 0, false
	}
	off := 12
	for {
		if off >= len(req) {
			return 0, 0, false
		}
		l := int(req[off])
		if l == 0 {
			key[off-12] = 0
			off++
			break
		}
		if l > 63 || off+1+l >= len(req) || off+1+l-12 >= 255 {
			return 0, 0, false
		}
		key[off-12] = byte(l)
		for i := off + 1; i <= off+l; i++ {
			c := req[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			key[i-12] = c
		}
		off += 1 + l
	}
	qlen = off - 12
	if off+4 > len(req) {
		return 0, 0, false
	}
	if t := binary.BigEndian.Uint16(req[off:]); t == mdns.TypeAXFR || t == mdns.TypeIXFR {
		return 0, 0, false
	}
	k := copy(key[qlen:], req[off:off+4]) + qlen
	off += 4
	size, edns, do := 512, byte(0), byte(0)
	if req[11] == 1 {
		// OPT: root owner, type 41, class = UDP size, TTL = ext-rcode,
		// version, flags; RDLENGTH 0.
		if off+11 != len(req) || req[off] != 0 || req[off+1] != 0 || req[off+2] != byte(mdns.TypeOPT) {
			return 0, 0, false
		}
		if req[off+6] != 0 || req[off+9]|req[off+10] != 0 {
			return 0, 0, false
		}
		edns, do = 1, req[off+7]&0x80
		size = min(max(512, int(binary.BigEndian.Uint16(req[off+3:]))), maxUDP)
	} else if off != len(req) {
		return 0, 0, false
	}
	key[k], key[k+1], key[k+2], key[k+3] = edns, byte(size>>8), byte(size), do
	return qlen, k + 4, true
}

// handleUDP answers one UDP datagram into out and returns the response, or
// nil to send nothing.
func (s *Server) handleUDP(zs *zoneSet, req, out []byte, remote netip.AddrPort) []byte {
	var kb [keyMax]byte
	qlen, klen, ok := parseFast(req, kb[:], s.cfg.UDPSize)
	if !ok || zs.cache == nil {
		return s.slowUDP(zs, req, out, remote)
	}
	key := kb[:klen]
	e := zs.cache.get(key)
	if e == nil {
		e = s.fill(zs, req, qlen, key, remote)
		if e == nil {
			return s.slowUDP(zs, req, out, remote)
		}
	}
	resp := append(out[:0], e.b...)
	resp[0], resp[1] = req[0], req[1]
	resp[2] = resp[2]&^0x01 | req[2]&0x01 // RD
	resp[3] = resp[3]&^0x10 | req[3]&0x10 // CD
	copy(resp[12:12+qlen], req[12:12+qlen])
	if e.counter != nil {
		e.counter.Inc()
		if resp[2]&0x02 != 0 {
			s.metrics.truncatedReply()
		}
	}
	return resp
}

// fill answers a normalised copy of a plain query (ID 0, RD=CD=0, lower
// case name) through the full path and caches the packed result.
func (s *Server) fill(zs *zoneSet, req []byte, qlen int, key []byte, remote netip.AddrPort) (e *cacheEntry) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic answering query", "panic", r)
			e = nil
		}
	}()
	norm := bytes.Clone(req)
	norm[0], norm[1] = 0, 0
	norm[2] &^= 0x01
	norm[3] &^= 0x10
	copy(norm[12:], key[:qlen])
	r := new(mdns.Msg)
	if err := r.Unpack(norm); err != nil || len(r.Question) != 1 {
		return nil
	}
	m := s.respond(zs, r, reqInfo{remote: remote.Addr()})
	if m == nil {
		return nil
	}
	size := int(key[len(key)-3])<<8 | int(key[len(key)-2])
	truncate(m, size)
	b, err := m.Pack()
	if err != nil || len(b) < 12+qlen || !bytes.Equal(b[12:12+qlen], key[:qlen]) {
		return nil
	}
	if !m.Compress {
		// The owners equal to the (lower case) question name become
		// pointers to it, so that a hit, which copies the client's
		// spelling into the question, answers in that spelling too. A
		// compressed response already has them as pointers.
		b = pointOwners(b)
	}
	e = &cacheEntry{b: b, qlen: qlen, counter: s.metrics.queryCounter(r.Question[0].Qtype, m.Rcode)}
	zs.cache.put(key, e)
	return e
}

// slowUDP answers a datagram through miekg/dns parsing, with TSIG.
func (s *Server) slowUDP(zs *zoneSet, req, out []byte, remote netip.AddrPort) (resp []byte) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic answering query", "panic", r)
			resp = nil
		}
	}()
	if len(req) < 12 || req[2]&0x80 != 0 {
		return nil // too short to answer, or a response
	}
	// The checks the TCP server applies before unpacking (acceptMsg), so
	// that both transports answer alike: ancount > 1, nscount > 1 or
	// arcount > 2 → FORMERR, unless the opcode is one we do not implement
	// (respond answers NOTIMP).
	switch acceptMsg(mdns.Header{
		Bits:    binary.BigEndian.Uint16(req[2:]),
		Qdcount: binary.BigEndian.Uint16(req[4:]),
		Ancount: binary.BigEndian.Uint16(req[6:]),
		Nscount: binary.BigEndian.Uint16(req[8:]),
		Arcount: binary.BigEndian.Uint16(req[10:]),
	}) {
	case mdns.MsgAccept:
	case mdns.MsgReject:
		return s.headerReply(req, out)
	default:
		return nil
	}
	r := new(mdns.Msg)
	if err := r.Unpack(req); err != nil {
		return s.headerReply(req, out)
	}
	ri := reqInfo{remote: remote.Addr()}
	var secret string
	t := r.IsTsig()
	if t != nil {
		var ok bool
		if secret, ok = s.cfg.tsigSecrets[mdns.CanonicalName(t.Hdr.Name)]; !ok {
			ri.tsigStatus = mdns.ErrSecret
		} else {
			// TsigVerify rewrites ARCOUNT in place: verify a copy.
			ri.tsigStatus = mdns.TsigVerify(bytes.Clone(req), secret, "", false)
		}
	}
	m := s.respond(zs, r, ri)
	if m == nil {
		return nil
	}
	var qtype uint16
	if len(r.Question) > 0 {
		qtype = r.Question[0].Qtype
	}
	s.metrics.query(qtype, m.Rcode)
	size := 512
	if opt := r.IsEdns0(); opt != nil {
		size = min(max(512, int(opt.UDPSize())), s.cfg.UDPSize)
	}
	if sig := m.IsTsig(); sig != nil {
		echoOwners(m)
		b, _, err := mdns.TsigGenerate(m, secret, t.MAC, false)
		if err == nil && len(b) > size {
			// TsigGenerate took the TSIG record out of m.Extra: put it
			// back, after the OPT record if any.
			m.Answer, m.Ns = nil, nil
			extra := m.Extra[:0]
			for _, rr := range m.Extra {
				if rr.Header().Rrtype == mdns.TypeOPT {
					extra = append(extra, rr)
				}
			}
			m.Extra = append(extra, sig)
			m.Truncated = true
			b, _, err = mdns.TsigGenerate(m, secret, t.MAC, false)
		}
		if err != nil {
			return nil
		}
		if m.Truncated {
			s.metrics.truncatedReply()
		}
		return b
	}
	truncate(m, size)
	if m.Truncated {
		s.metrics.truncatedReply()
	}
	if m.Compress {
		echoOwners(m) // compression makes them pointers to the question
	}
	b, err := m.PackBuffer(out)
	if err != nil {
		return nil
	}
	if !m.Compress {
		b = pointOwners(b)
	}
	return b
}

// pointOwners rewrites in place every owner name of the uncompressed
// response b that equals its question name, ignoring ASCII case, into a
// compression pointer to the question (offset 12), and returns the
// shortened message. Those owners then read exactly as the question does:
// as the client spelled it (dns-facts §3), also when b is cached and a hit
// copies another spelling into the question (handleUDP). Other names, such
// as a CNAME target's records, keep their stored spelling. It copies
// nothing. b must not be compressed (RDATA is skipped, not read); a message
// whose question and owners it cannot walk (a pointer, a bad length, not
// one question) is returned unchanged.
func pointOwners(b []byte) []byte {
	if len(b) < 12 || b[4] != 0 || b[5] != 1 {
		return b
	}
	qend, ok := skipName(b, 12)
	if !ok || qend+4 > len(b) || qend-12 < 3 { // the root: a pointer is longer
		return b
	}
	q := b[12:qend]
	count := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	// First check the whole layout and find the first owner to rewrite,
	// so that a message is never left half rewritten.
	first := -1
	off := qend + 4
	for range count {
		end, match, ok := ownerEnd(b, off, q)
		if !ok || end+10 > len(b) {
			return b
		}
		if match && first < 0 {
			first = off
		}
		off = end + 10 + int(binary.BigEndian.Uint16(b[end+8:]))
	}
	if off != len(b) || first < 0 {
		return b
	}
	w := first
	for r := first; r < len(b); {
		end, match, _ := ownerEnd(b, r, q)
		next := end + 10 + int(binary.BigEndian.Uint16(b[end+8:]))
		if match {
			// len(q) ≥ 3: the pointer ends before the owner did.
			b[w], b[w+1] = 0xc0, 12
			w += 2
			r = end
		}
		if w == r {
			w = next
		} else {
			w += copy(b[w:], b[r:next])
		}
		r = next
	}
	return b[:w]
}

// ownerEnd returns the end of the uncompressed name at b[off:] and whether
// it equals q, a whole wire name, ignoring ASCII case. Length octets
// (≤ 63) are never letters, so the wire form can be folded byte by byte,
// and a name whose bytes match q's has q's labels.
func ownerEnd(b []byte, off int, q []byte) (end int, match, ok bool) {
	if e := off + len(q); e <= len(b) && foldEqual(b[off:e], q) {
		return e, true, true
	}
	end, ok = skipName(b, off)
	return end, false, ok
}

// foldEqual reports whether a and b (of equal length) are equal, ignoring
// ASCII case.
func foldEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	for i, c := range a {
		if d := b[i]; c != d {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if 'A' <= d && d <= 'Z' {
				d += 'a' - 'A'
			}
			if c != d {
				return false
			}
		}
	}
	return true
}

// skipName returns the offset after the uncompressed name at b[off:].
func skipName(b []byte, off int) (int, bool) {
	for off < len(b) {
		l := int(b[off])
		if l == 0 {
			return off + 1, true
		}
		if l > 63 { // a pointer or a reserved label type
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// headerReply answers FORMERR to a rejected or unparsable datagram from
// its header alone, as miekg/dns's server does over TCP (with RA and AD
// cleared there by clearRAWriter): the request's ID and TC, RD and CD bits,
// QR set, AA, RA, AD and Z clear (we neither recurse nor validate:
// dns-facts §4.20), opcode QUERY, and empty sections.
func (s *Server) headerReply(req, out []byte) []byte {
	s.metrics.query(0, mdns.RcodeFormatError)
	b := append(out[:0], req[:12]...)
	b[2] = 0x80 | byte(mdns.OpcodeQuery)<<3 | req[2]&0x03 // QR, opcode, TC, RD
	b[3] = req[3]&0x10 | byte(mdns.RcodeFormatError)      // CD, rcode
	clear(b[4:12])
	return b
}

// truncate fits m into size bytes. TC is set when the answer or authority
// section lost records, or a referral its glue (RFC 9471); additional data
// of an answer that does not fit (the addresses of MX, SRV or NS targets)
// is left out without TC (RFC 2181 §9), so the client keeps the answer
// instead of asking again over TCP.
func truncate(m *mdns.Msg, size int) {
	answer, authority := len(m.Answer), len(m.Ns)
	referral := authority > 0 && m.Ns[0].Header().Rrtype == mdns.TypeNS &&
		(answer == 0 || m.Answer[answer-1].Header().Rrtype == mdns.TypeCNAME)
	m.Truncate(size)
	if m.Truncated && !referral && len(m.Answer) == answer && len(m.Ns) == authority {
		m.Truncated = false
	}
}
