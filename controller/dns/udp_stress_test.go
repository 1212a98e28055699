package dns

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestUDPRepliesUnderLoad: many concurrent UDP clients, a mix of query
// types (DS at a delegation included), EDNS with and without a client
// cookie, 0x20 spellings and malformed or rejected queries (which take the
// header-only reply path), all at once. Every reply must be a reply (QR=1)
// to its own query: same ID, same question spelled the same way, the
// answer the query gets when asked alone, and never the client's cookie
// echoed back (Regent does not implement cookies, so a cookie in a reply
// can only be the query itself coming back). It guards the batch path
// (shared buffers, indices after a partial sendmmsg, the fast and slow
// paths side by side).
func TestUDPRepliesUnderLoad(t *testing.T) {
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 1)))
	type query struct {
		name  string
		qtype uint16
		kind  int // 0 plain, 1 EDNS, 2 EDNS + cookie, 3 two OPT records (FORMERR), 4 opcode STATUS (NOTIMP)
	}
	var qs []query
	names := []string{"sub.example.test.", "SuB.ExAmPlE.TeSt.", "host1.example.test.", "www.example.test.",
		"nx.example.test.", "example.test.", "x.wild.example.test.", "big.example.test.", "host.sub.example.test.", "example.org."}
	types := []uint16{mdns.TypeDS, mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX, mdns.TypeTXT, mdns.TypeNS, mdns.TypeSOA}
	for _, n := range names {
		for _, qt := range types {
			for kind := range 5 {
				qs = append(qs, query{n, qt, kind})
			}
		}
	}
	build := func(q query, id uint16, cookie string) *mdns.Msg {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.Id = id
		m.RecursionDesired = false
		m.AuthenticatedData = true // as dig sends
		switch q.kind {
		case 1, 3:
			m.SetEdns0(1232, id%2 == 0)
		case 2:
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: cookie})
		case 4:
			m.Opcode = mdns.OpcodeStatus
		}
		if q.kind == 3 {
			o := new(mdns.OPT)
			o.Hdr = mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}
			o.SetUDPSize(1232)
			m.Extra = append(m.Extra, o)
		}
		return m
	}
	// What each query gets when asked alone.
	type result struct {
		rcode, an, ns, ar int
		aa, tc            bool
	}
	summary := func(r *mdns.Msg) result {
		return result{r.Rcode, len(r.Answer), len(r.Ns), len(r.Extra), r.Authoritative, r.Truncated}
	}
	want := make([]result, len(qs))
	for i, q := range qs {
		want[i] = summary(exchange(t, s.Addr(), "udp", build(q, uint16(i), "0102030405060708")))
	}

	const clients, perClient = 48, 160
	deadline := time.Now().Add(60 * time.Second) // all replies; a loaded machine under -race is slow
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, a...))
		}
	}
	for c := range clients {
		wg.Go(func() {
			conn, err := net.Dial("udp", s.Addr())
			if err != nil {
				fail("dial: %v", err)
				return
			}
			defer conn.Close()
			buf := make([]byte, 65536)
			// Pipeline 4 queries at a time, so that batches fill up.
			for j := 0; j < perClient; j += 4 {
				sent := map[uint16]int{}
				cookies := map[uint16]string{}
				for k := range 4 {
					i := (c*perClient + j + k) * 7919 % len(qs)
					id := uint16(c<<10 | (j+k)&0x3ff)
					cookie := fmt.Sprintf("%016x", uint64(c)<<32|uint64(j+k))
					b, err := build(qs[i], id, cookie).Pack()
					if err != nil {
						fail("pack: %v", err)
						return
					}
					sent[id], cookies[id] = i, cookie
					if _, err := conn.Write(b); err != nil {
						fail("write: %v", err)
						return
					}
				}
				for len(sent) > 0 {
					_ = conn.SetReadDeadline(deadline)
					n, err := conn.Read(buf)
					if err != nil {
						fail("client %d: read: %v (%d replies missing)", c, err, len(sent))
						return
					}
					r := new(mdns.Msg)
					if err := r.Unpack(buf[:n]); err != nil {
						if n >= 12 && buf[2]&0x80 == 0 {
							fail("client %d: got a query back (QR=0), %d bytes", c, n)
							return
						}
						// A header-only reply to a query we sent is
						// still checked below through its ID.
						r = new(mdns.Msg)
						if err := r.Unpack(buf[:12]); err != nil {
							fail("client %d: unpack: %v", c, err)
							return
						}
					}
					i, ok := sent[r.Id]
					if !ok {
						fail("client %d: reply with unknown ID %d", c, r.Id)
						return
					}
					delete(sent, r.Id)
					q := qs[i]
					if !r.Response {
						fail("client %d: QR=0 reply to %s %s kind %d: %v", c, q.name, mdns.TypeToString[q.qtype], q.kind, r)
						continue
					}
					if q.kind < 3 && (len(r.Question) != 1 || r.Question[0].Name != q.name || r.Question[0].Qtype != q.qtype) {
						fail("client %d: question %v, want %s %s", c, r.Question, q.name, mdns.TypeToString[q.qtype])
					}
					if opt := r.IsEdns0(); opt != nil {
						for _, o := range opt.Option {
							if ck, ok := o.(*mdns.EDNS0_COOKIE); ok && ck.Cookie == cookies[r.Id] {
								fail("client %d: our cookie echoed in %v", c, r)
							}
						}
					}
					if got := summary(r); got != want[i] {
						fail("client %d: %s %s kind %d: got %+v, alone %+v", c, q.name, mdns.TypeToString[q.qtype], q.kind, got, want[i])
					}
				}
			}
		})
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
}
