package netrouter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// desired is a validated, parsed RouterSpec with every host name resolved.
// It is computed without I/O so it can be unit tested.
type desired struct {
	routerID  uint64
	projectID uint64
	tag       string
	namespace string

	publicVeth string       // host side, enslaved to the public bridge
	publicAddr netip.Prefix // router address with the floating subnet's length
	publicGW   netip.Addr   // default route
	nat        []natPair    // 1:1 NAT
	subnets    []subnet     // ordered by subnet id
	rules      []rule       // ordered by Order
	metadata   []api.MetadataSpec
	vpnRoutes  []vpnRoute // ordered by VPN id; none of a failed VPN
	// vpnFailed are the VPNs whose routes are invalid (*vpn.SpecError):
	// they fail alone, the router is built without them.
	vpnFailed []error
}

type natPair struct {
	private, public netip.Addr
	// bits is the prefix length public carries on pub0: its floating
	// subnet's (NATSpec.PublicPrefixLength); without it the router's when
	// public is in the router's floating subnet, else 32 (no on-link claim
	// for a subnet whose length is unknown).
	bits int
}

type subnet struct {
	segment // the subnet's segment: bridge, device, tag, VNI or VLAN, VTEPs

	id      uint64
	gateway netip.Prefix // gateway address with the subnet's length
	network netip.Prefix // masked
	dns     []netip.Addr
	dhcp    []dhcpHost

	hostVeth string // root namespace side, in the segment bridge
	nsVeth   string // namespace side, carries the gateway
	mtu      int    // of the segment device, learnt while building
}

type dhcpHost struct {
	mac      net.HardwareAddr
	ip       netip.Addr
	hostname string
	// noGateway: the address is on a VM's NIC other than the one on its
	// gateway subnet (the metadata's Address), which gets no default route.
	noGateway bool
	// dns are the VM's own DNS servers (its metadata's), handed out to
	// this binding instead of the subnet's; none: the subnet's.
	dns []netip.Addr
}

// rule is one parsed firewall rule.
type rule struct {
	order    int
	allow    bool
	inbound  bool
	proto    string       // "", icmp, tcp, udp
	src, dst netip.Prefix // invalid = any
	v6       bool
	portLo   uint16
	portHi   uint16
	log      bool
}

// Segment modes.
const (
	ModeVXLAN = "vxlan"
	ModeVLAN  = "vlan"
)

