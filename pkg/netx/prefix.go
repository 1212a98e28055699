package netx

import (
	"net/netip"
	"strconv"
	"strings"
)

// ParsePrefix parses strict CIDR notation "address/length" and returns the
// prefix with its host bits cleared, as Melange normalises a block's CIDR
// ("10.0.0.1/31" → 10.0.0.0/31). The length must be a decimal integer
// without sign or leading zeros, 0–32 for IPv4 and 0–128 for IPv6; a missing
// length, zones and surrounding space are errors. The error is a *ParseError
// naming the input and the reason.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := ParsePrefixRaw(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

// ParsePrefixRaw is ParsePrefix without normalisation: host bits are kept, so
// "10.0.0.1/24" yields address 10.0.0.1 with 24 bits (see ParseGatewayPrefix).
func ParsePrefixRaw(s string) (netip.Prefix, error) {
	bad := func(msg string) (netip.Prefix, error) {
		return netip.Prefix{}, &ParseError{Kind: "prefix", Input: s, Msg: msg}
	}
	if s == "" {
		return bad("empty")
	}
	i := strings.IndexByte(s, '/')
	if i < 0 {
		return bad("missing prefix length")
	}
	as, ls := s[:i], s[i+1:]
	if strings.IndexByte(ls, '/') >= 0 {
		return bad("more than one '/'")
	}
	if as == "" {
		return bad("missing address")
	}
	if strings.IndexByte(as, '%') >= 0 {
		return bad("zones are not allowed")
	}
	a, err := netip.ParseAddr(as)
	if err != nil {
		return bad("bad address " + strconv.Quote(as))
	}
	n, msg := parseLength(ls, a.BitLen())
	if msg != "" {
		return bad(msg)
	}
	return netip.PrefixFrom(a, n), nil
}

// ParsePrefixRawUnmapped is ParsePrefixRaw that also refuses an
// IPv4-mapped IPv6 address part (::ffff:10.0.0.0/104, ::ffff:0:0/96): IPv4
// space written as IPv6, which a dialect that keeps the two families apart
// must not take for either. That error is a *ParseError wrapping ErrMapped.
//
// ParsePrefixRaw itself keeps accepting such prefixes: Melange does, and the
// state machine re-parses what it once stored.
func ParsePrefixRawUnmapped(s string) (netip.Prefix, error) {
	p, err := ParsePrefixRaw(s)
	if err == nil && p.Addr().Is4In6() {
		return netip.Prefix{}, &ParseError{Kind: "prefix", Input: s, Msg: mappedMsg(p.Addr()), Err: ErrMapped}
	}
	return p, err
}

func mappedMsg(a netip.Addr) string {
	return "IPv4-mapped IPv6 address " + a.String() + "; write IPv4 as " + a.Unmap().String()
}

// parseLength parses a prefix length for a family of the given width.
func parseLength(ls string, width int) (int, string) {
	switch {
	case ls == "":
		return 0, "missing prefix length"
	case ls[0] == '-':
		return 0, "negative prefix length"
	case len(ls) > 1 && ls[0] == '0':
		return 0, "leading zeros in prefix length"
	}
	for i := 0; i < len(ls); i++ {
		if ls[i] < '0' || ls[i] > '9' {
			return 0, "prefix length " + strconv.Quote(ls) + " is not a decimal integer"
		}
	}
	fam := "IPv4"
	if width == 128 {
		fam = "IPv6"
	}
	n, err := strconv.Atoi(ls)
	if err != nil || n > width {
		return 0, "prefix length " + ls + " out of range for " + fam + " (0-" + strconv.Itoa(width) + ")"
	}
	return n, ""
}

// ParsePrefixOrAddr is ParsePrefix that also accepts a bare address as a host
// prefix (/32 or /128), as netaddr's IPNetwork does.
func ParsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.IndexByte(s, '/') >= 0 {
		return ParsePrefix(s)
	}
	a, err := ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, &ParseError{Kind: "prefix", Input: s, Msg: "bad address"}
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// HostBits returns the number of host bits of p (width − length).
func HostBits(p netip.Prefix) int { return p.Addr().BitLen() - p.Bits() }

// First returns the first (network) address of p.
func First(p netip.Prefix) netip.Addr { return p.Masked().Addr() }

// Last returns the last address of p (the IPv4 broadcast address).
func Last(p netip.Prefix) netip.Addr {
	return MustU128ToAddr(LastU128(p), p.Addr().BitLen())
}

