package systest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// requireSystem skips the test with reason unless REGENT_SYSTEM_TESTS=1,
// where a missing prerequisite is a failure.
func requireSystem(t *testing.T, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	systemtest.Skip(t, "%s", reason)
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	requireSystem(t, err == nil, name+" is not installed (scripts/setup-deps.sh installs it)")
	return p
}

// zoneRecord is a record to create through the API and what dig +short
// must answer for it.
type zoneRecord struct {
	name, typ, content string
	prio               int
	dig                string // expected dig +short answer ("" = same as content)
}

func (c *cluster) createDomain(n *node, name string) uint64 {
	c.t.Helper()
	r := c.must(c.do(n, http.MethodPost, "/iaas/domain/", map[string]any{"name": name}), http.StatusCreated, "create domain "+name)
	id, err := createdID(r.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

func (c *cluster) createRecord(n *node, domain uint64, rec zoneRecord) uint64 {
	c.t.Helper()
	body := map[string]any{"domain_id": domain, "name": rec.name, "type": rec.typ, "content": rec.content, "ttl": 300}
	if rec.prio != 0 {
		body["priority"] = rec.prio
	}
	r := c.must(c.do(n, http.MethodPost, "/iaas/record/", body), http.StatusCreated, "create "+rec.typ+" record")
	id, err := createdID(r.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

func dnsPort(n *node) string {
	_, port, _ := strings.Cut(n.dnsAddr, ":")
	return port
}

func dnsHost(n *node) string {
	host, _, _ := strings.Cut(n.dnsAddr, ":")
	return host
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var spaces = regexp.MustCompile(`\s+`)

func normalise(s string) string {
	return strings.ToLower(strings.TrimSpace(spaces.ReplaceAllString(s, " ")))
}

// TestDNS_DigEveryRecordType creates one record of every type through the
// API and asks a running node for each with the real dig (and kdig).
func TestDNS_DigEveryRecordType(t *testing.T) {
	dig := requireTool(t, "dig")
	kdig := requireTool(t, "kdig")
	c := startCluster(t, 1)
	n := c.nodes[0]
	const z = "types.systest"
	dom := c.createDomain(n, z)
	fp := strings.Repeat("0f", 32)
	recs := []zoneRecord{
		{name: "www." + z, typ: "A", content: "192.0.2.1"},
		{name: "www." + z, typ: "AAAA", content: "2001:db8::1"},
		{name: "alias." + z, typ: "CNAME", content: "www." + z, dig: "www." + z + "."},
		{name: "@", typ: "MX", content: "mail." + z, prio: 10, dig: "10 mail." + z + "."},
		{name: "@", typ: "TXT", content: "v=spf1 -all", dig: `"v=spf1 -all"`},
		{name: "spf." + z, typ: "SPF", content: "v=spf1 mx -all", dig: `"v=spf1 mx -all"`},
		{name: "_sip._tcp." + z, typ: "SRV", content: "5 5060 sip." + z, prio: 10, dig: "10 5 5060 sip." + z + "."},
		{name: "host." + z, typ: "SSHFP", content: "4 2 " + fp, dig: "4 2 " + fp},
		{name: "geo." + z, typ: "LOC", content: "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m",
			dig: "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m"},
		{name: "sip." + z, typ: "NAPTR", content: `100 10 "U" "E2U+sip" "!^.*$!sip:info@example.com!" .`},
		{name: "sub." + z, typ: "NS", content: "ns1.example.net", dig: "ns1.example.net."},
	}
	for _, r := range recs {
		c.createRecord(n, dom, r)
	}
	// a PTR record: the global user may name any global unicast address
	c.must(c.do(n, http.MethodPost, "/iaas/ptr_record/", map[string]any{"ip_address": "198.51.100.7", "content": "www." + z}),
		http.StatusCreated, "create PTR")

	server := "@" + dnsHost(n)
	for _, r := range recs {
		name := r.name
		if name == "@" {
			name = z
		}
		want := r.dig
		if want == "" {
			want = r.content
		}
		args := []string{server, "-p", dnsPort(n), "+norec", "+short", name, r.typ}
		if r.typ == "NS" {
			// a delegation: the answer is a referral, NS in the authority section
			args = []string{server, "-p", dnsPort(n), "+norec", "+noall", "+authority", name, "NS"}
		}
		got := runTool(t, dig, args...)
		if r.typ == "NS" {
			if !strings.Contains(normalise(got), normalise(want)) {
				t.Errorf("dig %s NS: referral %q, want NS %s", name, got, want)
			}
			continue
		}
		if r.typ == "SSHFP" {
			got = strings.ReplaceAll(got, " ", "")
			want = strings.ReplaceAll(want, " ", "")
		}
		if normalise(got) != normalise(want) {
			t.Errorf("dig %s %s = %q, want %q", name, r.typ, strings.TrimSpace(got), want)
		}
	}
	if got := runTool(t, dig, server, "-p", dnsPort(n), "+short", "-x", "198.51.100.7"); normalise(got) != "www."+z+"." {
		t.Errorf("dig -x 198.51.100.7 = %q", got)
	}
	// the answers are authoritative, negative answers carry the SOA, EDNS
	// versions above 0 get BADVERS
	full := runTool(t, dig, server, "-p", dnsPort(n), "+norec", "www."+z, "A")
	if !strings.Contains(full, "flags: qr aa") {
		t.Errorf("no AA bit:\n%s", full)
	}
	nx := runTool(t, dig, server, "-p", dnsPort(n), "+norec", "nope."+z, "A")
	if !strings.Contains(nx, "status: NXDOMAIN") || !strings.Contains(nx, "IN\tSOA") {
		t.Errorf("NXDOMAIN without SOA:\n%s", nx)
	}
	bv := runTool(t, dig, server, "-p", dnsPort(n), "+edns=1", "+noednsneg", "www."+z, "A")
	if !strings.Contains(bv, "status: BADVERS") {
		t.Errorf("EDNS version 1 not answered BADVERS:\n%s", bv)
	}
	// kdig over TCP agrees
	if got := runTool(t, kdig, server, "-p", dnsPort(n), "+tcp", "+short", "www."+z, "AAAA"); normalise(got) != "2001:db8::1" {
		t.Errorf("kdig +tcp AAAA = %q", got)
	}
}

// TestDNS_ThreeNodesServeChanges: a create, an update and a delete made
// through one node are answered by all three. How long that takes is
// logged (typically well under a second), not asserted: a loaded machine
// may take longer.
func TestDNS_ThreeNodesServeChanges(t *testing.T) {
	c := startCluster(t, 3)
	n1 := c.nodes[0]
	const z = "cluster.systest"
	dom := c.createDomain(n1, z)
	ask := func(n *node) (string, int) {
		m := new(mdns.Msg)
		m.SetQuestion("www."+z+".", mdns.TypeA)
		cl := &mdns.Client{Timeout: 500 * time.Millisecond}
		r, _, err := cl.Exchange(m, n.dnsAddr)
		if err != nil {
			return "", -1
		}
		if len(r.Answer) == 0 {
			return "", r.Rcode
		}
		return r.Answer[0].(*mdns.A).A.String(), r.Rcode
	}
	waitAll := func(what, want string) {
		t.Helper()
		start := time.Now()
		for _, n := range c.nodes {
			for {
				got, _ := ask(n)
				if got == want {
					break
				}
				if time.Since(start) > 30*time.Second {
					t.Fatalf("%s: %s answers %q after %s, want %q", what, n.name, got, time.Since(start), want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		t.Logf("%s: all 3 nodes answer within %s", what, time.Since(start).Round(time.Millisecond))
	}
	// the write goes through a follower (forwarded to the leader)
	writer := c.followers(c.leader(30 * time.Second))[0]
	id := c.createRecord(writer, dom, zoneRecord{name: "www." + z, typ: "A", content: "192.0.2.1"})
	waitAll("create", "192.0.2.1")
	c.must(c.do(writer, http.MethodPatch, "/iaas/record/"+itoa(id)+"/", map[string]any{"content": "192.0.2.2"}), http.StatusOK, "update")
	waitAll("update", "192.0.2.2")
	c.must(c.do(writer, http.MethodDelete, "/iaas/record/"+itoa(id)+"/", nil), http.StatusNoContent, "delete")
	waitAll("delete", "")
	for _, n := range c.nodes {
		if _, rcode := ask(n); rcode != mdns.RcodeNameError {
			t.Errorf("%s: rcode %s after delete, want NXDOMAIN", n.name, mdns.RcodeToString[rcode])
		}
	}
}

// TestDNS_Zonemaster serves a test zone from two nodes of a cluster on
// 127.0.0.1:53 and 127.0.0.2:53 and runs zonemaster-cli's Nameserver,
// Consistency, Zone, Syntax and Delegation modules against it.
func TestDNS_Zonemaster(t *testing.T) {
	zm := requireTool(t, "zonemaster-cli")
	requireSystem(t, os.Geteuid() == 0, "zonemaster-cli needs the zone on port 53, which needs root")
	const z = "zm.test"
	c := startClusterWith(t, 3, func(i int) []string {
		args := []string{"-dns-nameservers", "ns1." + z + ",ns2." + z, "-dns-hostmaster", "hostmaster@example.net"}
		if i <= 2 {
			args = append(args, "-dns-addr", fmt.Sprintf("127.0.0.%d:53", i))
		}
		return args
	})
	n1 := c.nodes[0]
	dom := c.createDomain(n1, z)
	for _, r := range []zoneRecord{
		{name: "ns1." + z, typ: "A", content: "127.0.0.1"},
		{name: "ns2." + z, typ: "A", content: "127.0.0.2"},
		{name: "www." + z, typ: "A", content: "192.0.2.10"},
		{name: "mail." + z, typ: "A", content: "192.0.2.25"},
		{name: "@", typ: "MX", content: "mail." + z, prio: 10},
		{name: "@", typ: "TXT", content: "v=spf1 mx -all"},
	} {
		c.createRecord(n1, dom, r)
	}
	// both name servers must serve the same serial before the checks
	if err := waitFor(30*time.Second, func() error {
		var serials []uint32
		for _, addr := range []string{"127.0.0.1:53", "127.0.0.2:53"} {
			m := new(mdns.Msg)
			m.SetQuestion(z+".", mdns.TypeSOA)
			r, err := mdns.Exchange(m, addr)
			if err != nil || len(r.Answer) == 0 {
				return fmt.Errorf("%s: no SOA (%v)", addr, err)
			}
			serials = append(serials, r.Answer[0].(*mdns.SOA).Serial)
		}
		if serials[0] != serials[1] {
			return fmt.Errorf("serials differ: %v", serials)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, zm, "--no-ipv6", "--ns", "ns1."+z+"/127.0.0.1", "--ns", "ns2."+z+"/127.0.0.2",
		"--level", "NOTICE", "--test", "Nameserver", "--test", "Consistency", "--test", "Zone", "--test", "Syntax",
		"--test", "Delegation", z)
	out, err := cmd.CombinedOutput()
	t.Logf("zonemaster-cli:\n%s", out)
	if err != nil {
		t.Fatalf("zonemaster-cli: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[1] == "ERROR" || f[1] == "CRITICAL") {
			t.Errorf("zonemaster: %s", line)
		}
	}
	if !bytes.Contains(out, []byte("NOTICE")) && !bytes.Contains(out, []byte("INFO")) && !bytes.Contains(out, []byte("WARNING")) {
		// zonemaster prints at least a few notices for a loopback zone; an
		// empty report means it did not run its modules
		t.Logf("zonemaster printed no messages at NOTICE or above")
	}
}

// TestDNS_NSDSecondary: a real NSD, configured as a secondary of a node,
// serves the zone after the initial transfer and follows a change through
// NOTIFY and an incremental transfer (IXFR from the serial it holds).
func TestDNS_NSDSecondary(t *testing.T) {
	nsd := requireTool(t, "nsd")
	dig := requireTool(t, "dig")
	nsdAddr := freeAddr(t)
	nsdHost, nsdPort, _ := strings.Cut(nsdAddr, ":")
	const z = "secondary.systest"
	c := startClusterWith(t, 1, func(int) []string {
		return []string{"-dns-notify", nsdAddr, "-dns-allow-transfer", "127.0.0.1"}
	})
	n := c.nodes[0]
	dom := c.createDomain(n, z)
	id := c.createRecord(n, dom, zoneRecord{name: "www." + z, typ: "A", content: "192.0.2.1"})
	c.createRecord(n, dom, zoneRecord{name: "@", typ: "MX", content: "mail." + z, prio: 10})
	// Enough of a zone that a change is worth sending as differences.
	for i := range 20 {
		c.createRecord(n, dom, zoneRecord{name: fmt.Sprintf("host%d.%s", i, z), typ: "A", content: fmt.Sprintf("192.0.2.%d", 100+i)})
	}

	dir := t.TempDir()
	conf := fmt.Sprintf(`server:
  ip-address: %s@%s
  port: %s
  username: ""
  chroot: ""
  zonesdir: "%s"
  pidfile: "%s/nsd.pid"
  xfrdfile: "%s/xfrd.state"
  zonelistfile: "%s/zone.list"
  database: ""
  logfile: "%s/nsd.log"
  verbosity: 2
  server-count: 1
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: %s
  zonefile: "%s/%s.zone"
  request-xfr: %s@%s NOKEY
  allow-notify: 127.0.0.1 NOKEY
`, nsdHost, nsdPort, nsdPort, dir, dir, dir, dir, dir, z, dir, z, dnsHost(n), dnsPort(n))
	confPath := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nsd, "-d", "-c", confPath)
	var nsdOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &nsdOut, &nsdOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nsd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
			t.Logf("nsd output:\n%s\nnsd.log:\n%s", nsdOut.String(), log)
		}
	})
	askNSD := func(name, typ string) string {
		out, _ := exec.Command(dig, "@"+nsdHost, "-p", nsdPort, "+norec", "+short", "+time=1", "+tries=1", name, typ).CombinedOutput()
		return normalise(string(out))
	}
	if err := waitFor(30*time.Second, func() error {
		if got := askNSD("www."+z, "A"); got != "192.0.2.1" {
			return fmt.Errorf("NSD answers %q for www", got)
		}
		return nil
	}); err != nil {
		t.Fatalf("initial transfer: %v", err)
	}
	if got := askNSD(z, "MX"); got != "10 mail."+z+"." {
		t.Errorf("NSD MX = %q", got)
	}
	// a change reaches NSD through NOTIFY (its refresh timer is an hour)
	start := time.Now()
	c.must(c.do(n, http.MethodPatch, "/iaas/record/"+itoa(id)+"/", map[string]any{"content": "192.0.2.99"}), http.StatusOK, "update")
	c.createRecord(n, dom, zoneRecord{name: "new." + z, typ: "TXT", content: "hello"})
	if err := waitFor(30*time.Second, func() error {
		if got := askNSD("www."+z, "A"); got != "192.0.2.99" {
			return fmt.Errorf("NSD answers %q for www", got)
		}
		if got := askNSD("new."+z, "TXT"); got != `"hello"` {
			return fmt.Errorf("NSD answers %q for new TXT", got)
		}
		return nil
	}); err != nil {
		t.Fatalf("after NOTIFY: %v", err)
	}
	t.Logf("NSD served the change %s after the API call", time.Since(start).Round(time.Millisecond))
	// NSD asks IXFR from the serial it holds: the change came as differences.
	if log := n.tail(1 << 20); !strings.Contains(log, "answer=incremental") {
		t.Errorf("no incremental zone transfer in the node's log:\n%s", log)
	}
	// the serial NSD serves is ours
	ours := runTool(t, dig, "@"+dnsHost(n), "-p", dnsPort(n), "+short", z, "SOA")
	if theirs := askNSD(z, "SOA"); theirs != normalise(ours) {
		t.Errorf("NSD SOA %q, ours %q", theirs, ours)
	}
}