// plan validates spec and resolves the names of everything it needs. All
// errors are about the spec (bad input), never about the host.
func plan(spec *api.RouterSpec, n naming, mode string) (*desired, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	d := &desired{
		routerID:   spec.ID,
		projectID:  spec.ProjectID,
		tag:        n.routerTag(spec.ID, spec.ProjectID),
		namespace:  n.namespace(spec.ProjectID),
		publicVeth: n.publicVeth(spec.ProjectID),
		metadata:   spec.Metadata,
	}
	if spec.ID == 0 {
		bad("id: required")
	}
	if spec.ProjectID == 0 {
		bad("project_id: required")
	}
	var err error
	if d.publicAddr, err = netip.ParsePrefix(spec.PublicIP); err != nil || !d.publicAddr.Addr().Is4() {
		bad("public_ip: %q is not an IPv4 address with prefix length", spec.PublicIP)
	}
	if d.publicGW, err = netip.ParseAddr(spec.PublicGateway); err != nil || !d.publicGW.Is4() {
		bad("public_gateway: %q is not an IPv4 address", spec.PublicGateway)
	} else if d.publicAddr.IsValid() && !d.publicAddr.Masked().Contains(d.publicGW) {
		bad("public_gateway: %s is outside %s", d.publicGW, d.publicAddr.Masked())
	}

	// A VM's addresses other than its primary one (on its gateway subnet)
	// get no default route by DHCP: one NIC per subnet, one default route.
	secondary := map[netip.Addr]bool{}
	// Every address of a VM gets the VM's own DNS servers by DHCP (the
	// subnet's are one VM's, CloudCIX-style), as metadata names them.
	vmDNS := map[netip.Addr][]netip.Addr{}
	for _, m := range spec.Metadata {
		var dns []netip.Addr
		for _, v := range m.DNS {
			if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil && a.Is4() {
				dns = append(dns, a)
			}
		}
		if ip, err := netip.ParseAddr(m.Address); err == nil && len(dns) > 0 {
			vmDNS[ip] = dns
		}
		for _, a := range m.IPAddresses {
			ip, err := netip.ParseAddr(a.PrivateIP)
			if err != nil {
				continue
			}
			if a.PrivateIP != m.Address {
				secondary[ip] = true
			}
			if len(dns) > 0 {
				vmDNS[ip] = dns
			}
		}
	}

	seenSeg := map[uint32]bool{}
	for i, s := range spec.Subnets {
		sn := subnet{segment: segment{vni: s.VNI, vlan: s.VLAN}, id: s.ID, hostVeth: n.subnetVeth(s.ID), nsVeth: nsSubnetName(s.ID)}
		if s.ID == 0 {
			bad("subnets[%d].id: required", i)
		}
		if sn.gateway, err = netip.ParsePrefix(s.AddressRange); err != nil || !sn.gateway.Addr().Is4() {
			bad("subnets[%d].address_range: %q is not gateway/length", i, s.AddressRange)
			continue
		}
		sn.network = sn.gateway.Masked()
		if sn.network.Addr() == sn.gateway.Addr() {
			bad("subnets[%d].address_range: %s is the network address, not a gateway", i, s.AddressRange)
		}
		switch mode {
		case ModeVXLAN:
			if s.VNI == 0 || s.VNI > 1<<24-1 {
				bad("subnets[%d].vni: %d is outside 1..16777215", i, s.VNI)
			}
			sn.bridge, sn.segDev, sn.segTag = n.vxlanBridge(s.VNI), n.vxlanDev(s.VNI), n.segmentTag(ModeVXLAN, s.VNI)
			if seenSeg[s.VNI] {
				bad("subnets[%d].vni: %d used twice", i, s.VNI)
			}
			seenSeg[s.VNI] = true
		case ModeVLAN:
			if s.VLAN == 0 || s.VLAN > 4094 {
				bad("subnets[%d].vlan: %d is outside 1..4094", i, s.VLAN)
			}
			sn.bridge, sn.segDev, sn.segTag = n.vlanBridge(s.VLAN), n.vlanDev(s.VLAN), n.segmentTag(ModeVLAN, s.VLAN)
			if seenSeg[s.VLAN] {
				bad("subnets[%d].vlan: %d used twice", i, s.VLAN)
			}
			seenSeg[s.VLAN] = true
		}
		for _, v := range s.VTEPs {
			a, err := netip.ParseAddr(v)
			if err != nil {
				bad("subnets[%d].vteps: %q is not an address", i, v)
				continue
			}
			sn.vteps = append(sn.vteps, a)
		}
		slices.SortFunc(sn.vteps, netip.Addr.Compare)
		sn.vteps = slices.Compact(sn.vteps)
		for _, v := range s.DNS {
			a, err := netip.ParseAddr(v)
			if err != nil {
				bad("subnets[%d].dns: %q is not an address", i, v)
				continue
			}
			sn.dns = append(sn.dns, a)
		}
		for j, h := range s.DHCP {
			mac, err1 := net.ParseMAC(h.MAC)
			ip, err2 := netip.ParseAddr(h.IP)
			if err1 != nil || err2 != nil || len(mac) != 6 || !sn.network.Contains(ip) {
				bad("subnets[%d].dhcp[%d]: %q → %q is not a MAC and an address in %s", i, j, h.MAC, h.IP, sn.network)
				continue
			}
			// The hostname is the VM's name, free text: made a DNS label,
			// never a reason to refuse the router.
			sn.dhcp = append(sn.dhcp, dhcpHost{mac: mac, ip: ip, hostname: dhcpHostname(h.Hostname), noGateway: secondary[ip], dns: vmDNS[ip]})
		}
		slices.SortFunc(sn.dhcp, func(a, b dhcpHost) int { return a.ip.Compare(b.ip) })
		d.subnets = append(d.subnets, sn)
	}
	slices.SortFunc(d.subnets, func(a, b subnet) int { return cmpU64(a.id, b.id) })
	for i := 1; i < len(d.subnets); i++ {
		if d.subnets[i].id == d.subnets[i-1].id {
			bad("subnets: id %d used twice", d.subnets[i].id)
		}
	}
	for i := range d.subnets {
		for j := range i {
			if d.subnets[i].network.Overlaps(d.subnets[j].network) {
				bad("subnets: %s overlaps %s", d.subnets[i].network, d.subnets[j].network)
			}
		}
	}

	d.nat = parseNAT(spec, d.publicAddr, d.subnets, bad)

	for i, fr := range spec.FirewallRules {
		r, err := parseRule(fr, d.subnets)
		if err != nil {
			bad("firewall_rules[%d]: %v", i, err)
			continue
		}
		d.rules = append(d.rules, r)
	}
	slices.SortStableFunc(d.rules, func(a, b rule) int { return a.order - b.order })

	d.vpnRoutes, d.vpnFailed = parseVPNs(spec, d.subnets, bad)

	for i, m := range spec.Metadata {
		if _, err := netip.ParseAddr(m.Address); err != nil {
			bad("metadata[%d].address: %q is not an address", i, m.Address)
		}
	}
	if len(errs) > 0 {
		return nil, &SpecError{Err: errors.Join(errs...)}
	}
	return d, nil
}