// FirstU128 returns the first address of p as an integer.
func FirstU128(p netip.Prefix) U128 { return AddrToU128(p.Masked().Addr()) }

// LastU128 returns the last address of p as an integer.
func LastU128(p netip.Prefix) U128 { return FirstU128(p).Or(Span(p)) }

// Span returns size − 1 of p, i.e. its host mask as an integer; unlike Size
// it is exact for every prefix, ::/0 included.
func Span(p netip.Prefix) U128 { return LowMask(uint(HostBits(p))) }

// Size returns the number of addresses in p, 2^(width − length). The one size
// that does not fit, 2^128 for ::/0, saturates to MaxU128; use Span for exact
// arithmetic.
func Size(p netip.Prefix) U128 {
	if HostBits(p) >= 128 {
		return MaxU128
	}
	return U64(1).Lsh(uint(HostBits(p)))
}

// Netmask returns the network mask of p as an address (255.255.255.0,
// ffff:ffff:ffff:ffff::).
func Netmask(p netip.Prefix) netip.Addr {
	w := p.Addr().BitLen()
	return MustU128ToAddr(LowMask(uint(w)).Xor(LowMask(uint(HostBits(p)))), w)
}

// Hostmask returns the host mask of p as an address (0.0.0.255).
func Hostmask(p netip.Prefix) netip.Addr {
	return MustU128ToAddr(Span(p), p.Addr().BitLen())
}

// Contains reports whether a lies in p (false across families).
func Contains(p netip.Prefix, a netip.Addr) bool { return p.Contains(a) }

// ContainsPrefix reports whether inner lies entirely inside outer (an equal
// prefix is contained). Host bits of either are ignored.
func ContainsPrefix(outer, inner netip.Prefix) bool {
	return outer.Addr().BitLen() == inner.Addr().BitLen() &&
		outer.Bits() <= inner.Bits() && outer.Masked().Contains(inner.Addr())
}

// Overlaps reports whether a and b share an address. For CIDR prefixes this
// is the same as one containing the other, Melange's overlap rule.
func Overlaps(a, b netip.Prefix) bool {
	return ContainsPrefix(a, b) || ContainsPrefix(b, a)
}

// AddrAt returns the address at offset off from the start of p; ok is false
// when off is outside p.
func AddrAt(p netip.Prefix, off U128) (netip.Addr, bool) {
	if Span(p).Less(off) {
		return netip.Addr{}, false
	}
	return U128ToAddr(FirstU128(p).Add(off), p.Addr().BitLen())
}

// OffsetOf returns a's offset from the start of p; ok is false when a is not
// in p.
func OffsetOf(p netip.Prefix, a netip.Addr) (U128, bool) {
	if !p.Contains(a) {
		return U128{}, false
	}
	return AddrToU128(a).Sub(FirstU128(p)), true
}

// PrefixOf returns the CIDR prefix with the given first address (as an
// integer), length and width.
func PrefixOf(first U128, bits, width int) netip.Prefix {
	return netip.PrefixFrom(MustU128ToAddr(first, width), bits)
}

// RangeToPrefixes returns the minimal list of CIDR prefixes, in address
// order, that covers exactly [lo, hi] in a family of the given width (32 or
// 128). It returns nil when hi < lo.
func RangeToPrefixes(lo, hi U128, width int) []netip.Prefix {
	var out []netip.Prefix
	for !hi.Less(lo) {
		// Largest aligned block at lo that does not pass hi.
		k := lo.TrailingZeros()
		if k > width {
			k = width
		}
		span := hi.Sub(lo) // number of addresses − 1, exact
		for k > 0 && LowMask(uint(k)).Cmp(span) > 0 {
			k--
		}
		out = append(out, PrefixOf(lo, width-k, width))
		next, over := lo.AddOverflow(LowMask(uint(k)))
		if over {
			break
		}
		next, over = next.Inc()
		if over || next.Cmp(MaxValue(width)) > 0 {
			break
		}
		lo = next
	}
	return out
}

// ComparePrefix orders prefixes by family (IPv4 first), then first address,
// then length (shorter first). It returns -1, 0 or +1.
func ComparePrefix(a, b netip.Prefix) int {
	if a.Addr().BitLen() != b.Addr().BitLen() {
		if a.Addr().BitLen() < b.Addr().BitLen() {
			return -1
		}
		return 1
	}
	if c := a.Masked().Addr().Compare(b.Masked().Addr()); c != 0 {
		return c
	}
	switch {
	case a.Bits() < b.Bits():
		return -1
	case a.Bits() > b.Bits():
		return 1
	}
	return 0
}
