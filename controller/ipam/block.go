package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/regentcloud/regent/pkg/netx"
)

// Dialect selects which addresses of a block are reserved besides the
// gateway.
//
// Both dialects reserve nothing but the gateway in blocks with fewer than two
// host bits — IPv4 /31 and /32, IPv6 /127 and /128 — so both addresses of a
// point-to-point link are usable (RFC 3021, RFC 6164). This matches the
// netaddr releases whose IPNetwork.broadcast is None for those sizes (the
// library Melange and CloudCIX use; melange-facts §4, §17.1) and NetBox and
// phpIPAM in the comparison table.
type Dialect uint8

const (
	// Melange: the network address is allocatable (reserving it is the job
	// of a policy, melange-facts §4) and the last address — netaddr's
	// "broadcast", also for IPv6 — is skipped.
	Melange Dialect = iota + 1
	// CloudCIX: the network and the last ("broadcast") address are both
	// reserved, for IPv4 and IPv6, as CloudCIX refuses VM addresses equal
	// to a subnet's network, broadcast or gateway address (cloudcix-facts
	// §5.3) and counts floating IPs as size − 2 (§6.3). For IPv6 the network
	// address is the RFC 4291 subnet-router anycast address.
	CloudCIX
)

// Reservation says which of a block's edge addresses are reserved.
type Reservation struct {
	Network   bool // the first address
	Broadcast bool // the last address
}

// Reservation returns the reserved edge addresses of p under d.
func (d Dialect) Reservation(p netip.Prefix) Reservation {
	if netx.HostBits(p) < 2 {
		return Reservation{}
	}
	return Reservation{Network: d == CloudCIX, Broadcast: true}
}

func (d Dialect) String() string {
	switch d {
	case Melange:
		return "melange"
	case CloudCIX:
		return "cloudcix"
	}
	return fmt.Sprintf("Dialect(%d)", uint8(d))
}

// Generator chooses how NextFree picks an address.
type Generator uint8

const (
	// Sequential hands out the lowest free address that is not reserved
	// and not disallowed by the policy.
	Sequential Generator = iota
	// EUI64 derives IPv6 addresses from the interface MAC: the modified
	// EUI-64 interface identifier (RFC 4291 appendix A; Melange's
	// RFC2462IpV6Generator), then MAC+1, MAC+2, … until one is free.
	EUI64
	// TenantHash is Melange's default IPv6 generator: interface identifier
	// sha1(tenant)[:4] << 32 | 0xff << 24 | MAC & 0xffffff, then MAC+1, …
	TenantHash
)

func (g Generator) String() string {
	switch g {
	case Sequential:
		return "sequential"
	case EUI64:
		return "eui64"
	case TenantHash:
		return "tenant-hash"
	}
	return fmt.Sprintf("Generator(%d)", uint8(g))
}

// Config describes a block.
type Config struct {
	// Prefix is the block's CIDR; host bits are cleared.
	Prefix netip.Prefix
	// Gateway is optional. It must be of Prefix's family; as in Melange it
	// may lie outside the prefix (then it reserves nothing).
	Gateway netip.Addr
	// Dialect decides the reserved edge addresses; zero means Melange.
	Dialect Dialect
	// Generator is the NextFree strategy. EUI64 and TenantHash need IPv6.
	Generator Generator
	// Policy lists unusable ranges and octets.
	Policy Policy
	// Seed keys the hash that shapes the block's trees (see
	// netx.IntervalSet). Use a per-cluster secret; any fixed value is
	// deterministic.
	Seed uint64
}

// MelangeDefaultGateway returns the gateway the Melange API spec gives a block
// created without one: its second address, or no gateway for a single-address
// block (melange-facts, precedence note).
func MelangeDefaultGateway(p netip.Prefix) netip.Addr {
	if netx.HostBits(p) == 0 {
		return netip.Addr{}
	}
	a, _ := netx.AddrAt(p.Masked(), netx.U64(1))
	return a
}

// Request carries what a MAC-based generator needs.
type Request struct {
	MAC    netx.MAC // the interface MAC (EUI64, TenantHash)
	HasMAC bool
	Tenant string // the tenant id hashed by TenantHash (used_by_tenant)
}

