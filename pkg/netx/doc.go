// Package netx holds the address arithmetic shared by the controller and the
// agent: 128-bit integers (U128) and conversions to and from netip.Addr,
// prefix math (first/last address, size, containment, masks, range ↔ CIDR
// decomposition), strict parsers with clear errors for prefixes, gateway
// notation ("10.0.0.1/24"), MAC addresses and MAC ranges, reverse DNS names,
// and IntervalSet, a persistent (immutable) ordered set of disjoint intervals
// over U128.
//
// Everything here is pure and deterministic: no clocks, no randomness, no I/O
// and no output that depends on map iteration order, so it may be called from
// the raft FSM.
//
// # Addresses as integers
//
// An IPv4 address is the U128 whose low 32 bits are the address; an IPv6
// address is its 128-bit big-endian value. IPv4 and IPv6 values therefore
// overlap numerically: callers keep the family next to the value (a prefix
// always does). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv6 here;
// use netip.Addr.Unmap first where the IPv4 meaning is wanted.
//
// # IntervalSet
//
// IntervalSet stores sorted, disjoint, non-adjacent closed intervals in a
// persistent treap: every update returns a new set and shares all untouched
// nodes with the old one, so a snapshot is just a copy of the value (O(1)) and
// old versions stay valid for MVCC readers. Insert, Remove, Contains, Find,
// NextFree (first non-member at or after x) and CountBelow are O(log n) in
// the number of stored intervals, independent of how many addresses those
// intervals cover; Gaps (the complement within a range) is O(log n + k) for
// k gaps. Node priorities are a keyed hash of the interval start, so the shape
// of the tree is a function of the set's contents and its seed only: two
// replicas that apply the same operations build identical trees. See
// IntervalSet for why a treap rather than a sorted slice or a B-tree.
package netx
