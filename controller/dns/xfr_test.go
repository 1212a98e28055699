package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regentcloud/regent/pkg/systemtest"
)

const testKey = "xfr-key."
const testSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM0NQ=="

func axfr(t *testing.T, addr string, m *mdns.Msg, secrets map[string]string) ([]mdns.RR, error) {
	t.Helper()
	tr := &mdns.Transfer{TsigSecret: secrets}
	ch, err := tr.In(m, addr)
	if err != nil {
		return nil, err
	}
	var out []mdns.RR
	for env := range ch {
		if env.Error != nil {
			return out, env.Error
		}
		out = append(out, env.RR...)
	}
	return out, nil
}

func TestAXFR(t *testing.T) {
	z := testZone(t, 42)
	s := startServer(t, testConfig(), newFakeSource(z))
	m := new(mdns.Msg)
	m.SetAxfr("example.test.")
	got, err := axfr(t, s.Addr(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	// SOA, 3 apex NS, every record except the merged apex NS, SOA.
	if want := 1 + 3 + len(z.RRs) - 1 + 1; len(got) != want {
		t.Fatalf("AXFR gave %d records, want %d", len(got), want)
	}
	if got[0].Header().Rrtype != mdns.TypeSOA || got[len(got)-1].Header().Rrtype != mdns.TypeSOA || got[0].(*mdns.SOA).Serial != 42 {
		t.Fatalf("AXFR not framed by SOA: %v ... %v", got[0], got[len(got)-1])
	}

	// Not a zone of ours, and over UDP: REFUSED.
	m.SetAxfr("host1.example.test.")
	if r := exchange(t, s.Addr(), "tcp", m); r.Rcode != mdns.RcodeRefused {
		t.Errorf("AXFR of a non-apex: %s", mdns.RcodeToString[r.Rcode])
	}
	m.SetAxfr("example.test.")
	if r := exchange(t, s.Addr(), "udp", m); r.Rcode != mdns.RcodeRefused {
		t.Errorf("AXFR over UDP: %s", mdns.RcodeToString[r.Rcode])
	}
}

func TestAXFRRefused(t *testing.T) {
	cfg := testConfig()
	cfg.AllowTransfer = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	s := startServer(t, cfg, newFakeSource(testZone(t, 1)))
	m := new(mdns.Msg)
	m.SetAxfr("example.test.")
	if r := exchange(t, s.Addr(), "tcp", m); r.Rcode != mdns.RcodeRefused || len(r.Answer) != 0 {
		t.Fatalf("AXFR from a foreign network: %v", r)
	}
	cfg.AllowTransfer = nil
	cfg.Addr = "127.0.0.1:0"
	s2 := startServer(t, cfg, newFakeSource(testZone(t, 1)))
	if r := exchange(t, s2.Addr(), "tcp", m); r.Rcode != mdns.RcodeRefused {
		t.Fatalf("AXFR with an empty AllowTransfer: %v", r)
	}
}

func TestAXFRTSIG(t *testing.T) {
	cfg := testConfig()
	cfg.TSIGKeys = map[string]string{testKey: testSecret}
	s := startServer(t, cfg, newFakeSource(testZone(t, 5)))
	secrets := map[string]string{testKey: testSecret}

	m := new(mdns.Msg)
	m.SetAxfr("example.test.")
	if r := exchange(t, s.Addr(), "tcp", m); r.Rcode != mdns.RcodeRefused {
		t.Fatalf("unsigned AXFR with keys configured: %s", mdns.RcodeToString[r.Rcode])
	}

	m.SetTsig(testKey, mdns.HmacSHA256, 300, time.Now().Unix())
	got, err := axfr(t, s.Addr(), m, secrets) // In verifies every message's TSIG
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 10 || got[0].Header().Rrtype != mdns.TypeSOA {
		t.Fatalf("signed AXFR: %d records", len(got))
	}

	// Wrong secret: NOTAUTH.
	bad := new(mdns.Msg)
	bad.SetAxfr("example.test.")
	bad.SetTsig(testKey, mdns.HmacSHA256, 300, time.Now().Unix())
	c := &mdns.Client{Net: "tcp", TsigSecret: map[string]string{testKey: "d3Jvbmc="}}
	r, _, err := c.Exchange(bad, s.Addr())
	if err == nil && r.Rcode != mdns.RcodeNotAuth {
		t.Fatalf("badly signed AXFR: %v", r)
	}
	if r != nil && len(r.Answer) != 0 {
		t.Fatal("records sent for a badly signed AXFR")
	}

	// Signed ordinary query over UDP and TCP: answered and signed.
	for _, network := range []string{"udp", "tcp"} {
		q := new(mdns.Msg)
		q.SetQuestion("host1.example.test.", mdns.TypeA)
		q.SetTsig(testKey, mdns.HmacSHA256, 300, time.Now().Unix())
		c := &mdns.Client{Net: network, TsigSecret: secrets}
		r, _, err := c.Exchange(q, s.Addr())
		if err != nil {
			t.Fatalf("%s signed query: %v", network, err)
		}
		if r.IsTsig() == nil || len(r.Answer) != 1 {
			t.Fatalf("%s signed query: unsigned or empty answer %v", network, r)
		}
	}
}

func TestIXFR(t *testing.T) {
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 50)))
	ixfr := func(serial uint32) *mdns.Msg {
		m := new(mdns.Msg)
		m.SetIxfr("example.test.", serial, "ns1.example.test.", "hostmaster.example.net.")
		return m
	}
	// Up to date (equal or newer): one SOA.
	for _, serial := range []uint32{50, 51} {
		got, err := axfr(t, s.Addr(), ixfr(serial), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].(*mdns.SOA).Serial != 50 {
			t.Fatalf("IXFR from %d: %v", serial, got)
		}
	}
	// Older: a full AXFR-style answer.
	got, err := axfr(t, s.Addr(), ixfr(10), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 10 || got[0].Header().Rrtype != mdns.TypeSOA || got[len(got)-1].Header().Rrtype != mdns.TypeSOA {
		t.Fatalf("IXFR fallback: %d records", len(got))
	}
	// Over UDP: the SOA only.
	r := exchange(t, s.Addr(), "udp", ixfr(10))
	if r.Rcode != 0 || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != mdns.TypeSOA {
		t.Fatalf("IXFR over UDP: %v", r)
	}
}

