package netrouter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// nftables is the part of knftables.Interface the builder uses; a
// knftables.Fake satisfies it in unit tests.
type nftables interface {
	NewTransaction() *knftables.Transaction
	Run(ctx context.Context, tx *knftables.Transaction) error
	ListRules(ctx context.Context, chain string) ([]*knftables.Rule, error)
}

// Chains of a router's table.
const (
	chainGlobal     = "global"
	chainICMP       = "icmp_allow"
	chainInput      = "input"
	chainForward    = "forward"
	chainOutput     = "output"
	chainInbound    = "inbound"
	chainOutbound   = "outbound"
	chainPrerouting = "prerouting"
	chainPostrout   = "postrouting"
	chainVPNEgress  = "vpn_egress"
	setPrivate      = "private_ifs"
)

// rulesetOpts are the builder settings the ruleset depends on.
type rulesetOpts struct {
	nflogGroup uint16
	vpnMode    string // vpn.ModeLibIPsec ("" too) or vpn.ModeXFRM
}

// renderRuleset fills tx with the router's complete table: table, chains,
// interface set and rules, preceded by a flush of the table so the whole
// swap is one atomic nft transaction. It returns the digest of what it
// rendered; the digest is stored in the table (chain regent_meta) so a
// later Ensure can see that nothing changed without touching the kernel.
func renderRuleset(tx *knftables.Transaction, d *desired, o rulesetOpts) string {
	var body strings.Builder
	var rules []*knftables.Rule
	add := func(chain string, parts ...string) {
		rules = append(rules, &knftables.Rule{Chain: chain, Rule: knftables.Concat(parts)})
	}
	pub := fmt.Sprintf("%q", nsPublicIf)

	add(chainGlobal, "ct state established,related accept")
	add(chainGlobal, "ct state invalid drop")

	// ICMP types CloudCIX allows (echo, unreachable, time exceeded; ND and MLD for v6).
	add(chainICMP, "meta l4proto icmp icmp type { echo-request, echo-reply, destination-unreachable, time-exceeded } accept")
	add(chainICMP, "meta l4proto ipv6-icmp icmpv6 type { echo-request, echo-reply, destination-unreachable, packet-too-big, time-exceeded, mld-listener-query, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept")

	// Router's own services.
	add(chainInput, "iifname lo accept")
	add(chainInput, "jump", chainGlobal)
	add(chainInput, "jump", chainICMP)
	add(chainInput, "meta l4proto { tcp, udp } th dport 53 accept")
	add(chainInput, "udp dport { 500, 4500 } accept")
	if len(d.vpnRoutes) > 0 {
		// IKE above; raw ESP (xfrm mode; libipsec encapsulates in UDP 4500).
		add(chainInput, "iifname", pub, "meta l4proto esp accept")
	}
	add(chainInput, "iifname @"+setPrivate, "udp dport 67 accept")
	add(chainInput, "iifname @"+setPrivate, "ip daddr 169.254.169.254 tcp dport 80 accept")

	// Fail closed: a VPN's remote subnets are reached only through the
	// device they are routed into (vpnPlan), whether or not it exists.
	// Without it (charon not up yet; charon died, and the kernel dropped
	// the routes with its TUN device; the router's only VPN does not run)
	// their traffic would follow the default route out of the public
	// veth, unencrypted and, exempt from SNAT, with its private source.
	// First in forward, before the established accept (a flow that entered
	// the tunnel is routed out of the public veth once the device is
	// gone), and in output (the router's own answers from its gateway
	// addresses). By destination alone: with the device there, only a
	// route's local subnet is let into it anyway.
	if len(d.vpnRoutes) > 0 {
		add(chainForward, "jump", chainVPNEgress)
		add(chainOutput, "jump", chainVPNEgress)
		renderVPNEgress(add, d, o.vpnMode)
	}
	// Forwarding: established first, DNS out of the project always
	// (CloudCIX; only outwards: a VM's own port 53 is closed to the
	// internet unless an inbound rule allows it), then the user's rules by
	// direction.
	add(chainForward, "jump", chainGlobal)
	add(chainForward, "iifname @"+setPrivate, "oifname", pub, "meta l4proto { tcp, udp } th dport 53 accept")
	// VPN traffic between a route's local and remote subnets bypasses the
	// user's rules (CloudCIX: per VPN route, both directions), but only as
	// it really travels: out of a project subnet, and in from the VPN's
	// tunnel device. By address alone, a packet from the internet with a
	// forged source in a remote subnet (after DNAT to a NATed VM) would
	// skip the inbound rules.
	for _, r := range d.vpnRoutes {
		tun := fmt.Sprintf("%q", vpnDevice(o.vpnMode, r.vpnID))
		add(chainForward, "iifname @"+setPrivate, "ip saddr", r.local.String(), "ip daddr", r.remote.String(), "accept")
		add(chainForward, "iifname", tun, "ip saddr", r.remote.String(), "ip daddr", r.local.String(), "accept")
	}
	add(chainForward, "iifname", pub, "oifname @"+setPrivate, "jump", chainInbound)
	add(chainForward, "iifname @"+setPrivate, "oifname", pub, "jump", chainOutbound)
	// Hairpin: a VM reaching a 1:1 NAT public address from inside the
	// project is inbound traffic for the VM behind it, as from the
	// internet: the allow rules admit it, the rest is dropped (goto: the
	// end of inbound ends forward, at its drop policy).
	if len(d.nat) > 0 {
		add(chainForward, "iifname @"+setPrivate, "oifname @"+setPrivate, "ct status dnat goto", chainInbound)
	}
	add(chainForward, "iifname @"+setPrivate, "oifname @"+setPrivate, "accept")

	for _, r := range d.rules {
		chain := chainOutbound
		if r.inbound {
			chain = chainInbound
		}
		add(chain, renderRule(r, d.routerID, o.nflogGroup))
	}
	add(chainOutbound, "accept")
	// inbound falls through to forward's policy drop.

	// Traffic into a VPN keeps its private source: no SNAT (first, before
	// the 1:1 and the router-address SNAT).
	for _, r := range d.vpnRoutes {
		add(chainPostrout, "ip saddr", r.local.String(), "ip daddr", r.remote.String(), "accept")
	}
	for _, n := range d.nat {
		add(chainPrerouting, "iifname", pub, "ip daddr", n.public.String(), "dnat ip to", n.private.String())
		add(chainPrerouting, "iifname @"+setPrivate, "ip daddr", n.public.String(), "dnat ip to", n.private.String())
		add(chainPostrout, "oifname", pub, "ip saddr", n.private.String(), "snat ip to", n.public.String())
	}
	for _, s := range d.subnets {
		add(chainPostrout, "oifname", pub, "ip saddr", s.network.String(), "snat ip to", d.publicAddr.Addr().String())
	}
	// Hairpin: the VM behind a public address sees a caller from the
	// project as the internet would (its 1:1 NAT address, else the router
	// address), so its replies go back through the router.
	if len(d.nat) > 0 {
		for _, n := range d.nat {
			add(chainPostrout, "oifname @"+setPrivate, "ct status dnat ip saddr", n.private.String(), "snat ip to", n.public.String())
		}
		for _, s := range d.subnets {
			add(chainPostrout, "oifname @"+setPrivate, "ct status dnat ip saddr", s.network.String(), "snat ip to", d.publicAddr.Addr().String())
		}
	}

	// The table is added (a no-op when it exists) and flushed, then every
	// chain, set and rule is added again: one transaction, so packets see
	// either the old ruleset or the new one.
	comment := d.tag
	tx.Add(&knftables.Table{Comment: &comment})
	tx.Flush(&knftables.Table{Comment: &comment})
	base := func(name string, t knftables.BaseChainType, h knftables.BaseChainHook, p knftables.BaseChainPriority, pol knftables.BaseChainPolicy) {
		tx.Add(&knftables.Chain{Name: name, Type: &t, Hook: &h, Priority: &p, Policy: &pol})
	}
	base(chainInput, knftables.FilterType, knftables.InputHook, knftables.FilterPriority, knftables.DropPolicy)
	base(chainForward, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority, knftables.DropPolicy)
	base(chainOutput, knftables.FilterType, knftables.OutputHook, knftables.FilterPriority, knftables.AcceptPolicy)
	base(chainPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority, knftables.AcceptPolicy)
	base(chainPostrout, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority, knftables.AcceptPolicy)
	for _, c := range []string{chainGlobal, chainICMP, chainInbound, chainOutbound, chainVPNEgress, metaChain} {
		tx.Add(&knftables.Chain{Name: c})
	}
	tx.Add(&knftables.Set{Name: setPrivate, Type: "ifname"})
	tx.Flush(&knftables.Set{Name: setPrivate})
	for _, s := range d.subnets {
		tx.Add(&knftables.Element{Set: setPrivate, Key: []string{s.nsVeth}})
		fmt.Fprintf(&body, "elem %s\n", s.nsVeth)
	}
	for _, r := range rules {
		tx.Add(r)
		fmt.Fprintf(&body, "%s: %s\n", r.Chain, r.Rule)
	}
	fmt.Fprintf(&body, "tag %s\n", d.tag)
	sum := sha256.Sum256([]byte(body.String()))
	digest := "digest:" + hex.EncodeToString(sum[:16])
	tx.Add(&knftables.Rule{Chain: metaChain, Rule: "counter", Comment: &digest})
	return digest
}

