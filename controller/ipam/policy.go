package ipam

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"sort"

	"github.com/regentcloud/regent/pkg/netx"
)

// Policy is a Melange policy: unusable IP ranges and unusable IP octets
// (melange-facts §6). The zero Policy allows everything.
type Policy struct {
	Ranges []Range
	Octets []int64
}

// Range is a Melange "unusable ip range": the Python slice
// block[Offset : Offset+Length] of the block's address list. A negative
// Offset counts from the end; when Offset < 0 and Offset+Length ≥ 0 the slice
// runs to the end of the block. Length must be ≥ 0.
type Range struct {
	Offset int64
	Length int64
}

// Validate checks the policy's own rules (melange-facts §3 rule 14).
func (p Policy) Validate() error {
	for _, r := range p.Ranges {
		if r.Length < 0 {
			return fmt.Errorf("%w: length should be a positive integer (range offset %d length %d)", ErrInvalid, r.Offset, r.Length)
		}
	}
	return nil
}

// equal reports whether p and q disallow the same entries, in the same
// order.
func (p Policy) equal(q Policy) bool {
	return slices.Equal(p.Ranges, q.Ranges) && slices.Equal(p.Octets, q.Octets)
}

func (p Policy) clone() Policy {
	return Policy{Ranges: slices.Clone(p.Ranges), Octets: slices.Clone(p.Octets)}
}

// Resolve returns the addresses the range disallows in a block of the given
// size as offsets [from, to) from the block start, with Python slice
// semantics: ok is false for an empty slice.
//
// Interpretation: netaddr, which Melange slices with, returns the block's
// first address for a slice whose stop resolves to 0 (e.g. offset 0 length 0)
// and refuses IPv6 slices altogether; Regent applies plain slice semantics to
// both families (an empty slice disallows nothing).
func (r Range) Resolve(size *big.Int) (from, to *big.Int, ok bool) {
	start := big.NewInt(r.Offset)
	var stop *big.Int
	end := big.NewInt(0).Add(big.NewInt(r.Offset), big.NewInt(r.Length))
	if r.Offset < 0 && end.Sign() >= 0 {
		stop = new(big.Int).Set(size)
	} else {
		stop = end
	}
	clamp := func(v *big.Int) *big.Int {
		if v.Sign() < 0 {
			v.Add(v, size)
			if v.Sign() < 0 {
				v.SetInt64(0)
			}
		} else if v.Cmp(size) > 0 {
			v.Set(size)
		}
		return v
	}
	start, stop = clamp(start), clamp(stop)
	if stop.Cmp(start) <= 0 {
		return nil, nil, false
	}
	return start, stop, true
}

// octetRule holds the disallowed values of the last word (the last octet of
// an IPv4 address, the last 16-bit group of an IPv6 address), sorted, with the
// end of each run of consecutive values precomputed so that the next allowed
// value is one binary search away.
type octetRule struct {
	bits    uint     // 8 or 16
	values  []uint32 // sorted, unique, < 1<<bits
	runEnd  []uint32 // runEnd[i]: last value of the consecutive run containing values[i]
	allNone bool     // every value is disallowed
}

func newOctetRule(octets []int64, bits uint) octetRule {
	r := octetRule{bits: bits}
	limit := int64(1) << bits
	for _, o := range octets {
		if o >= 0 && o < limit {
			r.values = append(r.values, uint32(o))
		}
	}
	slices.Sort(r.values)
	r.values = slices.Compact(r.values)
	r.runEnd = make([]uint32, len(r.values))
	for i := len(r.values) - 1; i >= 0; i-- {
		if i+1 < len(r.values) && r.values[i+1] == r.values[i]+1 {
			r.runEnd[i] = r.runEnd[i+1]
		} else {
			r.runEnd[i] = r.values[i]
		}
	}
	r.allNone = int64(len(r.values)) == limit
	return r
}

func (r *octetRule) active() bool { return len(r.values) > 0 }

func (r *octetRule) disallows(v uint32) bool {
	_, found := slices.BinarySearch(r.values, v)
	return found
}

