package dns

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// xfrChunk bounds the uncompressed size of the records in one AXFR message.
const xfrChunk = 16 << 10

// serialGE reports a ≥ b in RFC 1982 serial number arithmetic.
func serialGE(a, b uint32) bool { return a == b || int32(a-b) > 0 }

// transfer answers AXFR and IXFR over TCP: only to AllowTransfer networks
// and, when TSIG keys are configured, only to requests validly signed by one
// of them (and then signs every message). IXFR from a serial at or past ours
// gets a single SOA; from a version in the zone's journal, the differences
// since (RFC 1995 §4); from any other serial, a full AXFR-style answer. It
// returns the response code it answered with.
func (s *Server) transfer(w mdns.ResponseWriter, r *mdns.Msg, zs *zoneSet, remote netip.Addr) int {
	q := r.Question[0]
	// RFC 6891 §7: a request with an OPT gets one in every response.
	opt := r.IsEdns0()
	edns := func(m *mdns.Msg) {
		if opt != nil {
			m.SetEdns0(uint16(s.cfg.UDPSize), opt.Do())
		}
	}
	fail := func(rcode int, why string) int {
		m := new(mdns.Msg)
		m.SetRcode(r, rcode)
		edns(m)
		_ = w.WriteMsg(m)
		s.metrics.transferred(resultRefused)
		if n, ok := s.refusedLog.allow(time.Now()); ok {
			s.log.Info("zone transfer refused", "zone", q.Name, "remote", remote, "reason", why, "also_refused", n)
		}
		return rcode
	}
	z := zs.zones[strings.ToLower(q.Name)]
	if z == nil {
		return fail(mdns.RcodeRefused, "not a zone of ours")
	}
	if !s.transferAllowed(remote, r) {
		return fail(mdns.RcodeRefused, "not allowed")
	}
	t := r.IsTsig()
	if t != nil && (s.cfg.tsigSecrets == nil || w.TsigStatus() != nil) {
		return fail(mdns.RcodeNotAuth, "bad TSIG")
	}
	var chunks [][]mdns.RR
	kind := answerFull
	if q.Qtype == mdns.TypeIXFR && len(r.Ns) > 0 {
		if soa, ok := r.Ns[0].(*mdns.SOA); ok {
			if serialGE(soa.Serial, z.serial) {
				chunks, kind = [][]mdns.RR{{z.soa}}, answerCurrent
			} else if body := z.ixfr(soa.Serial); body != nil {
				chunks, kind = chunk(body), answerIncremental
			}
		}
	}
	if chunks == nil {
		chunks = chunk(append(append(append(make([]mdns.RR, 0, len(z.xfr)+2), z.soa), z.xfr...), z.soa))
	}
	for i, rrs := range chunks {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Compress = true
		m.Answer = rrs
		edns(m)
		if t != nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
		}
		if err := w.WriteMsg(m); err != nil {
			s.metrics.transferred(resultFailure)
			s.log.Warn("zone transfer failed", "zone", z.name, "remote", remote, "error", err)
			return mdns.RcodeSuccess
		}
		if i == 0 {
			w.TsigTimersOnly(true)
		}
	}
	w.TsigTimersOnly(false)
	s.metrics.transferred(resultSuccess)
	s.metrics.answered(kind)
	s.log.Info("zone transferred", "zone", z.name, "serial", z.serial, "type", mdns.TypeToString[q.Qtype], "answer", kind, "remote", remote, "messages", len(chunks))
	return mdns.RcodeSuccess
}

// logLimit lets through at most one log line per second, and counts the
// ones it holds back. A refused zone transfer is logged through one: any
// host that reaches the port can pipeline thousands of AXFR requests per
// second on one TCP connection, and a line for each would flood the log
// (regent_dns_transfers_total{result="refused"} still counts every one).
type logLimit struct {
	mu   sync.Mutex
	last time.Time
	held int
}

// allow reports whether a line may be written at now and, if so, how many
// were held back since the last one.
func (l *logLimit) allow(now time.Time) (held int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < time.Second {
		l.held++
		return 0, false
	}
	held, l.held, l.last = l.held, 0, now
	return held, true
}

// chunk splits the records of a transfer into messages of about xfrChunk
// bytes (uncompressed).
func chunk(rrs []mdns.RR) [][]mdns.RR {
	var chunks [][]mdns.RR
	var cur []mdns.RR
	size := 0
	for _, rr := range rrs {
		l := mdns.Len(rr)
		if size+l > xfrChunk && len(cur) > 0 {
			chunks = append(chunks, cur)
			cur, size = nil, 0
		}
		cur = append(cur, rr)
		size += l
	}
	return append(chunks, cur)
}
