package ipam

import (
	"crypto/sha1"
	"encoding/binary"
	"net/netip"

	"github.com/regentcloud/regent/pkg/netx"
)

// EUI64IID returns the modified EUI-64 interface identifier of m (RFC 4291
// appendix A): ff:fe inserted between the OUI and the NIC part, and the
// universal/local bit (0x02 of the first octet) inverted.
// 12:ff:12:89:67:34 → 0x10ff12fffe896734.
func EUI64IID(m netx.MAC) uint64 {
	v := uint64(m)
	return ((v>>24)<<40 | 0xfffe<<24 | v&0xffffff) ^ 0x02<<56
}

// TenantIID returns the interface identifier of Melange's tenant-based IPv6
// generator (melange-facts §7): the first 8 hex digits of sha1(tenant) in the
// top 32 bits, then 0xff, then the low 24 bits of the MAC.
func TenantIID(tenant string, m netx.MAC) uint64 {
	h := sha1.Sum([]byte(tenant))
	return uint64(binary.BigEndian.Uint32(h[:4]))<<32 | 0xff<<24 | uint64(m)&0xffffff
}

// AddrFromIID places an interface identifier in prefix p the way Melange
// does: (IID & hostmask) | network. For prefixes longer than /64 the IID's
// top bits are cut off; for prefixes shorter than /64 the bits between the
// prefix and the IID are zero.
func AddrFromIID(p netip.Prefix, iid uint64) netip.Addr {
	x := netx.U64(iid).And(netx.Span(p)).Or(netx.FirstU128(p))
	return netx.MustU128ToAddr(x, p.Addr().BitLen())
}

// macWindow describes the candidate sequence of a MAC-based generator in a
// block: the k-th candidate (MAC + k) maps to segment (seg0 + (off0+k) >>
// segBits) mod nseg at offset (off0 + k) mod 2^segBits. For the tenant
// generator, and for EUI-64 in blocks with at most 40 host bits, only the
// low min(h, 24) bits of the MAC reach the address, so there is one segment
// and the sequence cycles through it. For EUI-64 with more than 40 host bits
// the MAC's upper half reaches the address too: every 2^24 candidates the
// generator moves to the next segment.
type macWindow struct {
	segBits uint
	nseg    uint64
	seg0    uint64
	off0    uint64
	base    func(seg uint64) netx.U128
}

func (b *Block) macWindow(req Request) macWindow {
	h := uint(netx.HostBits(b.prefix))
	hostmask := netx.Span(b.prefix)
	w := min(h, 24)
	low := netx.LowMask(w)
	mac := uint64(req.MAC)
	win := macWindow{segBits: w, nseg: 1, off0: mac & low.Lo}
	switch {
	case b.cfg.Generator == TenantHash:
		c := netx.U64(TenantIID(req.Tenant, 0)).And(hostmask).And(low.Not()).Or(b.first)
		win.base = func(uint64) netx.U128 { return c }
	case h <= 40:
		c := netx.U64(EUI64IID(0)).And(hostmask).And(low.Not()).Or(b.first)
		win.base = func(uint64) netx.U128 { return c }
	default:
		ub := min(h, 64) - 40 // MAC bits 24.. that reach the address
		win.nseg = 1 << ub
		win.seg0 = (mac >> 24) & (win.nseg - 1)
		flip := uint64(0x020000) & (win.nseg - 1) // the U/L bit, seen from bit 40
		first := b.first
		win.base = func(seg uint64) netx.U128 {
			return netx.U64((seg^flip)<<40 | 0xfffe<<24).Or(first)
		}
	}
	return win
}

// nextFreeFromMAC walks the generator's candidates (Melange: "take next_ip()
// until the address is not broadcast, not gateway and not existing") but
// skips whole runs of held addresses with one look-up each. It visits at most
// 1 + (number of completely held segments) segments, so the cost is
// O(log n) unless a 2^24-address segment is full.
//
// Interpretation: Melange increments the MAC without bound and would loop
// forever (or fail on MAC overflow) in a full block; here the candidate
// sequence wraps (modulo 2^48 for the MAC) and the block is full once every
// candidate has been tried.
func (b *Block) nextFreeFromMAC(req Request) (netx.U128, bool) {
	win := b.macWindow(req)
	span := netx.LowMask(win.segBits)
	for j := uint64(0); j <= win.nseg; j++ {
		seg := (win.seg0 + j) & (win.nseg - 1)
		lo, hi := netx.U128{}, span
		switch {
		case j == 0:
			lo = netx.U64(win.off0)
		case j == win.nseg:
			if win.off0 == 0 {
				return netx.U128{}, false
			}
			hi = netx.U64(win.off0 - 1)
		}
		base := win.base(seg)
		if x, ok := b.firstFreeIn(base.Add(lo), base.Add(hi)); ok {
			return x, true
		}
	}
	return netx.U128{}, false
}

// firstFreeIn returns the first address of [lo, hi] that is neither held nor
// a reserved point (gateway, reserved edge addresses).
func (b *Block) firstFreeIn(lo, hi netx.U128) (netx.U128, bool) {
	x := lo
	for !hi.Less(x) {
		nx, ok := b.taken.NextFree(x)
		if !ok || hi.Less(nx) {
			return netx.U128{}, false
		}
		if !b.d.isPoint(nx) {
			return nx, true
		}
		next, over := nx.Inc()
		if over {
			return netx.U128{}, false
		}
		x = next
	}
	return netx.U128{}, false
}
