// Package ipam is Regent's pure IP and MAC allocation engine: address blocks
// with reserved-address rules and Melange policies, next-free search, explicit
// allocation, soft deallocation with restore and purge, IPv6 addresses derived
// from MACs (modified EUI-64 and Melange's tenant-hash generator), MAC ranges,
// subnet free-space (CloudCIX subnet_space), the overlap rules of both API
// dialects and the CloudCIX ip_validator.
//
// The package does no I/O and reads no clock: every result depends only on
// the arguments and the receiver's state, and nothing is returned in map
// iteration order, so the raft FSM can call it from Apply (DESIGN.md §3). Time
// enters only as arguments (the command's time).
//
// # State and snapshots
//
// A Block (and a MACSet) is a small struct over persistent netx.IntervalSets
// and persistent ordered maps. Its methods mutate the receiver, but Clone is
// O(1) and the clone shares every structure with the original, which is
// never affected by later changes to the clone. The state layer therefore
// does, inside one memdb write transaction:
//
//	nb := old.Clone()
//	addr, err := nb.AllocateNext(req)
//	txn.Insert("ipam_blocks", rowWith(nb))
//
// and readers holding old (an MVCC snapshot) keep seeing the old block.
//
// # Cost
//
// NextFree, Allocate, Release, Restore and Contains are O(log n) in the number
// of held intervals plus O(p·log p) in the number of policy entries,
// independent of the block's size: no /64 or /8 is ever enumerated.
// Coalescing keeps n at the number of runs of held addresses, not the number
// of addresses. Policy, gateway and generator edits rebuild a derived index in
// O(n) and Purge costs O(k log n) for k purged addresses.
//
// The sequential generator keeps a second interval set next to the held one:
// held runs extended over the reserved or policy-excluded addresses right
// above them ("glue"). Without it, an octet policy (say .0 and .255 unusable)
// on a well-filled /8 splits the held addresses into one run per /24 and a
// search would step through every run; with it the next free address is the
// end of one interval. NextFree stays at 20–50 ns from 10k to 1M held
// addresses (BenchmarkNextFree).
//
// # Interpretations of the fact sheets
//
//   - /31, /32, /127, /128: nothing but the gateway is reserved, in both
//     dialects (RFC 3021, RFC 6164; netaddr's broadcast is None there).
//   - Melange reserves the last address of IPv6 blocks too ("broadcast",
//     melange-facts §17.1); CloudCIX additionally reserves the first, for
//     IPv6 the subnet-router anycast address.
//   - NextFree is the lowest free address. Melange's counter never goes back
//     to values it skipped and hands out purged addresses before new ones;
//     both give the same sequence except after a policy edit re-allows a
//     skipped address, or when a purged address lies above the counter.
//     Melange's is_full flag (which also refuses specific addresses until a
//     purge) is left to the state layer.
//   - Unusable ranges follow Python slice semantics exactly, for IPv4 and
//     IPv6; netaddr's quirks (a slice whose stop is 0 yields the first
//     address; IPv6 slices raise) are not reproduced. Unusable octets match
//     the last octet (IPv4) or last 16-bit group (IPv6); other values never
//     match. The sequential generator applies the policy in both families;
//     the MAC-based generators ignore it, as Melange's IPv6 generators do.
//   - The MAC-based generators' candidates wrap around (the MAC modulo
//     2^48); the block is full once every candidate is taken, where Melange
//     would loop forever.
//   - Release of an already released address is ErrReleased (Melange
//     re-stamps it; state does so with Restore then Release); release and
//     purge times have their monotonic clock
//     reading stripped. Purge(cutoff) is inclusive: callers pass now − keep.
//   - MACs: the lowest free MAC of the first range with room (Melange:
//     free list, then counter). LocalUnicast enforces cloudcix-facts §6.6.
//   - ip_validator: addresses parse as inet_pton (no zones, no shorthand);
//     masks follow Python int() (" 24", "+8", "2_4" are integers); an empty
//     BroadcastAddress stands for netaddr's None; is_private is "not
//     globally reachable"; parent_network comes from this request only.
//   - Melange rule 3 (public blocks must not overlap) applies to root blocks
//     only, as the fact sheet states it; the 2012 code also checked subnets.
//   - CheckProjectSubnet also refuses a gateway on the broadcast address.
package ipam