// nextAllowed returns the smallest allowed value ≥ v, or 1<<bits if none.
func (r *octetRule) nextAllowed(v uint32) uint32 {
	i, found := slices.BinarySearch(r.values, v)
	if !found {
		return v
	}
	return r.runEnd[i] + 1
}

// countIn returns how many values of [lo, hi] have a disallowed last word.
func (r *octetRule) countIn(lo, hi netx.U128) netx.U128 {
	if !r.active() || hi.Less(lo) {
		return netx.U128{}
	}
	mask := netx.LowMask(r.bits)
	// upTo(x) = number of y in [0, x] with y mod 2^bits == v.
	upTo := func(x netx.U128, v uint32) netx.U128 {
		n := x.Rsh(r.bits)
		if x.And(mask).Lo >= uint64(v) {
			n = n.Add64(1)
		}
		return n
	}
	var total netx.U128
	for _, v := range r.values {
		c := upTo(hi, v)
		if !lo.IsZero() {
			below, _ := lo.Dec()
			c = c.Sub(upTo(below, v))
		}
		total = total.AddSat(c)
	}
	return total
}

// derived is everything a Block computes from its prefix, dialect, gateway
// and policy. It is immutable once built and shared between clones.
type derived struct {
	static []netx.Interval // reserved for the sequential generator: network, broadcast, gateway, policy ranges; merged, sorted
	points []netx.U128     // reserved for the MAC generators: network, broadcast, gateway; sorted
	ranges []netx.Interval // the policy ranges alone, merged, sorted
	octets octetRule
	usable netx.U128
}

func buildDerived(p netip.Prefix, d Dialect, gw netip.Addr, pol Policy) *derived {
	first, last := netx.FirstU128(p), netx.LastU128(p)
	res := d.Reservation(p)
	var points []netx.U128
	if res.Network {
		points = append(points, first)
	}
	if res.Broadcast {
		points = append(points, last)
	}
	if gw.IsValid() && p.Contains(gw) {
		points = append(points, netx.AddrToU128(gw))
	}
	slices.SortFunc(points, netx.U128.Cmp)
	points = slices.Compact(points)

	size := netx.Span(p).Big()
	size.Add(size, big.NewInt(1))
	var ranges []netx.Interval
	for _, r := range pol.Ranges {
		from, to, ok := r.Resolve(size)
		if !ok {
			continue
		}
		lo, _ := netx.U128FromBig(from)
		hi, _ := netx.U128FromBig(to.Sub(to, big.NewInt(1)))
		ranges = append(ranges, netx.Interval{Lo: first.Add(lo), Hi: first.Add(hi)})
	}
	ranges = netx.FromIntervals(0, ranges).Intervals()

	static := slices.Clone(ranges)
	for _, pt := range points {
		static = append(static, netx.Interval{Lo: pt, Hi: pt})
	}
	static = netx.FromIntervals(0, static).Intervals()

	bits := uint(8)
	if p.Addr().Is6() {
		bits = 16
	}
	dv := &derived{static: static, points: points, ranges: ranges, octets: newOctetRule(pol.Octets, bits)}

	// usable = |block| − |static ∪ octet-excluded|
	excluded := dv.octets.countIn(first, last)
	for _, iv := range static {
		excluded = excluded.AddSat(iv.Len()).Sub(dv.octets.countIn(iv.Lo, iv.Hi))
	}
	switch {
	case excluded.IsZero():
		dv.usable = netx.Size(p)
	case netx.Span(p).Less(excluded):
		dv.usable = netx.U128{}
	default:
		dv.usable = netx.Span(p).Sub(excluded).Add64(1)
	}
	return dv
}

// staticAt returns the static interval containing x.
func (d *derived) staticAt(x netx.U128) (netx.Interval, bool) {
	return findInterval(d.static, x)
}

func findInterval(ivs []netx.Interval, x netx.U128) (netx.Interval, bool) {
	i := sort.Search(len(ivs), func(i int) bool { return !ivs[i].Hi.Less(x) })
	if i < len(ivs) && !x.Less(ivs[i].Lo) {
		return ivs[i], true
	}
	return netx.Interval{}, false
}

func (d *derived) isPoint(x netx.U128) bool {
	_, found := slices.BinarySearchFunc(d.points, x, netx.U128.Cmp)
	return found
}