func TestZoneUpdate(t *testing.T) {
	src := newFakeSource(testZone(t, 1))
	s := startServer(t, testConfig(), src)
	if r := ask(t, s.Addr(), "udp", "new.example.test.", mdns.TypeAAAA); len(r.Answer) != 0 {
		t.Fatalf("unexpected answer %v", r)
	}
	z := testZone(t, 2)
	z.RRs = append(z.RRs, rrs(t, "new.example.test. 60 IN AAAA 2001:db8::99")...)
	src.put(z)
	src.put(deepZone(t))
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ask(t, s.Addr(), "udp", "new.example.test.", mdns.TypeAAAA)
		soa := ask(t, s.Addr(), "udp", "example.test.", mdns.TypeSOA)
		deep := ask(t, s.Addr(), "udp", "x.deep.example.test.", mdns.TypeA)
		if len(r.Answer) == 1 && soa.Answer[0].(*mdns.SOA).Serial == 2 && len(deep.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("update not picked up: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Zone removed.
	src.mu.Lock()
	delete(src.zones, "deep.example.test.")
	src.mu.Unlock()
	src.put(testZone(t, 3))
	for {
		r := ask(t, s.Addr(), "udp", "x.deep.example.test.", mdns.TypeA)
		if len(r.Answer) == 0 && r.Ns[0].(*mdns.SOA).Serial == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zone removal not picked up: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNotifyOut(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan *mdns.Msg, 16)
	srv := &mdns.Server{PacketConn: pc, TsigSecret: map[string]string{testKey: testSecret},
		Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
			if w.TsigStatus() != nil {
				return // drop: the sender must retry
			}
			got <- r
			m := new(mdns.Msg)
			m.SetReply(r)
			m.Authoritative = true
			if tsig := r.IsTsig(); tsig != nil {
				m.SetTsig(tsig.Hdr.Name, tsig.Algorithm, 300, time.Now().Unix())
			}
			_ = w.WriteMsg(m)
		})}
	go func() { _ = srv.ActivateAndServe() }()
	defer func() { _ = srv.Shutdown() }()

	cfg := testConfig()
	cfg.Notify = []string{pc.LocalAddr().String()}
	cfg.TSIGKeys = map[string]string{testKey: testSecret}
	cfg.notifyBackoff = 20 * time.Millisecond
	src := newFakeSource(testZone(t, 1))
	startServer(t, cfg, src)
	wait := func(serial uint32) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case m := <-got:
				if m.Opcode != mdns.OpcodeNotify || m.Question[0].Name != "example.test." || m.IsTsig() == nil {
					t.Fatalf("bad NOTIFY %v", m)
				}
				if soa, ok := m.Answer[0].(*mdns.SOA); ok && soa.Serial == serial {
					return
				}
			case <-timeout:
				t.Fatalf("no NOTIFY for serial %d", serial)
			}
		}
	}
	wait(1) // first load
	src.put(testZone(t, 9))
	wait(9)
}

func TestShutdownWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(testConfig(), newFakeSource(testZone(t, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Fatal("second Start succeeded")
	}
	addr := s.Addr()
	cancel()
	sctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer c2()
	if err := s.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	// The port is free again.
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("port still bound: %v", err)
	}
	pc.Close()
}

func TestBindError(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cfg := testConfig()
	cfg.Addr = pc.LocalAddr().String()
	cfg.UDPSockets = 1
	s, err := New(cfg, newFakeSource())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		_ = s.Shutdown(context.Background())
		t.Fatal("Start on a busy port succeeded")
	}
}

// TestIXFRIncremental changes a zone twice and asks IXFR from each version:
// the answer holds only the differences (RFC 1995 §4), and applying them to
// the old version gives exactly what an AXFR of the new one holds. A serial
// the journal does not reach gets the whole zone.
func TestIXFRIncremental(t *testing.T) {
	src := newFakeSource(testZone(t, 10))
	s := startServer(t, testConfig(), src)
	ixfr := func(serial uint32) []mdns.RR {
		t.Helper()
		m := new(mdns.Msg)
		m.SetIxfr("example.test.", serial, "ns1.example.test.", "hostmaster.example.net.")
		got, err := axfr(t, s.Addr(), m, nil)
		if err != nil {
			t.Fatalf("IXFR from %d: %v", serial, err)
		}
		return got
	}
	full := func() []mdns.RR {
		t.Helper()
		m := new(mdns.Msg)
		m.SetAxfr("example.test.")
		got, err := axfr(t, s.Addr(), m, nil)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	waitSerial := func(serial uint32) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for ask(t, s.Addr(), "udp", "example.test.", mdns.TypeSOA).Answer[0].(*mdns.SOA).Serial != serial {
			if time.Now().After(deadline) {
				t.Fatalf("serial %d not served", serial)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	v10 := full()

	// 11: one record added, one removed; 12: a TTL changed, one more added.
	z := testZone(t, 11)
	z.RRs = append(z.RRs, rrs(t, "new.example.test. 60 IN AAAA 2001:db8::99")...)
	z.RRs = slices.DeleteFunc(z.RRs, func(rr mdns.RR) bool { return rr.Header().Name == "mail.example.test." })
	src.put(z)
	waitSerial(11)
	z = testZone(t, 12)
	z.RRs = append(z.RRs, rrs(t, "new.example.test. 120 IN AAAA 2001:db8::99", "two.example.test. 60 IN TXT \"2\"")...)
	z.RRs = slices.DeleteFunc(z.RRs, func(rr mdns.RR) bool { return rr.Header().Name == "mail.example.test." })
	src.put(z)
	waitSerial(12)
	v12 := full()

	got := ixfr(10)
	want := []string{"SOA 12", "SOA 10", "-mail A", "SOA 11", "+new AAAA 60", "SOA 11", "-new AAAA 60", "SOA 12", "+new AAAA 120", "+two TXT 60", "SOA 12"}
	if s := summary(got); !slices.Equal(s, want) {
		t.Errorf("IXFR from 10:\n got %q\nwant %q", s, want)
	}
	if a, b := sortedStrings(applyIXFR(t, v10, got)), sortedStrings(v12[1:len(v12)-1]); !slices.Equal(a, b) {
		t.Errorf("version 10 + IXFR differs from version 12:\n%s\n---\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	if s := summary(ixfr(11)); !slices.Equal(s, append([]string{"SOA 12"}, want[5:]...)) {
		t.Errorf("IXFR from 11: %q", s)
	}
	// Not in the journal: the whole zone.
	if got := ixfr(9); len(got) != len(v12) {
		t.Errorf("IXFR from 9: %d records, want the %d of a full transfer", len(got), len(v12))
	}
}

// summary writes an IXFR answer compactly: "SOA n" for each SOA, and for
// the records between, "-" (deleted) or "+" (added), the first label of the
// owner, the type, and the TTL when it is not 300.
func summary(rrs []mdns.RR) []string {
	var out []string
	soas, adding := 0, false
	for _, rr := range rrs {
		if soa, ok := rr.(*mdns.SOA); ok {
			out = append(out, fmt.Sprintf("SOA %d", soa.Serial))
			soas++
			adding = soas%2 == 1 && soas > 1
			continue
		}
		sign := "-"
		if adding {
			sign = "+"
		}
		h := rr.Header()
		s := sign + strings.SplitN(h.Name, ".", 2)[0] + " " + mdns.TypeToString[h.Rrtype]
		if h.Ttl != 300 {
			s += fmt.Sprint(" ", h.Ttl)
		}
		out = append(out, s)
	}
	return out
}

// applyIXFR applies the differences of an IXFR answer to the records of an
// AXFR (without its SOAs) and returns the result.
func applyIXFR(t *testing.T, axfr, ixfr []mdns.RR) []mdns.RR {
	t.Helper()
	have := map[string]mdns.RR{}
	for _, rr := range axfr {
		if rr.Header().Rrtype != mdns.TypeSOA {
			have[rr.String()] = rr
		}
	}
	soas := 0
	for _, rr := range ixfr[1 : len(ixfr)-1] {
		if rr.Header().Rrtype == mdns.TypeSOA {
			soas++
			continue
		}
		if soas%2 == 1 {
			if _, ok := have[rr.String()]; !ok {
				t.Errorf("IXFR deletes %s, which the old version does not hold", rr)
			}
			delete(have, rr.String())
		} else {
			have[rr.String()] = rr
		}
	}
	out := make([]mdns.RR, 0, len(have))
	for _, rr := range have {
		out = append(out, rr)
	}
	return out
}

func sortedStrings(rrs []mdns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	slices.Sort(out)
	return out
}

// TestJournalBounds: the journal keeps at most journalDeltas versions and
// about max(journalMinRecords, zone size) records, newest first; a serial
// that goes back (a restored snapshot) starts it afresh.
func TestJournalBounds(t *testing.T) {
	st, err := testConfig().validate()
	if err != nil {
		t.Fatal(err)
	}
	log := hclog.NewNullLogger()
	var prev *zone
	for serial := uint32(1); serial <= journalDeltas+10; serial++ {
		z := testZone(t, serial)
		z.RRs = append(z.RRs, rrs(t, fmt.Sprintf("v.example.test. 60 IN TXT \"%d\"", serial))...)
		next := buildZone(z, st, log)
		next.journal = nextJournal(prev, next)
		prev = next
	}
	if len(prev.journal) != journalDeltas {
		t.Fatalf("journal of %d deltas, want %d", len(prev.journal), journalDeltas)
	}
	if first, last := prev.journal[0], prev.journal[len(prev.journal)-1]; last.to.Serial != prev.serial || first.from.Serial != prev.serial-journalDeltas {
		t.Fatalf("journal from %d to %d, serial %d", first.from.Serial, last.to.Serial, prev.serial)
	}
	for i := 1; i < len(prev.journal); i++ {
		if prev.journal[i].from.Serial != prev.journal[i-1].to.Serial {
			t.Fatalf("journal not contiguous at %d", i)
		}
	}
	// A big change fills most of the record budget: older deltas go.
	big := testZone(t, prev.serial+1)
	for i := range journalMinRecords {
		big.RRs = append(big.RRs, rrs(t, fmt.Sprintf("h%d.example.test. 60 IN A 10.%d.%d.%d", i, i>>16&255, i>>8&255, i&255))...)
	}
	bz := buildZone(big, st, log)
	bz.journal = nextJournal(prev, bz)
	total := 0
	for _, d := range bz.journal {
		total += d.records()
	}
	if limit := max(journalMinRecords, len(bz.xfr)); total > limit || len(bz.journal) >= journalDeltas || bz.journal[len(bz.journal)-1].records() < journalMinRecords {
		t.Errorf("after a change of %d records: %d deltas of %d records in all (limit %d)", journalMinRecords, len(bz.journal), total, limit)
	}
	// Back to an older serial: no journal.
	back := buildZone(testZone(t, 5), st, log)
	if j := nextJournal(bz, back); j != nil {
		t.Errorf("journal across a serial that went back: %d deltas", len(j))
	}
}

// TestTransferEDNS: a zone transfer asked with an OPT record gets one in
// every message (RFC 6891 §7), the refusals too, and a signed transfer
// still verifies with the OPT in it (the TSIG stays last).
func TestTransferEDNS(t *testing.T) {
	z := testZone(t, 9)
	for i := range 400 { // several messages
		z.RRs = append(z.RRs, rrs(t, fmt.Sprintf(`t%d.example.test. 300 IN TXT "%s"`, i, strings.Repeat("y", 60)))...)
	}
	cfg := testConfig()
	s := startServer(t, cfg, newFakeSource(z))
	conn, err := mdns.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m := new(mdns.Msg)
	m.SetAxfr("example.test.")
	m.SetEdns0(1232, true)
	if err := conn.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	messages, soas := 0, 0
	for soas < 2 {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		r, err := conn.ReadMsg()
		if err != nil {
			t.Fatalf("after %d messages: %v", messages, err)
		}
		messages++
		if opt := r.IsEdns0(); opt == nil || opt.Version() != 0 || !opt.Do() {
			t.Fatalf("message %d of the AXFR without an OPT (DO echoed): %v", messages, r.Extra)
		}
		for _, rr := range r.Answer {
			if rr.Header().Rrtype == mdns.TypeSOA {
				soas++
			}
		}
	}
	if messages < 2 {
		t.Errorf("the transfer took %d message; the test wants several", messages)
	}
	// A refusal (not a zone of ours) carries an OPT too.
	m = new(mdns.Msg)
	m.SetAxfr("nothere.test.")
	m.SetEdns0(1232, false)
	if r := exchange(t, s.Addr(), "tcp", m); r.Rcode != mdns.RcodeRefused || r.IsEdns0() == nil {
		t.Errorf("refused AXFR with EDNS: %v", r)
	}
	// Two OPT records: FORMERR, not a transfer.
	m = new(mdns.Msg)
	m.SetAxfr("example.test.")
	m.SetEdns0(1232, false)
	m.SetEdns0(1232, false)
	if r := exchange(t, s.Addr(), "tcp", m); r.Rcode != mdns.RcodeFormatError || len(r.Answer) != 0 {
		t.Errorf("AXFR with two OPTs: %v", r)
	}

	// Signed, with an OPT.
	cfg.TSIGKeys = map[string]string{testKey: testSecret}
	cfg.Addr = "127.0.0.1:0"
	s2 := startServer(t, cfg, newFakeSource(z))
	m = new(mdns.Msg)
	m.SetAxfr("example.test.")
	m.SetEdns0(1232, false)
	m.SetTsig(testKey, mdns.HmacSHA256, 300, time.Now().Unix())
	got, err := axfr(t, s2.Addr(), m, map[string]string{testKey: testSecret})
	if err != nil || len(got) < 400 {
		t.Fatalf("signed AXFR with EDNS: %d records, %v", len(got), err)
	}
}

// TestTransferRcodeMetric: a refused zone transfer over TCP is counted in
// regent_dns_queries_total with the REFUSED it was answered, not as
// NOERROR, and an allowed one as NOERROR.
func TestTransferRcodeMetric(t *testing.T) {
	cfg := testConfig()
	cfg.AllowTransfer = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	cfg.Registerer = prometheus.NewRegistry()
	s := startServer(t, cfg, newFakeSource(testZone(t, 1)))
	m := new(mdns.Msg)
	m.SetAxfr("example.test.")
	if r := exchange(t, s.Addr(), "tcp", m); r.Rcode != mdns.RcodeRefused {
		t.Fatalf("AXFR from a foreign network: %v", r)
	}
	m.SetAxfr("example.org.")
	if r := exchange(t, s.Addr(), "tcp", m); r.Rcode != mdns.RcodeRefused {
		t.Fatalf("AXFR of a zone not ours: %v", r)
	}
	refused := s.metrics.queries.WithLabelValues("AXFR", "REFUSED")
	deadline := time.Now().Add(10 * time.Second)
	for value(t, refused) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := value(t, refused); got != 2 {
		t.Errorf("queries_total{AXFR,REFUSED} = %v, want 2", got)
	}
	if got := value(t, s.metrics.queries.WithLabelValues("AXFR", "NOERROR")); got != 0 {
		t.Errorf("queries_total{AXFR,NOERROR} = %v, want 0", got)
	}
}

// TestRefusedTransferLogBounded: a host that may not transfer pipelines
// 300 AXFR requests on one TCP connection. Each is refused and counted, but
// the log gets at most one "zone transfer refused" line per second (it got
// 300, about 32,000 a second from one connection), and the next line says
// how many were left out.
func TestRefusedTransferLogBounded(t *testing.T) {
	var out systemtest.Buffer
	cfg := testConfig()
	cfg.AllowTransfer = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	cfg.Registerer = prometheus.NewRegistry()
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Info})
	s := startServer(t, cfg, newFakeSource(testZone(t, 1)))
	c, err := mdns.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	const n = 300
	for i := range n {
		m := new(mdns.Msg)
		m.SetAxfr("example.test.")
		m.Id = uint16(i + 1)
		if err := c.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		r, err := c.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != mdns.RcodeRefused {
			t.Fatalf("AXFR from a foreign network: %v", r)
		}
	}
	refused := s.metrics.transfers.WithLabelValues(resultRefused)
	deadline := time.Now().Add(10 * time.Second)
	for value(t, refused) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := value(t, refused); got != n {
		t.Errorf("transfers_total{refused} = %v, want %d", got, n)
	}
	if got := strings.Count(out.String(), "zone transfer refused"); got < 1 || got > 2 {
		t.Fatalf("%d log lines for %d refused transfers, want 1 or 2:\n%.2000s", got, n, out.String())
	}
	time.Sleep(1100 * time.Millisecond)
	m := new(mdns.Msg)
	m.SetAxfr("example.test.")
	if err := c.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	// Every refusal is either a line or counted in the next line's
	// also_refused.
	lines, total := 0, 0
	for _, l := range strings.Split(out.String(), "\n") {
		if !strings.Contains(l, "zone transfer refused") {
			continue
		}
		lines++
		var k int
		if _, err := fmt.Sscanf(l[strings.Index(l, "also_refused="):], "also_refused=%d", &k); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		total += k
	}
	if lines > 3 || lines+total != n+1 {
		t.Errorf("%d lines saying %d more were refused, want at most 3 and %d in all:\n%s", lines, total, n+1, out.String())
	}
}
