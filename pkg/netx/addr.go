package netx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrFamilyMismatch is returned (wrapped) when an IPv4 value meets an IPv6 one.
var ErrFamilyMismatch = errors.New("address family mismatch")

// ErrMapped is wrapped by the errors of the Unmapped parsers for an
// IPv4-mapped IPv6 address or prefix (::ffff:a.b.c.d).
var ErrMapped = errors.New("IPv4-mapped IPv6 address")

// Bits returns the address width of a's family: 32 or 128 (0 if invalid).
func Bits(a netip.Addr) int { return a.BitLen() }

// AddrToU128 returns a as an integer: the low 32 bits for IPv4, the 128-bit
// value for IPv6. The zone is ignored. The invalid Addr is 0.
func AddrToU128(a netip.Addr) U128 {
	if a.Is4() {
		b := a.As4()
		return U64(uint64(binary.BigEndian.Uint32(b[:])))
	}
	if !a.IsValid() {
		return U128{}
	}
	b := a.As16()
	return U128{Hi: binary.BigEndian.Uint64(b[:8]), Lo: binary.BigEndian.Uint64(b[8:])}
}

// U128ToAddr converts v to an address of the given width (32 or 128). ok is
// false when the width is not 32 or 128 or v does not fit in it.
func U128ToAddr(v U128, bits int) (netip.Addr, bool) {
	switch bits {
	case 32:
		if v.Hi != 0 || v.Lo > 0xffffffff {
			return netip.Addr{}, false
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(v.Lo))
		return netip.AddrFrom4(b), true
	case 128:
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], v.Hi)
		binary.BigEndian.PutUint64(b[8:], v.Lo)
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// MustU128ToAddr is U128ToAddr for values known to fit; it panics otherwise.
func MustU128ToAddr(v U128, bits int) netip.Addr {
	a, ok := U128ToAddr(v, bits)
	if !ok {
		panic(fmt.Sprintf("netx: %s does not fit in %d bits", v, bits))
	}
	return a
}

// MaxValue returns the largest address value of a family of the given width.
func MaxValue(bits int) U128 { return LowMask(uint(bits)) }

// AddrAdd returns a + off; ok is false if the result leaves the family.
func AddrAdd(a netip.Addr, off U128) (netip.Addr, bool) {
	s, over := AddrToU128(a).AddOverflow(off)
	if over {
		return netip.Addr{}, false
	}
	return U128ToAddr(s, a.BitLen())
}

// AddrSub returns a − off; ok is false if the result would be negative.
func AddrSub(a netip.Addr, off U128) (netip.Addr, bool) {
	d, under := AddrToU128(a).SubUnderflow(off)
	if under {
		return netip.Addr{}, false
	}
	return U128ToAddr(d, a.BitLen())
}

// AddrDiff returns b − a for two addresses of the same family with a ≤ b.
func AddrDiff(a, b netip.Addr) (U128, error) {
	if a.BitLen() != b.BitLen() {
		return U128{}, fmt.Errorf("netx: %s and %s: %w", a, b, ErrFamilyMismatch)
	}
	d, under := AddrToU128(b).SubUnderflow(AddrToU128(a))
	if under {
		return U128{}, fmt.Errorf("netx: %s is below %s", b, a)
	}
	return d, nil
}

// ParseAddr parses an IPv4 or IPv6 address in its usual text form. Unlike
// netip.ParseAddr it rejects IPv6 zones ("fe80::1%eth0") and surrounding
// space, and its errors name the input.
func ParseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, &ParseError{Kind: "address", Input: s, Msg: "empty"}
	}
	if strings.ContainsRune(s, '%') {
		return netip.Addr{}, &ParseError{Kind: "address", Input: s, Msg: "zones are not allowed"}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, &ParseError{Kind: "address", Input: s, Msg: "not an IPv4 or IPv6 address"}
	}
	return a, nil
}

// ParseAddrUnmapped is ParseAddr that also refuses an IPv4-mapped IPv6
// address (::ffff:10.0.0.5), as ParsePrefixRawUnmapped does.
func ParseAddrUnmapped(s string) (netip.Addr, error) {
	a, err := ParseAddr(s)
	if err == nil && a.Is4In6() {
		return netip.Addr{}, &ParseError{Kind: "address", Input: s, Msg: mappedMsg(a), Err: ErrMapped}
	}
	return a, err
}

// SameFamily reports whether a and b are both IPv4 or both IPv6.
func SameFamily(a, b netip.Addr) bool { return a.IsValid() && a.BitLen() == b.BitLen() }

// CheckFamily returns an error wrapping ErrFamilyMismatch when a is not of
// p's family.
func CheckFamily(p netip.Prefix, a netip.Addr) error {
	if p.Addr().BitLen() != a.BitLen() {
		return fmt.Errorf("netx: %s is not in the family of %s: %w", a, p, ErrFamilyMismatch)
	}
	return nil
}

// Expand formats a in full: IPv4 as usual, IPv6 as eight groups of four
// lower-case hex digits ("00ff:0000:0000:0000:0000:0000:0000:0001"), the form
// in which Melange stores IPv6 addresses.
func Expand(a netip.Addr) string {
	if !a.Is6() {
		return a.String()
	}
	b := a.As16()
	var sb strings.Builder
	sb.Grow(39)
	const hex = "0123456789abcdef"
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteByte(hex[b[i]>>4])
		sb.WriteByte(hex[b[i]&0xf])
		sb.WriteByte(hex[b[i+1]>>4])
		sb.WriteByte(hex[b[i+1]&0xf])
	}
	return sb.String()
}

// LastWord returns the last octet of an IPv4 address or the last 16-bit group
// of an IPv6 address: the value Melange's unusable-octet policy compares.
func LastWord(a netip.Addr) uint16 {
	if a.Is4() {
		b := a.As4()
		return uint16(b[3])
	}
	b := a.As16()
	return uint16(b[14])<<8 | uint16(b[15])
}

// ParseError describes a value that could not be parsed.
type ParseError struct {
	Kind  string // "prefix", "address", "MAC address", "MAC range"
	Input string
	Msg   string
	Err   error // a sentinel such as ErrMapped, or nil
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("netx: invalid %s %q: %s", e.Kind, e.Input, e.Msg)
}

// Unwrap returns the sentinel the error wraps, if any.
func (e *ParseError) Unwrap() error { return e.Err }