// renderVPNEgress fills chain vpn_egress: a packet to a VPN's remote
// subnet passes (return) only when it leaves by the device the subnet is
// routed into (vpnPlan: ipsec0, or xfrm<id> of the VPN with the lowest id
// among those sharing the subnet), else it is dropped (counted: how much
// the fence held back while a device was missing). Nested remote subnets
// (xfrm mode can route them into different devices) are matched most
// specific first, as the kernel routes them.
func renderVPNEgress(add func(string, ...string), d *desired, mode string) {
	_, routes := vpnPlan(d, mode)
	slices.SortStableFunc(routes, func(a, b routeWant) int { return b.dst.Bits() - a.dst.Bits() })
	for _, r := range routes {
		dev := fmt.Sprintf("%q", r.dev)
		add(chainVPNEgress, "ip daddr", r.dst.String(), "oifname", dev, "return")
		add(chainVPNEgress, "ip daddr", r.dst.String(), "counter drop")
	}
}

// renderRule renders one user firewall rule with its verdict.
func renderRule(r rule, routerID uint64, group uint16) string {
	var parts []string
	fam := "ip"
	if r.v6 {
		fam = "ip6"
	}
	if r.src.IsValid() {
		parts = append(parts, fam, "saddr", r.src.String())
	}
	if r.dst.IsValid() {
		parts = append(parts, fam, "daddr", r.dst.String())
	}
	switch r.proto {
	case "icmp":
		if r.v6 {
			parts = append(parts, "meta l4proto ipv6-icmp")
		} else {
			parts = append(parts, "meta l4proto icmp")
		}
	case "tcp", "udp":
		port := fmt.Sprint(r.portLo)
		if r.portHi != r.portLo {
			port = fmt.Sprintf("%d-%d", r.portLo, r.portHi)
		}
		parts = append(parts, r.proto, "dport", port)
	default:
		if r.src.IsValid() || r.dst.IsValid() {
			break
		}
		parts = append(parts, "meta nfproto", map[bool]string{false: "ipv4", true: "ipv6"}[r.v6])
	}
	if r.log {
		dir := "out"
		if r.inbound {
			dir = "in"
		}
		verdict := "block"
		if r.allow {
			verdict = "allow"
		}
		parts = append(parts, fmt.Sprintf("log prefix %q group %d", fmt.Sprintf("r%d %s %d %s ", routerID, dir, r.order, verdict), group))
	}
	switch {
	case r.allow && r.proto == "icmp":
		// CloudCIX: an ICMP allow admits only the types of icmp_allow.
		parts = append(parts, "jump", chainICMP)
	case r.allow:
		parts = append(parts, "accept")
	default:
		parts = append(parts, "drop")
	}
	return strings.Join(parts, " ")
}

// appliedDigest reads the digest of the ruleset in the table, "" when the
// table or the digest is missing.
func appliedDigest(ctx context.Context, nft nftables) string {
	rules, err := nft.ListRules(ctx, metaChain)
	if err != nil {
		return ""
	}
	for _, r := range rules {
		if r.Comment != nil && strings.HasPrefix(*r.Comment, "digest:") {
			return *r.Comment
		}
	}
	return ""
}
