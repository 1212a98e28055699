package dns

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// requireTool skips when a binary is missing, unless REGENT_SYSTEM_TESTS=1
// demands the system tests run.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		systemtest.Skip(t, "%s not installed (scripts/setup-deps.sh installs bind9-dnsutils and knot-dnsutils)", name)
	}
	return p
}

func runTool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
	}
	return string(out)
}

func TestDig(t *testing.T) {
	dig := requireTool(t, "dig")
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 77)))
	host, port, _ := net.SplitHostPort(s.Addr())
	base := []string{"@" + host, "-p", port, "+time=2", "+tries=1"}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"+edns=1", "+noednsneg", "host1.example.test", "A"}, []string{"status: BADVERS", "EDNS: version: 0"}},
		{[]string{"www.example.test", "A"}, []string{"status: NOERROR", "flags: qr aa rd;", "host1.example.test.", "192.0.2.10"}},
		{[]string{"+tcp", "nope.host1.example.test", "A"}, []string{"status: NXDOMAIN", "flags: qr aa", "SOA"}},
		{[]string{"example.org", "A"}, []string{"status: REFUSED"}},
		{[]string{"+noedns", "+ignore", "big.example.test", "TXT"}, []string{"flags: qr aa tc", "MSG SIZE  rcvd: 4"}},
		{[]string{"+opcode=notify", "example.test", "SOA"}, []string{"status: REFUSED"}},
		{[]string{"ExAmPlE.tEsT", "MX"}, []string{";ExAmPlE.tEsT.", "mail.example.test."}},
		{[]string{"AXFR", "example.test"}, []string{"XFR size: 44 records", "hostmaster.example.net. 77"}},
		// The audit's query: a reply (qr), authoritative NODATA from the
		// parent, no ad.
		{[]string{"+norec", "+cookie", "sub.example.test", "DS"}, []string{"status: NOERROR", "flags: qr aa;", "AUTHORITY: 1"}},
		// RA=0 on every reply, also when the query sets it (+raflag).
		{[]string{"+raflag", "+opcode=update", "example.test"}, []string{"status: NOTIMP", "flags: qr rd;"}},
		{[]string{"+raflag", "+tcp", "+opcode=status", "example.test"}, []string{"status: NOTIMP", "flags: qr rd;"}},
		// RFC 6891 §7: an OPT in the request gets one in the reply, also
		// with NOTIMP (dig said "EDNS query returned status NOTIMP -
		// retry with '+noedns'": it took the server for one without
		// EDNS).
		{[]string{"+opcode=update", "example.test"}, []string{"status: NOTIMP", "EDNS: version: 0, flags:; udp: 1232"}},
		{[]string{"+tcp", "+opcode=update", "example.test"}, []string{"status: NOTIMP", "EDNS: version: 0, flags:; udp: 1232"}},
		{[]string{"+opcode=3", "example.test"}, []string{"status: NOTIMP", "opcode: RESERVED3", "EDNS: version: 0"}},
		// No question (a liveness probe): FORMERR, with the OPT too.
		{[]string{"+header-only", "example.test"}, []string{"status: FORMERR", "QUERY: 0, ANSWER: 0", "EDNS: version: 0, flags:; udp: 1232"}},
		{[]string{"+tcp", "+header-only", "example.test"}, []string{"status: FORMERR", "QUERY: 0, ANSWER: 0", "EDNS: version: 0, flags:; udp: 1232"}},
		{[]string{"+raflag", "example.test", "A"}, []string{"status: NOERROR", "flags: qr aa rd;"}},
		// Meta types in the question.
		{[]string{"+raflag", "example.test", "MAILA"}, []string{"status: NOTIMP", "flags: qr rd;"}},
		{[]string{"+tcp", "example.test", "MAILB"}, []string{"status: NOTIMP"}},
		{[]string{"example.test", "TYPE41"}, []string{"status: FORMERR", "flags: qr rd;"}},
		{[]string{"+tcp", "example.test", "TKEY"}, []string{"status: FORMERR"}},
		{[]string{"example.test", "TYPE250"}, []string{"status: FORMERR"}},
	}
	for _, tc := range cases {
		out := runTool(t, dig, append(base, tc.args...)...)
		if strings.Contains(out, "WARNING: EDNS query returned") {
			t.Errorf("dig %v: the reply lacks the OPT of the request:\n%s", tc.args, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("dig %v: missing %q in\n%s", tc.args, w, out)
			}
		}
	}
}

func TestKdigTransfers(t *testing.T) {
	kdig := requireTool(t, "kdig")
	src := newFakeSource(testZone(t, 77))
	s := startServer(t, testConfig(), src)
	host, port, _ := net.SplitHostPort(s.Addr())
	out := runTool(t, kdig, "@"+host, "-p", port, "+tcp", "example.test", "AXFR")
	if !strings.Contains(out, "example.test.") || !strings.Contains(out, "SOA") || strings.Contains(out, "failed") {
		t.Fatalf("kdig AXFR:\n%s", out)
	}
	if strings.Count(out, "\tSOA\t") != 2 {
		t.Errorf("AXFR should hold the SOA twice:\n%s", out)
	}
	out = runTool(t, kdig, "@"+host, "-p", port, "+tcp", "example.test", "IXFR=77")
	if strings.Count(out, "\tSOA\t") != 1 || strings.Contains(out, "isn't SOA") {
		t.Errorf("kdig IXFR up to date:\n%s", out)
	}
	out = runTool(t, kdig, "@"+host, "-p", port, "+tcp", "example.test", "IXFR=1")
	if strings.Contains(out, "isn't SOA") || strings.Contains(out, "failed") || !strings.Contains(out, "192.0.2.10") {
		t.Errorf("kdig IXFR fallback:\n%s", out)
	}
	// A change: IXFR from the old version carries just that.
	z := testZone(t, 78)
	z.RRs = append(z.RRs, rrs(t, "added.example.test. 60 IN A 192.0.2.78")...)
	src.put(z)
	for deadline := time.Now().Add(30 * time.Second); ask(t, s.Addr(), "udp", "example.test.", mdns.TypeSOA).Answer[0].(*mdns.SOA).Serial != 78; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("serial 78 not served")
		}
	}
	out = runTool(t, kdig, "@"+host, "-p", port, "+tcp", "example.test", "IXFR=77")
	if strings.Count(out, "\tSOA\t") != 4 || !strings.Contains(out, "192.0.2.78") || strings.Contains(out, "192.0.2.10") ||
		strings.Contains(out, "isn't SOA") || strings.Contains(out, "failed") {
		t.Errorf("kdig IXFR incremental (want 4 SOAs and only the added record):\n%s", out)
	}
}
