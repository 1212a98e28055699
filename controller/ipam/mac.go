package ipam

import (
	"fmt"

	"github.com/regentcloud/regent/pkg/netx"
)

// MACSet is the set of MAC addresses in use. Melange keeps MACs unique
// across all ranges (unique address), so one set serves every range and
// overlapping ranges cannot hand out the same MAC twice. Like Block, its
// methods mutate the receiver and Clone is an O(1) isolated copy.
type MACSet struct {
	used netx.IntervalSet
}

// NewMACSet returns an empty set (seed: see netx.IntervalSet).
func NewMACSet(seed uint64) *MACSet { return &MACSet{used: netx.NewIntervalSet(seed)} }

// Clone returns an independent copy in O(1).
func (s *MACSet) Clone() *MACSet {
	c := *s
	return &c
}

// Contains reports whether m is allocated.
func (s *MACSet) Contains(m netx.MAC) bool { return s.used.Contains(netx.U64(uint64(m))) }

// Len returns the number of allocated MACs.
func (s *MACSet) Len() uint64 { return s.used.Count().Lo }

// CountIn returns how many MACs of r are allocated, in O(log n).
func (s *MACSet) CountIn(r netx.MACRange) uint64 {
	return s.used.CountIn(netx.U64(uint64(r.First())), netx.U64(uint64(r.Last()))).Lo
}

// Allocate records m (a caller-supplied MAC or one from NextFree).
func (s *MACSet) Allocate(m netx.MAC) error {
	if !m.Valid() {
		return fmt.Errorf("ipam: MAC %x: %w", uint64(m), ErrMACOutside)
	}
	if s.Contains(m) {
		return fmt.Errorf("ipam: MAC %s: %w", m, ErrMACInUse)
	}
	s.used = s.used.Add(netx.U64(uint64(m)))
	return nil
}

// Release frees m; Melange deletes an interface's MAC outright and reuses
// freed MACs (melange-facts §9).
func (s *MACSet) Release(m netx.MAC) error {
	if !s.Contains(m) {
		return fmt.Errorf("ipam: MAC %s: %w", m, ErrMACNotAllocated)
	}
	s.used = s.used.Delete(netx.U64(uint64(m)))
	return nil
}

// MACPolicy restricts which MACs of a range may be handed out.
type MACPolicy uint8

const (
	// AnyMAC hands out every MAC of the range (Melange).
	AnyMAC MACPolicy = iota
	// LocalUnicast hands out only locally administered unicast MACs, first
	// octet xxxxxx10 (cloudcix-facts §6.6, the fix for CloudCIX's MAC scheme
	// that could produce multicast MACs). In a range whose first octet is
	// fixed (length ≥ 8) that is all or nothing; in a shorter range the
	// other first octets are skipped arithmetically.
	LocalUnicast
)

// NextFree returns the lowest free MAC of r allowed by pol, in O(log n)
// (plus at most 64 first-octet jumps for LocalUnicast in a range shorter
// than /8). Melange hands out its free list before its counter; the lowest
// free MAC is the deterministic equivalent (a freed MAC is reused as soon as
// it is the lowest).
func (s *MACSet) NextFree(r netx.MACRange, pol MACPolicy) (netx.MAC, error) {
	x, last := uint64(r.First()), uint64(r.Last())
	for x <= last {
		if pol == LocalUnicast {
			o := x >> 40
			if o&3 != 2 {
				o = o&^3 | 2
				if o < x>>40 {
					o += 4
				}
				if o > 0xff {
					break
				}
				x = o << 40
				continue
			}
		}
		nx, ok := s.used.NextFree(netx.U64(x))
		if !ok || nx.Hi != 0 || nx.Lo > last {
			break
		}
		if nx.Lo == x {
			return netx.MAC(x), nil
		}
		x = nx.Lo
	}
	return 0, fmt.Errorf("ipam: MAC range %s: %w", r, ErrNoMoreMACs)
}

// AllocateNext allocates the first free MAC of the first range with room,
// trying ranges in the given order (Melange: created_at, id) and returns it
// with the index of its range. ErrNoMoreMACs when every range is full.
func (s *MACSet) AllocateNext(ranges []netx.MACRange, pol MACPolicy) (netx.MAC, int, error) {
	for i, r := range ranges {
		m, err := s.NextFree(r, pol)
		if err != nil {
			continue
		}
		s.used = s.used.Add(netx.U64(uint64(m)))
		return m, i, nil
	}
	return 0, -1, fmt.Errorf("ipam: %w", ErrNoMoreMACs)
}

// CheckMACInRange is Melange's MAC validation (melange-facts §3 rule 21):
// a MAC allocated from a range must lie inside it.
func CheckMACInRange(r netx.MACRange, m netx.MAC) error {
	if !r.Contains(m) {
		return fmt.Errorf("ipam: MAC %s: address does not belong to range: %w", m, ErrMACOutside)
	}
	return nil
}
