package ipam

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/regentcloud/regent/pkg/netx"
)

// usedSet returns the addresses of parent covered by used prefixes of the
// same family, as an interval set.
func usedSet(parent netip.Prefix, used []netip.Prefix) netx.IntervalSet {
	lo, hi := netx.FirstU128(parent), netx.LastU128(parent)
	ivs := make([]netx.Interval, 0, len(used))
	for _, u := range used {
		if !u.IsValid() || !netx.Overlaps(parent, u) {
			continue
		}
		ivs = append(ivs, netx.Interval{
			Lo: netx.Max128(lo, netx.FirstU128(u)),
			Hi: netx.Min128(hi, netx.LastU128(u)),
		})
	}
	return netx.FromIntervals(0, ivs)
}

// SubnetSpace returns the free space of parent: the minimal list of aligned
// CIDR prefixes, in address order, covering parent minus every used prefix
// (CloudCIX subnet_space with space_type=free; NetBox available-prefixes).
// Used prefixes of another family or outside parent are ignored; host bits
// are ignored. Example: 10.0.0.0/24 minus 10.0.0.64/26 and 10.0.0.192/27 is
// 10.0.0.0/26, 10.0.0.128/26, 10.0.0.224/27. Cost O(u log u + output).
func SubnetSpace(parent netip.Prefix, used []netip.Prefix) []netip.Prefix {
	parent = parent.Masked()
	width := parent.Addr().BitLen()
	var out []netip.Prefix
	for _, gap := range usedSet(parent, used).Gaps(netx.FirstU128(parent), netx.LastU128(parent)) {
		out = append(out, netx.RangeToPrefixes(gap.Lo, gap.Hi, width)...)
	}
	return out
}

// SpaceEntry is one row of SubnetSpaceAll: a free prefix or an existing one.
type SpaceEntry struct {
	Prefix netip.Prefix
	Free   bool
	// Index is the position of an existing prefix in the used argument (-1
	// for free space), so callers can attach the subnet record.
	Index int
}