// parseNAT validates the 1:1 NAT pairs (errors go into bad) and returns
// them ordered by public address. Each public address is used once and is
// not the router's own; each private address has one public partner and
// is a host of a subnet of the router (not its gateway): anything else
// would render a ruleset whose DNAT or SNAT silently picks one of two.
func parseNAT(spec *api.RouterSpec, router netip.Prefix, subnets []subnet, bad func(string, ...any)) []natPair {
	var out []natPair
	seenPublic := map[netip.Addr]bool{}
	seenPrivate := map[netip.Addr]bool{}
	for i, p := range spec.NAT {
		priv, err1 := netip.ParseAddr(p.Private)
		pub, err2 := netip.ParseAddr(p.Public)
		if err1 != nil || err2 != nil || !priv.Is4() || !pub.Is4() {
			bad("nat[%d]: %q → %q is not a pair of IPv4 addresses", i, p.Public, p.Private)
			continue
		}
		switch {
		case router.IsValid() && pub == router.Addr():
			bad("nat[%d]: public address %s is the router's address", i, pub)
		case seenPublic[pub]:
			bad("nat[%d]: public address %s used twice", i, pub)
		}
		if seenPrivate[priv] {
			bad("nat[%d]: private address %s has two public addresses", i, priv)
		}
		seenPublic[pub], seenPrivate[priv] = true, true
		in := false
		for _, s := range subnets {
			if s.network.Contains(priv) {
				in = true
				if priv == s.gateway.Addr() {
					bad("nat[%d]: private address %s is a subnet's gateway (the router's own)", i, priv)
				}
			}
		}
		if !in {
			bad("nat[%d]: private address %s is not in a subnet of the router", i, priv)
		}
		bits := p.PublicPrefixLength
		switch {
		case bits < 0 || bits > 32:
			bad("nat[%d]: public_prefix_length %d is outside 1..32", i, bits)
		case bits == 0 && router.IsValid() && router.Masked().Contains(pub):
			bits = router.Bits()
		case bits == 0:
			bits = 32
		case router.IsValid() && bits == router.Bits() && router.Masked().Contains(pub):
		case router.IsValid() && netip.PrefixFrom(pub, bits).Masked().Overlaps(router.Masked()):
			// Another length over the router's subnet: the kernel would
			// see two subnets (and two primaries) for one network.
			bad("nat[%d]: %s/%d overlaps the router's floating subnet %s with another length", i, pub, bits, router.Masked())
		}
		out = append(out, natPair{private: priv, public: pub, bits: bits})
	}
	slices.SortFunc(out, func(a, b natPair) int { return a.public.Compare(b.public) })
	return out
}

