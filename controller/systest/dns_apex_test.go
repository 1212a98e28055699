package systest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestDNS_ApexSettingsAreTheClusters: the zone apex (NS set, SOA MNAME and
// mailbox) comes from the replicated state, not from each node's flags, so
// that every node serves the same zone at the same serial, and a change of
// -dns-nameservers raises the serial so that secondaries pick it up.
//
// Three nodes start with -dns-nameservers ns1.old.systest. The followers
// are restarted with ns1.new.systest: every node still serves the old set
// at the old serial (the followers log that their setting differs). Then
// the leader restarts with the new setting too: a node with the new
// setting leads, and every node serves the new set at a higher serial.
func TestDNS_ApexSettingsAreTheClusters(t *testing.T) {
	const z = "apex.systest."
	c := startClusterWith(t, 3, func(int) []string {
		return []string{"-dns-nameservers", "ns1.old.systest", "-dns-hostmaster", "dns@old.systest"}
	})
	c.createDomain(c.nodes[0], strings.TrimSuffix(z, "."))

	type apex struct {
		serial uint32
		ns     string // NS set, sorted and joined
		mname  string
		mbox   string
	}
	ask := func(n *node) (apex, error) {
		cl := &mdns.Client{Timeout: 500 * time.Millisecond}
		var a apex
		m := new(mdns.Msg)
		m.SetQuestion(z, mdns.TypeSOA)
		r, _, err := cl.Exchange(m, n.dnsAddr)
		if err != nil {
			return a, err
		}
		if len(r.Answer) != 1 {
			return a, fmt.Errorf("SOA answer %v (rcode %s)", r.Answer, mdns.RcodeToString[r.Rcode])
		}
		soa := r.Answer[0].(*mdns.SOA)
		a.serial, a.mname, a.mbox = soa.Serial, soa.Ns, soa.Mbox
		m.SetQuestion(z, mdns.TypeNS)
		if r, _, err = cl.Exchange(m, n.dnsAddr); err != nil {
			return a, err
		}
		var ns []string
		for _, rr := range r.Answer {
			ns = append(ns, rr.(*mdns.NS).Ns)
		}
		a.ns = strings.Join(ns, ",")
		return a, nil
	}
	// wantAll waits until every running node serves the NS set want, then
	// checks that they agree on the serial and the whole apex.
	wantAll := func(what, wantNS, wantMbox string) apex {
		t.Helper()
		var first apex
		err := waitFor(30*time.Second, func() error {
			var got []apex
			for _, n := range c.nodes {
				if !n.running() {
					continue
				}
				a, err := ask(n)
				if err != nil {
					return fmt.Errorf("%s: %v", n.name, err)
				}
				if a.ns != wantNS || a.mname != wantNS || a.mbox != wantMbox {
					return fmt.Errorf("%s serves %+v, want NS and MNAME %s, mailbox %s", n.name, a, wantNS, wantMbox)
				}
				got = append(got, a)
			}
			for _, a := range got[1:] {
				if a != got[0] {
					return fmt.Errorf("nodes differ: %+v", got)
				}
			}
			first = got[0]
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: every node serves %+v", what, first)
		return first
	}
	setNS := func(n *node, ns, hostmaster string) {
		for i, a := range n.extra {
			switch a {
			case "-dns-nameservers":
				n.extra[i+1] = ns
			case "-dns-hostmaster":
				n.extra[i+1] = hostmaster
			}
		}
	}

	before := wantAll("start", "ns1.old.systest.", "dns.old.systest.")

	leader := c.leader(30 * time.Second)
	for _, f := range c.followers(leader) {
		f.stop()
		setNS(f, "ns1.new.systest", "dns@new.systest")
		f.start()
		c.waitLocalReady(f, 30*time.Second)
	}
	c.waitVoters(leader, 3, 30*time.Second)
	if again := wantAll("followers restarted with new settings", "ns1.old.systest.", "dns.old.systest."); again.serial != before.serial {
		t.Errorf("serial moved from %d to %d without a change of the cluster's apex", before.serial, again.serial)
	}
	for _, f := range c.followers(leader) {
		b, _ := os.ReadFile(f.logPath)
		if !strings.Contains(string(b), "differ from the cluster's") {
			t.Errorf("%s: no warning that its DNS settings differ from the cluster's", f.name)
		}
	}

	leader.stop()
	setNS(leader, "ns1.new.systest", "dns@new.systest")
	after := wantAll("leader stopped", "ns1.new.systest.", "dns.new.systest.")
	if int32(after.serial-before.serial) <= 0 { // RFC 1982 order
		t.Errorf("serial %d after the change is not above %d", after.serial, before.serial)
	}
	leader.start()
	c.waitLocalReady(leader, 30*time.Second)
	if last := wantAll("old leader back", "ns1.new.systest.", "dns.new.systest."); last.serial != after.serial {
		t.Errorf("serial moved from %d to %d when a node with the same settings came back", after.serial, last.serial)
	}
}
