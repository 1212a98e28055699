// Package netrouter builds a project's virtual router on this Linux host.
//
// A router is a network namespace (P<project_id>) with a veth to the
// region's public bridge carrying the router address and every 1:1 NAT
// public address, one segment bridge per project subnet (a VXLAN device in
// vxlan mode, an 802.1Q sub-interface in vlan mode) joined to the namespace
// by a veth carrying the subnet gateway, an nftables table with the
// CloudCIX firewall semantics, dnsmasq for static DHCP and an in-process
// metadata service on 169.254.169.254:80.
//
// Builder.Ensure is a level-triggered, diff-based reconcile: every step
// reads what exists and changes only what differs, so it is safe to repeat
// after a crash at any point, and an update never tears a router down. The
// nftables ruleset is applied as one nft transaction (flush and refill of
// the router's own table), so a firewall change swaps atomically.
//
// Everything the builder creates carries its ownership tag: the interface
// alias (ifalias) of every link, the alias of the namespace's loopback, and
// the comment of the nftables table. List finds the routers it owns from
// those tags, and Scrub removes all of one router, shared host objects
// (segment bridges) only when nothing else uses them.
//
// Lifecycle mapping for the agent's loop: build, update and restart are
// Ensure; quiesce is Quiesce (public side down, services stopped); scrub is
// Scrub; garbage collection after a complete fetch scrubs what List returns
// and the controller no longer wants. Rules with logging on feed an nflog
// group that the builder reads per namespace (PolicyLog).
//
// VPNs: the ruleset admits IKE and ESP, forwards each VPN route's local
// and remote subnets around the user's rules and exempts them from SNAT;
// the remote subnets are routed into charon's TUN device (libipsec mode)
// or an XFRM interface per VPN (xfrm mode). agent/vpn runs charon; the
// agent calls EnsureVPNRoutes once charon's device exists. The ruleset
// fails closed: traffic to a remote subnet leaves only by that device
// (chain vpn_egress), so while it is missing (charon not up yet, dead, or
// the VPN not running) the traffic is dropped, never sent out of the
// public side unencrypted by the default route.
//
// Segments is the segment half on its own, for the hypervisor role: it
// keeps the bridge and VXLAN (or VLAN) device of every segment the host's
// VMs use, named and tagged as a router's, and collects those no VM and
// no router uses any more. A Builder given the hypervisor's Segments
// (Config.Segments) shares its lock and never collects its segments.
//
// See docs/netrouter.md for the layout, the nft chains and the measured
// build and update times.
package netrouter
