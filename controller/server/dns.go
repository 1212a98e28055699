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
	wire "github.com/regentcloud/regent/pkg/api"
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
	apex  apexConfig // this node's configured apex, to warn when the cluster's differs

	mu      sync.Mutex
	parsed  map[string]map[uint64]parsedRR // zone name → record id → RR
	checked uint64                         // DNSSettings.Index last compared with apex
}

type parsedRR struct {
	modified uint64
	rr       mdns.RR // never handed out: Zone returns copies
}

func newDNSSource(store *state.Store, apex apexConfig, log hclog.Logger) *dnsSource {
	return &dnsSource{store: store, apex: apex, log: log, parsed: map[string]map[uint64]parsedRR{}}
}

// dnsTables are the tables whose changes change zones.
var dnsTables = []string{state.Domains, state.Records, state.DNSSettingsTable}

func (d *dnsSource) Serials() (uint64, map[string]uint32) {
	r := d.store.Read()
	set, _ := r.DNSSettings()
	d.checkApex(set)
	out := map[string]uint32{}
	for _, z := range r.DomainList() {
		out[mdns.Fqdn(z.Name)] = zoneSerial(z, set)
	}
	return r.MaxIndex(dnsTables...), out
}

// zoneSerial is the raft index of the zone's last change, where a change
// of the apex settings changes every zone.
func zoneSerial(z *wire.Domain, set *state.DNSSettings) uint32 {
	i := z.Serial
	if set != nil && set.Index > i {
		i = set.Index
	}
	return serial(i)
}

// checkApex warns, once per change of the replicated apex settings, when
// they differ from what this node's configuration says: the node serves the
// cluster's settings, and its own take effect when it next becomes leader.
func (d *dnsSource) checkApex(set *state.DNSSettings) {
	if set == nil || !d.apex.given() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.checked == set.Index {
		return
	}
	d.checked = set.Index
	if ns, hm := d.apex.merge(set); !set.SameApex(ns, hm) {
		d.log.Warn("dns: this node's dns_nameservers/dns_hostmaster differ from the cluster's; serving the cluster's until this node leads",
			"cluster_nameservers", strings.Join(set.NS, ","), "cluster_hostmaster", set.Hostmaster, "set_by", set.SetBy,
			"configured_nameservers", strings.Join(ns, ","), "configured_hostmaster", hm)
	}
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
	apex, _ := r.DNSSettings()
	out := &dns.Zone{Name: mdns.Fqdn(z.Name), Serial: zoneSerial(z, apex), RRs: make([]mdns.RR, 0, len(recs))}
	if apex != nil {
		out.NS, out.RName = apex.NS, apex.Hostmaster
	}
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
	return d.store.Wait(ctx, index, dnsTables...)
}

// dnsEnabled reports whether the node serves DNS (dns_addr "" or "off"
// turns it off).
func (c *Config) dnsEnabled() bool { return c.DNSAddr != "" && c.DNSAddr != "off" }

// apexConfig is the zone apex a node's configuration gives: the
// dns_nameservers and dns_hostmaster settings, normalised as zones serve
// them. An empty field was not configured.
type apexConfig struct {
	ns         []string
	hostmaster string
}

func (c *Config) apexConfig() apexConfig {
	var a apexConfig
	for _, n := range c.DNSNameservers {
		if n = strings.TrimSpace(n); n != "" {
			a.ns = append(a.ns, strings.ToLower(mdns.Fqdn(n)))
		}
	}
	if c.DNSHostmaster != "" {
		// hostmaster@example.net is written as the name hostmaster.example.net.
		a.hostmaster = mdns.Fqdn(strings.Replace(c.DNSHostmaster, "@", ".", 1))
	}
	return a
}

func (a apexConfig) given() bool { return len(a.ns) > 0 || a.hostmaster != "" }

// merge is the apex the cluster should serve by this node's configuration:
// what it configures replaces the replicated settings (cur, nil if none),
// what it leaves out stays as it is.
func (a apexConfig) merge(cur *state.DNSSettings) (ns []string, hostmaster string) {
	ns, hostmaster = a.ns, a.hostmaster
	if cur != nil {
		if len(ns) == 0 {
			ns = cur.NS
		}
		if hostmaster == "" {
			hostmaster = cur.Hostmaster
		}
	}
	if len(ns) == 0 {
		ns = []string{defaultNameserver}
	}
	return ns, hostmaster
}

// defaultNameserver is the apex NS of every zone when no node configures
// dns_nameservers (fine for a dev node, wrong for any delegation).
const defaultNameserver = "localhost."

// dnsConfig maps the node's configuration onto the DNS server's.
func (c *Config) dnsConfig(log hclog.Logger) (dns.Config, error) {
	apex := c.apexConfig()
	cfg := dns.Config{Addr: c.DNSAddr, NS: apex.ns, RName: apex.hostmaster, Notify: c.DNSNotify,
		TSIGKeys: c.DNSTSIGKeys, UDPSockets: c.DNSUDPSockets, TCPConns: c.DNSTCPConns, Logger: log.Named("dns")}
	if len(cfg.NS) == 0 {
		cfg.NS = []string{defaultNameserver}
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