// SpecError is a RouterSpec the builder refuses: retrying will not help,
// the object should go UNRESOURCED with this detail.
type SpecError struct{ Err error }

func (e *SpecError) Error() string { return "invalid router spec: " + e.Err.Error() }
func (e *SpecError) Unwrap() error { return e.Err }

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseEndpoint parses "*", an address or a prefix.
func parseEndpoint(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "*" || s == "" || s == "any" {
		return netip.Prefix{}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func insideSubnets(p netip.Prefix, subnets []subnet) bool {
	for _, s := range subnets {
		if s.network.Bits() <= p.Bits() && s.network.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func parseRule(fr api.FirewallRuleSpec, subnets []subnet) (rule, error) {
	r := rule{order: fr.Order, allow: fr.Allow, log: fr.Log}
	var err error
	if r.src, err = parseEndpoint(fr.Source); err != nil {
		return r, fmt.Errorf("source %q: %v", fr.Source, err)
	}
	if r.dst, err = parseEndpoint(fr.Destination); err != nil {
		return r, fmt.Errorf("destination %q: %v", fr.Destination, err)
	}
	srcPriv := r.src.IsValid() && insideSubnets(r.src, subnets)
	dstPriv := r.dst.IsValid() && insideSubnets(r.dst, subnets)
	if srcPriv == dstPriv {
		return r, fmt.Errorf("exactly one of source %q and destination %q must be a project subnet", fr.Source, fr.Destination)
	}
	r.inbound = dstPriv
	if r.src.IsValid() && r.dst.IsValid() && r.src.Addr().Is4() != r.dst.Addr().Is4() {
		return r, fmt.Errorf("source and destination are different IP versions")
	}
	r.v6 = (r.src.IsValid() && r.src.Addr().Is6()) || (r.dst.IsValid() && r.dst.Addr().Is6())
	switch p := strings.ToLower(fr.Protocol); p {
	case "any", "":
	case "icmp":
		r.proto = "icmp"
	case "tcp", "udp":
		r.proto = p
		lo, hi, err := parsePorts(fr.Port)
		if err != nil {
			return r, err
		}
		r.portLo, r.portHi = lo, hi
	default:
		return r, fmt.Errorf("protocol %q is not any, icmp, tcp or udp", fr.Protocol)
	}
	return r, nil
}

func parsePorts(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	pa, err1 := strconv.ParseUint(a, 10, 16)
	pb := pa
	var err2 error
	if isRange {
		pb, err2 = strconv.ParseUint(b, 10, 16)
	}
	if err1 != nil || err2 != nil || pa == 0 || pb == 0 || pb < pa {
		return 0, 0, fmt.Errorf("port %q is not N or N-M within 1..65535", s)
	}
	return uint16(pa), uint16(pb), nil
}

// dhcpHostname makes a VM name a host name dnsmasq accepts and hands out
// (a DNS label: a-z, 0-9 and inner hyphens, at most 63 characters): other
// characters become hyphens, runs of them one; "" when nothing is left.
//
// dnsmasq reads each field of a dhcp-host line by its form, not by its
// place, and a label can still look like something else there: "ignore"
// (never offer this host a lease), "infinite" or digits with an optional
// unit s, m, h, d or w (a lease time). Such a name is left out ("") so the
// binding stays a plain MAC → address one. Whatever would make a field a
// tag, client id, MAC or address ("set:", "tag:", "id:", colons, commas,
// dots, brackets) is gone with the other characters.
func dhcpHostname(name string) string {
	out := netx.HostLabel(name)
	if out == "ignore" || out == "infinite" || dnsmasqLeaseTime.MatchString(out) {
		return ""
	}
	return out
}

// dnsmasqLeaseTime is what dnsmasq reads as a lease time in a dhcp-host
// field (after the lower-casing of netx.HostLabel).
var dnsmasqLeaseTime = regexp.MustCompile(`^[0-9]+[smhdw]?$`)
