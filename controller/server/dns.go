package server

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	mdns "github.com/miekg/dns"
	"github.com/regentcloud/regent/controller/dns"
	"github.com/regentcloud/regent/controller/dns/rdata"
	"github.com/regentcloud/regent/controller/state"
)

// dnsSource serves the node's local state to the DNS server: stale reads,
// as DNS allows, so every node answers without asking the leader.
//
// Parsing a record's content into an RR costs microseconds, which adds up
// when a 10,000-record zone is rebuilt after each change; parsed RRs are
// kept per zone and record, keyed by the record's modified index.
type dnsSource struct {
	store *state.Store
	log   hclog.Logger

	mu     sync.Mutex
	parsed map[string]map[uint64]parsedRR // zone name → record id → RR
}

type parsedRR struct {
	modified uint64
	rr       mdns.RR // never handed out: Zone returns copies
}

func newDNSSource(store *state.Store, log hclog.Logger) *dnsSource {
	return &dnsSource{store: store, log: log, parsed: map[string]map[uint64]parsedRR{}}
}

func (d *dnsSource) Serials() (uint64, map[string]uint32) {
	r := d.store.Read()
	out := map[string]uint32{}
	for _, z := range r.DomainList() {
		out[mdns.Fqdn(z.Name)] = serial(z.Serial)
	}
	return r.MaxIndex(state.Domains, state.Records), out
}

// serial maps a raft index to a 32-bit SOA serial. Raft indexes stay
// below 2^32 for billions of writes; past that the serial wraps, which
// RFC 1982 arithmetic tolerates as long as secondaries keep up.
func serial(index uint64) uint32 {
	s := uint32(index)
	if s == 0 {
		s = 1
	}
	return s
}

func (d *dnsSource) Zone(name string) (*dns.Zone, bool) {
	r := d.store.Read()
	z, ok := r.DomainByName(strings.TrimSuffix(strings.ToLower(name), "."))
	if !ok {
		return nil, false
	}
	recs := r.DomainRecords(z.ID)
	out := &dns.Zone{Name: mdns.Fqdn(z.Name), Serial: serial(z.Serial), RRs: make([]mdns.RR, 0, len(recs))}
	// RFC 2181 §5.2: the records of an RRset share one TTL; serve the lowest.
	type set struct {
		name string
		t    uint16
	}
	minTTL := map[set]uint32{}
	d.mu.Lock()
	defer d.mu.Unlock()
	prev := d.parsed[z.Name]
	cur := make(map[uint64]parsedRR, len(recs))
	for _, rec := range recs {
		p, ok := prev[rec.ID]
		if !ok || p.modified != rec.ModifiedIndex {
			rr, err := rdata.RR(rec.Name, rec.Type, rec.TTL, rec.Priority, rec.Content)
			if err != nil {
				// The API validated it; a record that no longer parses is
				// skipped rather than taking the zone down.
				d.log.Warn("dns: record not served", "zone", z.Name, "record", rec.ID, "error", err)
				continue
			}
			p = parsedRR{modified: rec.ModifiedIndex, rr: rr}
		}
		cur[rec.ID] = p
		rr := mdns.Copy(p.rr)
		k := set{rr.Header().Name, rr.Header().Rrtype}
		if t, ok := minTTL[k]; !ok || rr.Header().Ttl < t {
			minTTL[k] = rr.Header().Ttl
		}
		out.RRs = append(out.RRs, rr)
	}
	for _, rr := range out.RRs {
		rr.Header().Ttl = minTTL[set{rr.Header().Name, rr.Header().Rrtype}]
	}
	d.parsed[z.Name] = cur
	for name := range d.parsed {
		if _, ok := r.DomainByName(name); !ok {
			delete(d.parsed, name)
		}
	}
	return out, true
}

func (d *dnsSource) Wait(ctx context.Context, index uint64) uint64 {
	return d.store.Wait(ctx, index, state.Domains, state.Records)
}

// dnsEnabled reports whether the node serves DNS (dns_addr "" or "off"
// turns it off).
func (c *Config) dnsEnabled() bool { return c.DNSAddr != "" && c.DNSAddr != "off" }

// dnsConfig maps the node's configuration onto the DNS server's.
func (c *Config) dnsConfig(log hclog.Logger) (dns.Config, error) {
	cfg := dns.Config{Addr: c.DNSAddr, NS: c.DNSNameservers, RName: c.DNSHostmaster, Notify: c.DNSNotify,
		TSIGKeys: c.DNSTSIGKeys, Logger: log.Named("dns")}
	if len(cfg.NS) == 0 {
		cfg.NS = []string{"localhost."}
	}
	if cfg.RName != "" {
		// hostmaster@example.net is written as the name hostmaster.example.net.
		cfg.RName = mdns.Fqdn(strings.Replace(cfg.RName, "@", ".", 1))
	}
	for _, s := range c.DNSAllowTransfer {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return cfg, fmt.Errorf("dns_allow_transfer %q: not an address or CIDR", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cfg.AllowTransfer = append(cfg.AllowTransfer, p.Masked())
	}
	return cfg, nil
}