// SubnetSpaceAll returns the free prefixes and the existing ones of parent,
// sorted by address, then by length, then existing before free (CloudCIX
// space_type=all). Existing prefixes outside parent or of another family
// are left out.
func SubnetSpaceAll(parent netip.Prefix, used []netip.Prefix) []SpaceEntry {
	parent = parent.Masked()
	var out []SpaceEntry
	for _, p := range SubnetSpace(parent, used) {
		out = append(out, SpaceEntry{Prefix: p, Free: true, Index: -1})
	}
	for i, u := range used {
		if u.IsValid() && netx.ContainsPrefix(parent, u) {
			out = append(out, SpaceEntry{Prefix: u, Index: i})
		}
	}
	slices.SortStableFunc(out, func(a, b SpaceEntry) int {
		if c := netx.ComparePrefix(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		switch {
		case a.Free == b.Free:
			return a.Index - b.Index
		case !a.Free:
			return -1
		}
		return 1
	})
	return out
}

// Carve returns a free prefix of the given length inside parent, or false.
// With bestFit false it is first-fit, the lowest aligned free prefix
// (NetBox, Nautobot, phpIPAM: four /30 from a /28 give .0 .4 .8 .12);
// with bestFit true it is carved from the smallest free block that can hold
// it, lowest first among equals (go-ipam, Neutron subnet pools).
func Carve(parent netip.Prefix, used []netip.Prefix, bits int, bestFit bool) (netip.Prefix, bool) {
	parent = parent.Masked()
	if bits < parent.Bits() || bits > parent.Addr().BitLen() {
		return netip.Prefix{}, false
	}
	var best netip.Prefix
	for _, free := range SubnetSpace(parent, used) {
		if free.Bits() > bits {
			continue
		}
		if !bestFit {
			return netip.PrefixFrom(free.Addr(), bits), true
		}
		if !best.IsValid() || free.Bits() > best.Bits() {
			best = free
		}
	}
	if !best.IsValid() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(best.Addr(), bits), true
}

// FirstOverlap returns the first prefix of others, in the given order, that
// overlaps p (one contains the other), and its index.
func FirstOverlap(p netip.Prefix, others []netip.Prefix) (netip.Prefix, int, bool) {
	for i, o := range others {
		if netx.Overlaps(p, o) {
			return o, i, true
		}
	}
	return netip.Prefix{}, -1, false
}

// MelangeCIDRCheck holds what Melange's IpBlock validation needs to know
// about a block being created (melange-facts §3 rules 3–6). The caller
// gathers the neighbour lists from state, each in the order its errors
// should be reported (Melange reports the first overlap found).
type MelangeCIDRCheck struct {
	CIDR   netip.Prefix // the candidate, normalised (host bits cleared)
	Public bool         // type == public
	// Parent is the parent block's CIDR for a subnet, invalid for a root.
	Parent netip.Prefix
	// TopLevelInNetwork: no parent, or a network_id that differs from the
	// parent's; then NetworkTopLevel is checked.
	TopLevelInNetwork bool
	// PublicRoots: the other public root blocks, of every tenant.
	PublicRoots []netip.Prefix
	// Siblings: the parent's other subnets.
	Siblings []netip.Prefix
	// NetworkTopLevel: the other top-level blocks of the same network_id,
	// excluding the block itself and its parent.
	NetworkTopLevel []netip.Prefix
}

// Errors returns the exact Melange messages for the cidr field, in Melange's
// order; nil when the CIDR is acceptable. Overlap means one CIDR contains the
// other; blocks in different networks or without one may overlap, except
// public roots.
func (c MelangeCIDRCheck) Errors() []string {
	var errs []string
	isRoot := !c.Parent.IsValid()
	if c.Public && isRoot {
		if o, _, ok := FirstOverlap(c.CIDR, c.PublicRoots); ok {
			errs = append(errs, fmt.Sprintf("cidr overlaps with public block %s", o))
		}
	}
	if !isRoot && !netx.ContainsPrefix(c.Parent, c.CIDR) {
		errs = append(errs, "cidr should be within parent block's cidr")
	}
	if !isRoot {
		if o, _, ok := FirstOverlap(c.CIDR, c.Siblings); ok {
			errs = append(errs, fmt.Sprintf("cidr overlaps with sibling %s", o))
		}
	}
	if c.TopLevelInNetwork {
		if o, _, ok := FirstOverlap(c.CIDR, c.NetworkTopLevel); ok {
			errs = append(errs, fmt.Sprintf("cidr overlaps with block %s in same network", o))
		}
	}
	return errs
}

// CloudCIXSubnetReason is why CloudCIX refuses a subnet's address_range. The
// API layer maps it to the create/update error code of the container kind
// (allocation: 113–116; parent subnet: 117–121).
type CloudCIXSubnetReason uint8

// Reasons in CloudCIX's order of checks.
const (
	SubnetOK           CloudCIXSubnetReason = iota
	SubnetVersion                           // family differs from the container's (113 / 117)
	SubnetSameAsParent                      // address_range equals the parent's, host part included (118)
	SubnetOutside                           // not inside the container (114 / 119)
	SubnetDuplicate                         // a sibling has the same address_range, host part included (115 / 120)
	SubnetOverlap                           // overlaps a sibling (116 / 121)
)

func (r CloudCIXSubnetReason) String() string {
	return [...]string{"ok", "version", "same as parent", "outside", "duplicate", "overlap"}[r]
}

// CheckCloudCIXSubnet applies CloudCIX's subnet create rules
// (iaas controllers/subnet.py) to candidate, a raw address_range with its
// host part ("10.0.0.1/24"), inside container, the allocation's or the
// parent subnet's raw address_range. Siblings are the container's other
// subnets (raw). Containment and overlap ignore host bits; the equality
// checks compare the raw strings as CloudCIX does.
func CheckCloudCIXSubnet(candidate, container netip.Prefix, containerIsParent bool, siblings []netip.Prefix) CloudCIXSubnetReason {
	if candidate.Addr().BitLen() != container.Addr().BitLen() {
		return SubnetVersion
	}
	if containerIsParent && candidate == container {
		return SubnetSameAsParent
	}
	if !netx.ContainsPrefix(container, candidate) {
		return SubnetOutside
	}
	if slices.Contains(siblings, candidate) {
		return SubnetDuplicate
	}
	if _, _, ok := FirstOverlap(candidate, siblings); ok {
		return SubnetOverlap
	}
	return SubnetOK
}

// PrivateAllocations are the three allocations CloudCIX creates for every
// project (cloudcix-facts §5.9), in order: Private Range 1..3.
var PrivateAllocations = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// ProjectSubnetReason is why a CloudCIX project subnet in gateway notation
// is refused.
type ProjectSubnetReason uint8

// Project subnet reasons.
const (
	ProjectSubnetOK         ProjectSubnetReason = iota
	ProjectSubnetNoGateway                      // the host part is the network address ("10.0.0.0/24", cloudcix-facts §5.7)
	ProjectSubnetBroadcast                      // the host part is the broadcast address (interpretation, see below)
	ProjectSubnetNotPrivate                     // not inside one of PrivateAllocations
)

// CheckProjectSubnet checks a project subnet's address_range in gateway
// notation. Besides the documented network-address rule it refuses a
// gateway on the broadcast address of a block with two or more host bits,
// which the CloudCIX reservation rules would make unusable anyway
// (interpretation), and a range outside the private allocations.
func CheckProjectSubnet(raw netip.Prefix) ProjectSubnetReason {
	p := raw.Masked()
	switch {
	case !slices.ContainsFunc(PrivateAllocations, func(a netip.Prefix) bool { return netx.ContainsPrefix(a, p) }):
		return ProjectSubnetNotPrivate
	case raw.Addr() == p.Addr() && netx.HostBits(p) > 0:
		return ProjectSubnetNoGateway
	case netx.HostBits(p) >= 2 && raw.Addr() == netx.Last(p):
		return ProjectSubnetBroadcast
	}
	return ProjectSubnetOK
}