// Block is one address block: its configuration and the addresses it holds.
// Held addresses are allocated or soft-deallocated; both are unavailable
// until a soft-deallocated one is purged.
//
// Methods with pointer receivers mutate the block; Clone is O(1) and
// isolates the copy. A Block is not safe for concurrent mutation; concurrent
// readers of a block nobody mutates are fine.
type Block struct {
	prefix netip.Prefix
	first  netx.U128
	last   netx.U128
	width  int
	cfg    Config // Prefix masked; Policy owned (never mutated in place)
	d      *derived

	// taken holds every held address (allocated or soft-deallocated).
	taken netx.IntervalSet
	// blocked is taken plus "glue": the addresses right above each held
	// run that the sequential generator may not hand out anyway (reserved
	// or disallowed by the policy). Invariant: every address just past an
	// interval of blocked is allowed and free (or beyond the block), so the
	// sequential NextFree needs one look-up in blocked. Rebuilt when the
	// policy, gateway or dialect changes.
	blocked netx.IntervalSet
	dealloc deallocIndex
	// rebuilds counts reconfigure's rebuilds (Rebuilds).
	rebuilds int
}

// NewBlock returns an empty block.
func NewBlock(cfg Config) (*Block, error) {
	if !cfg.Prefix.IsValid() {
		return nil, fmt.Errorf("%w: invalid prefix", ErrInvalid)
	}
	cfg.Prefix = cfg.Prefix.Masked()
	if cfg.Dialect == 0 {
		cfg.Dialect = Melange
	}
	if cfg.Dialect != Melange && cfg.Dialect != CloudCIX {
		return nil, fmt.Errorf("%w: unknown dialect %d", ErrInvalid, cfg.Dialect)
	}
	if err := checkGateway(cfg.Prefix, cfg.Gateway); err != nil {
		return nil, err
	}
	if err := checkGenerator(cfg.Prefix, cfg.Generator); err != nil {
		return nil, err
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	cfg.Policy = cfg.Policy.clone()
	b := &Block{
		prefix:  cfg.Prefix,
		first:   netx.FirstU128(cfg.Prefix),
		last:    netx.LastU128(cfg.Prefix),
		width:   cfg.Prefix.Addr().BitLen(),
		cfg:     cfg,
		taken:   netx.NewIntervalSet(cfg.Seed),
		blocked: netx.NewIntervalSet(cfg.Seed),
		dealloc: newDeallocIndex(cfg.Seed),
	}
	b.d = buildDerived(b.prefix, cfg.Dialect, cfg.Gateway, cfg.Policy)
	return b, nil
}

func checkGateway(p netip.Prefix, gw netip.Addr) error {
	if gw.IsValid() && (gw.BitLen() != p.Addr().BitLen() || gw.Zone() != "") {
		return fmt.Errorf("%w: gateway %s is not an address of the block's family", ErrInvalid, gw)
	}
	return nil
}

func checkGenerator(p netip.Prefix, g Generator) error {
	switch g {
	case Sequential:
		return nil
	case EUI64, TenantHash:
		if !p.Addr().Is6() {
			return fmt.Errorf("%w: the %s generator needs an IPv6 block", ErrInvalid, g)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown generator %d", ErrInvalid, g)
}

// Clone returns an independent copy in O(1); the two share structure but
// changes to one never show in the other.
func (b *Block) Clone() *Block {
	c := *b
	return &c
}

// Prefix returns the block's CIDR.
func (b *Block) Prefix() netip.Prefix { return b.prefix }

// Config returns the block's configuration (a copy).
func (b *Block) Config() Config {
	c := b.cfg
	c.Policy = c.Policy.clone()
	return c
}

// Gateway returns the gateway (the invalid Addr if none).
func (b *Block) Gateway() netip.Addr { return b.cfg.Gateway }

// Broadcast returns the block's last address as netaddr reports it: the
// invalid Addr for blocks with fewer than two host bits (melange-facts §1:
// `broadcast` is also shown for IPv6).
func (b *Block) Broadcast() netip.Addr {
	if netx.HostBits(b.prefix) < 2 {
		return netip.Addr{}
	}
	return netx.Last(b.prefix)
}

// SetGateway changes the gateway and rebuilds the derived index (O(n)).
func (b *Block) SetGateway(gw netip.Addr) error {
	if err := checkGateway(b.prefix, gw); err != nil {
		return err
	}
	b.cfg.Gateway = gw
	b.reconfigure()
	return nil
}

// SetPolicy replaces the policy and rebuilds the derived index (O(n)).
// Addresses already held stay held even if the new policy disallows them.
func (b *Block) SetPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	b.cfg.Policy = p.clone()
	b.reconfigure()
	return nil
}

// SetGenerator changes the NextFree strategy.
func (b *Block) SetGenerator(g Generator) error {
	if err := checkGenerator(b.prefix, g); err != nil {
		return err
	}
	b.cfg.Generator = g
	return nil
}

// SetDialect changes the reserved-address rules and rebuilds the derived
// index (O(n)).
func (b *Block) SetDialect(d Dialect) error {
	if d != Melange && d != CloudCIX {
		return fmt.Errorf("%w: unknown dialect %d", ErrInvalid, d)
	}
	b.cfg.Dialect = d
	b.reconfigure()
	return nil
}

// Reconfigure sets the gateway, the generator and the policy at once, with
// the errors of SetGateway, SetGenerator and SetPolicy (joined in that
// order; nothing changes then). The derived index is rebuilt (O(n)) once,
// and only when the gateway or the policy differs from the block's: a
// block whose held addresses and configuration are unchanged has the same
// derived index, so what it hands out is the same.
func (b *Block) Reconfigure(gw netip.Addr, g Generator, p Policy) error {
	if err := errors.Join(checkGateway(b.prefix, gw), checkGenerator(b.prefix, g), p.Validate()); err != nil {
		return err
	}
	b.cfg.Generator = g
	if gw == b.cfg.Gateway && p.equal(b.cfg.Policy) {
		return nil
	}
	b.cfg.Gateway, b.cfg.Policy = gw, p.clone()
	b.reconfigure()
	return nil
}

// Rebuilds is how many times the block's derived index was rebuilt by a
// change of its configuration (a test hook: each is O(n)).
func (b *Block) Rebuilds() int { return b.rebuilds }

func (b *Block) reconfigure() {
	b.rebuilds++
	b.d = buildDerived(b.prefix, b.cfg.Dialect, b.cfg.Gateway, b.cfg.Policy)
	b.rebuildBlocked()
}

// rebuildBlocked recomputes blocked from taken: each held run extended over
// the addresses above it that the sequential generator may not hand out.
func (b *Block) rebuildBlocked() {
	ivs := make([]netx.Interval, 0, b.taken.Len())
	b.taken.Walk(func(iv netx.Interval) bool {
		ivs = append(ivs, netx.Interval{Lo: iv.Lo, Hi: b.glueEnd(iv.Hi)})
		return true
	})
	b.blocked = netx.FromIntervals(b.cfg.Seed, ivs)
}

// glueEnd returns the last address of the run of disallowed addresses that
// starts right above x (x itself if the next address is allowed).
func (b *Block) glueEnd(x netx.U128) netx.U128 {
	if !x.Less(b.last) {
		return x
	}
	next, _ := x.Inc()
	a, ok := b.allowedFrom(next)
	if !ok {
		return b.last
	}
	end, _ := a.Dec()
	return end
}

// allowedFrom returns the smallest address ≥ x of the block that the
// sequential generator may hand out if free: not reserved and allowed by the
// policy. It jumps over static intervals and runs of disallowed octets
// arithmetically; the loop runs O(p) times for p policy entries.
func (b *Block) allowedFrom(x netx.U128) (netx.U128, bool) {
	oct := &b.d.octets
	if oct.allNone {
		return netx.U128{}, false
	}
	mask := netx.LowMask(oct.bits)
	for !b.last.Less(x) {
		if iv, ok := b.d.staticAt(x); ok {
			next, over := iv.Hi.Inc()
			if over {
				return netx.U128{}, false
			}
			x = next
			continue
		}
		if oct.active() {
			v := uint32(x.And(mask).Lo)
			if u := oct.nextAllowed(v); u != v {
				if u>>oct.bits == 0 {
					x = x.Add64(uint64(u - v))
				} else {
					next, over := x.Or(mask).Inc() // start of the next group
					if over {
						return netx.U128{}, false
					}
					x = next
				}
				continue
			}
		}
		return x, true
	}
	return netx.U128{}, false
}

// Why returns the reason a cannot be allocated explicitly, in Melange's
// order of checks, or ReasonNone if it can.
func (b *Block) Why(a netip.Addr) Reason {
	if a.Zone() != "" || !b.prefix.Contains(a) {
		return ReasonOutside
	}
	x := netx.AddrToU128(a)
	if r := b.reserved(x); r != ReasonNone {
		return r
	}
	if b.taken.Contains(x) {
		if _, ok := b.dealloc.get(x); ok {
			return ReasonDeallocated
		}
		return ReasonAllocated
	}
	return b.policyReason(x)
}

func (b *Block) reserved(x netx.U128) Reason {
	if !b.d.isPoint(x) {
		return ReasonNone
	}
	if b.cfg.Gateway.IsValid() && netx.AddrToU128(b.cfg.Gateway) == x {
		return ReasonGateway
	}
	if x == b.last {
		return ReasonBroadcast
	}
	return ReasonNetwork
}

func (b *Block) policyReason(x netx.U128) Reason {
	if _, ok := findInterval(b.d.ranges, x); ok {
		return ReasonPolicyRange
	}
	if b.d.octets.active() && b.d.octets.disallows(uint32(x.And(netx.LowMask(b.d.octets.bits)).Lo)) {
		return ReasonPolicyOctet
	}
	return ReasonNone
}

// Allocate records a as allocated after the checks of a specific-address
// request: inside the block, not reserved, not held (a soft-deallocated
// address is still held) and allowed by the policy.
func (b *Block) Allocate(a netip.Addr) error {
	if r := b.Why(a); r != ReasonNone {
		return addrErr("allocate", a, r)
	}
	b.hold(netx.AddrToU128(a))
	return nil
}

func (b *Block) hold(x netx.U128) {
	b.taken = b.taken.Add(x)
	b.blocked = b.blocked.Insert(x, b.glueEnd(x))
}

// NextFree returns the address the block's generator would hand out next,
// without allocating it: for Sequential the lowest address that is free,
// not reserved and allowed by the policy; for EUI64 and TenantHash the first
// free candidate derived from req.MAC that is not the gateway or a reserved
// edge address (Melange does not apply the policy to generated IPv6
// addresses). ErrFull when there is none.
func (b *Block) NextFree(req Request) (netip.Addr, error) {
	x, err := b.nextFree(req)
	if err != nil {
		return netip.Addr{}, err
	}
	return netx.MustU128ToAddr(x, b.width), nil
}

func (b *Block) nextFree(req Request) (netx.U128, error) {
	var x netx.U128
	var ok bool
	switch b.cfg.Generator {
	case Sequential:
		x, ok = b.nextFreeSequential(b.first)
	default:
		if !req.HasMAC {
			return netx.U128{}, ErrMACRequired
		}
		x, ok = b.nextFreeFromMAC(req)
	}
	if !ok {
		return netx.U128{}, fmt.Errorf("ipam: %s: %w", b.prefix, ErrFull)
	}
	return x, nil
}

// nextFreeSequential: the lowest allowed address ≥ from not in blocked.
// Because of the blocked invariant the loop runs at most twice.
func (b *Block) nextFreeSequential(from netx.U128) (netx.U128, bool) {
	x := from
	for {
		var ok bool
		if x, ok = b.allowedFrom(x); !ok {
			return netx.U128{}, false
		}
		iv, held := b.blocked.Find(x)
		if !held {
			return x, true
		}
		next, over := iv.Hi.Inc()
		if over {
			return netx.U128{}, false
		}
		x = next
	}
}

// AllocateNext allocates and returns NextFree(req).
func (b *Block) AllocateNext(req Request) (netip.Addr, error) {
	x, err := b.nextFree(req)
	if err != nil {
		return netip.Addr{}, err
	}
	b.hold(x)
	return netx.MustU128ToAddr(x, b.width), nil
}

// Release soft-deallocates an allocated address at the given time (the
// command's time): it stays held — re-allocating it is ErrInUse — until
// Restore or Purge.
func (b *Block) Release(a netip.Addr, at time.Time) error {
	x, err := b.heldAddr("release", a)
	if err != nil {
		return err
	}
	if _, ok := b.dealloc.get(x); ok {
		return &AddrError{Op: "release", Addr: a, Err: ErrReleased}
	}
	b.dealloc = b.dealloc.add(x, at.Round(0))
	return nil
}

// Restore turns a soft-deallocated address back into an allocated one.
func (b *Block) Restore(a netip.Addr) error {
	x, err := b.heldAddr("restore", a)
	if err != nil {
		return err
	}
	if _, ok := b.dealloc.get(x); !ok {
		return &AddrError{Op: "restore", Addr: a, Err: ErrNotReleased}
	}
	b.dealloc = b.dealloc.remove(x)
	return nil
}

func (b *Block) heldAddr(op string, a netip.Addr) (netx.U128, error) {
	if a.Zone() != "" || !b.prefix.Contains(a) {
		return netx.U128{}, addrErr(op, a, ReasonOutside)
	}
	x := netx.AddrToU128(a)
	if !b.taken.Contains(x) {
		return netx.U128{}, &AddrError{Op: op, Addr: a, Err: ErrNotAllocated}
	}
	return x, nil
}

// Free frees one held address at once, allocated or soft-deallocated: the
// hard delete of the CloudCIX dialect, where there is no retention.
func (b *Block) Free(a netip.Addr) error {
	x, err := b.heldAddr("free", a)
	if err != nil {
		return err
	}
	if _, ok := b.dealloc.get(x); ok {
		b.dealloc = b.dealloc.remove(x)
	}
	b.free(x)
	return nil
}

// Released is a soft-deallocated address and the time it was released.
type Released struct {
	Addr netip.Addr
	At   time.Time
}

// Purge frees every soft-deallocated address released at or before cutoff
// (inclusive, as Melange's purge job: deallocated_at <= now − keep) and
// returns them in address order. O(k log n) for k purged addresses.
func (b *Block) Purge(cutoff time.Time) []Released {
	cutoff = cutoff.Round(0)
	gone, keep := b.dealloc.byTime.cut(func(k timeKey) bool { return !k.at.After(cutoff) })
	if gone.len() == 0 {
		return nil
	}
	out := make([]Released, 0, gone.len())
	byAddr := b.dealloc.byAddr
	gone.walk(func(k timeKey, _ struct{}) bool {
		out = append(out, Released{Addr: netx.MustU128ToAddr(k.addr, b.width), At: k.at})
		byAddr = byAddr.del(addrKey(k.addr))
		b.free(k.addr)
		return true
	})
	b.dealloc = deallocIndex{byAddr: byAddr, byTime: keep}
	slices.SortFunc(out, func(x, y Released) int { return x.Addr.Compare(y.Addr) })
	return out
}

// free drops x from the held set and keeps blocked tidy: every interval of
// blocked starts with a held address and its glue is needed.
//   - An x the sequential generator may not hand out any more (reserved or
//     disallowed since it was allocated) stays in blocked when the run below
//     ends right under it: it is that run's glue now.
//   - Otherwise x leaves blocked, and so does the glue run right above it,
//     which no longer follows a held address.
func (b *Block) free(x netx.U128) {
	b.taken = b.taken.Delete(x)
	if a, ok := b.allowedFrom(x); !ok || a != x {
		if below, under := x.Dec(); !under && !below.Less(b.first) && b.blocked.Contains(below) {
			return
		}
	}
	b.blocked = b.blocked.Delete(x)
	if x == b.last {
		return
	}
	above, _ := x.Inc()
	g, ok := b.blocked.Find(above)
	if !ok || g.Lo != above {
		return
	}
	end := g.Hi
	if t, ok := b.taken.Ceil(above); ok && !g.Hi.Less(t.Lo) {
		end, _ = t.Lo.Dec()
	}
	if !end.Less(above) {
		b.blocked = b.blocked.Remove(above, end)
	}
}

// State describes one address of a block.
type State uint8

// Address states.
const (
	Free        State = iota // not held
	Allocated                // held by an allocation
	Deallocated              // soft-deallocated, held until purged
)

func (s State) String() string {
	switch s {
	case Free:
		return "free"
	case Allocated:
		return "allocated"
	case Deallocated:
		return "deallocated"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// State returns a's state and, for a deallocated address, its release time.
// Addresses outside the block are Free.
func (b *Block) State(a netip.Addr) (State, time.Time) {
	if !b.prefix.Contains(a) {
		return Free, time.Time{}
	}
	x := netx.AddrToU128(a)
	if !b.taken.Contains(x) {
		return Free, time.Time{}
	}
	if at, ok := b.dealloc.get(x); ok {
		return Deallocated, at
	}
	return Allocated, time.Time{}
}

// Held returns the held addresses (allocated and deallocated) as intervals
// of integers (see netx.AddrToU128). The set is immutable; keeping it is an
// O(1) snapshot.
func (b *Block) Held() netx.IntervalSet { return b.taken }

// ReleasedAddrs returns the soft-deallocated addresses in address order.
func (b *Block) ReleasedAddrs() []Released {
	out := make([]Released, 0, b.dealloc.len())
	b.dealloc.byAddr.walk(func(k addrKey, at time.Time) bool {
		out = append(out, Released{Addr: netx.MustU128ToAddr(netx.U128(k), b.width), At: at})
		return true
	})
	return out
}

// Walk calls fn for every held address in ascending order until fn returns
// false. It costs O(n) in the number of held addresses.
func (b *Block) Walk(fn func(a netip.Addr, s State, releasedAt time.Time) bool) {
	b.taken.Walk(func(iv netx.Interval) bool {
		for x := iv.Lo; ; {
			st, at := Allocated, time.Time{}
			if t, ok := b.dealloc.get(x); ok {
				st, at = Deallocated, t
			}
			if !fn(netx.MustU128ToAddr(x, b.width), st, at) {
				return false
			}
			if x == iv.Hi {
				return true
			}
			x, _ = x.Inc()
		}
	})
}

// Load replaces the block's contents with the given held addresses, for
// rebuilding a block from stored rows (snapshot restore, start-up). Unlike
// Allocate it skips the reservation and policy checks — rows may predate a
// policy or gateway change — but every address must lie in the block and
// appear once. Cost O(n log n).
func (b *Block) Load(allocated []netip.Addr, released []Released) error {
	ivs := make([]netx.Interval, 0, len(allocated)+len(released))
	dealloc := newDeallocIndex(b.cfg.Seed)
	add := func(a netip.Addr) (netx.U128, error) {
		if a.Zone() != "" || !b.prefix.Contains(a) {
			return netx.U128{}, addrErr("load", a, ReasonOutside)
		}
		x := netx.AddrToU128(a)
		ivs = append(ivs, netx.Interval{Lo: x, Hi: x})
		return x, nil
	}
	for _, a := range allocated {
		if _, err := add(a); err != nil {
			return err
		}
	}
	for _, r := range released {
		x, err := add(r.Addr)
		if err != nil {
			return err
		}
		dealloc = dealloc.add(x, r.At.Round(0))
	}
	taken := netx.FromIntervals(b.cfg.Seed, ivs)
	if taken.Count() != netx.U64(uint64(len(ivs))) {
		return &AddrError{Op: "load", Err: fmt.Errorf("%w: duplicate address", ErrInUse)}
	}
	b.taken, b.dealloc = taken, dealloc
	b.rebuildBlocked()
	return nil
}

// Utilisation counts a block's addresses for the IPAM utilisation gauge.
type Utilisation struct {
	Allocated   netx.U128 // held and not deallocated
	Deallocated netx.U128 // soft-deallocated, held until purged
	// Usable is the number of addresses the sequential generator could ever
	// hand out: the block size minus the gateway, the reserved edge
	// addresses and what the policy disallows.
	Usable netx.U128
}

// Ratio returns Allocated / Usable (0 for a block with nothing usable).
func (u Utilisation) Ratio() float64 {
	if u.Usable.IsZero() {
		return 0
	}
	return u.Allocated.Float64() / u.Usable.Float64()
}

// HeldRatio returns (Allocated + Deallocated) / Usable.
func (u Utilisation) HeldRatio() float64 {
	if u.Usable.IsZero() {
		return 0
	}
	return u.Allocated.AddSat(u.Deallocated).Float64() / u.Usable.Float64()
}

// Utilisation returns the block's counts in O(1).
func (b *Block) Utilisation() Utilisation {
	dealloc := netx.U64(uint64(b.dealloc.len()))
	return Utilisation{
		Allocated:   b.taken.Count().Sub(dealloc),
		Deallocated: dealloc,
		Usable:      b.d.usable,
	}
}

// OldestRelease returns when the longest-held soft-deallocated address was
// released; ok is false when there is none. It costs O(log n).
func (b *Block) OldestRelease() (at time.Time, ok bool) {
	b.dealloc.byTime.walk(func(k timeKey, _ struct{}) bool {
		at, ok = k.at, true
		return false
	})
	return at, ok
}
