package dns

import (
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func fuzzSeeds(t testing.TB) [][]byte {
	pack := func(m *mdns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	q := func(name string, qtype uint16) *mdns.Msg {
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		return m
	}
	var out [][]byte
	out = append(out, pack(q("www.example.test.", mdns.TypeA)))
	out = append(out, pack(q("WwW.ExAmPlE.tEsT.", mdns.TypeMX)))
	m := q("foo.wild.example.test.", mdns.TypeA)
	m.SetEdns0(4096, true)
	out = append(out, pack(m))
	m = q("host1.example.test.", mdns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	out = append(out, pack(m))
	m = q("host1.example.test.", mdns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
	out = append(out, pack(m))
	m = q("host1.example.test.", mdns.TypeA)
	m.SetTsig(testKey, mdns.HmacSHA256, 300, time.Now().Unix())
	b, _, err := mdns.TsigGenerate(m, testSecret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, b)
	out = append(out, pack(new(mdns.Msg).SetNotify("example.test.")))
	out = append(out, pack(new(mdns.Msg).SetUpdate("example.test.")))
	out = append(out, pack(new(mdns.Msg).SetAxfr("example.test.")))
	out = append(out, pack(new(mdns.Msg).SetIxfr("example.test.", 1, "a.", "b.")))
	out = append(out, pack(q("big.example.test.", mdns.TypeTXT)))
	out = append(out, pack(q("loop1.example.test.", mdns.TypeA)))
	out = append(out, pack(q("host.sub.example.test.", mdns.TypeANY)))
	// Compression pointer in the question, qdcount 0, a bare header, junk.
	out = append(out, []byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	out = append(out, []byte{0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	out = append(out, []byte{0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 2, 0, 0, 0, 0, 0, 0})
	out = append(out, []byte{0xff, 0xff, 0xff})
	return out
}

// FuzzServeDNS feeds arbitrary datagrams to the UDP handler, with the
// packet cache (fast path) and without it (miekg path), and checks that
// nothing panics and every response parses and carries the request ID.
func FuzzServeDNS(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	cfg := testConfig()
	cfg.TSIGKeys = map[string]string{testKey: testSecret}
	s, err := New(cfg, newFakeSource(testZone(f, 3), deepZone(f)))
	if err != nil {
		f.Fatal(err)
	}
	s.reload()
	fast := s.snap.Load()
	full := &zoneSet{zones: fast.zones}
	remote := netip.MustParseAddrPort("127.0.0.1:5353")
	out := make([]byte, 65536)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, zs := range []*zoneSet{fast, fast, full} {
			resp := s.handleUDP(zs, data, out, remote)
			if resp == nil {
				continue
			}
			m := new(mdns.Msg)
			if err := m.Unpack(resp); err != nil {
				t.Fatalf("response does not parse: %v\nrequest %x\nresponse %x", err, data, resp)
			}
			if !m.Response || m.Id != uint16(data[0])<<8|uint16(data[1]) {
				t.Fatalf("response without QR or with a different ID: %v", m)
			}
			if len(resp) > 65535 {
				t.Fatalf("response too large: %d", len(resp))
			}
		}
	})
}
