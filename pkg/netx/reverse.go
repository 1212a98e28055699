package netx

import (
	"net/netip"
	"strconv"
	"strings"
)

// ReverseName returns the fully qualified reverse DNS owner name of a, with a
// trailing dot, as miekg/dns ReverseAddr: "1.2.0.192.in-addr.arpa." for
// 192.0.2.1 and 32 nibbles under "ip6.arpa." for IPv6. IPv4-mapped IPv6
// addresses are treated as IPv4 (as ReverseAddr does). It returns "" for the
// invalid Addr.
func ReverseName(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return strconv.Itoa(int(b[3])) + "." + strconv.Itoa(int(b[2])) + "." +
			strconv.Itoa(int(b[1])) + "." + strconv.Itoa(int(b[0])) + ".in-addr.arpa."
	case a.Is6():
		return reverseNibbles(a.As16(), 32)
	}
	return ""
}

// reverseNibbles writes the first n nibbles of b, last nibble first.
func reverseNibbles(b [16]byte, n int) string {
	const hex = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(n*2 + len("ip6.arpa."))
	for i := n - 1; i >= 0; i-- {
		x := b[i/2]
		if i%2 == 0 {
			x >>= 4
		}
		sb.WriteByte(hex[x&0xf])
		sb.WriteByte('.')
	}
	sb.WriteString("ip6.arpa.")
	return sb.String()
}

// ReverseZone returns the reverse zone that holds the PTR names of p: the
// zone of p's length rounded down to an octet boundary for IPv4
// (10.1.2.0/24 → "2.1.10.in-addr.arpa.", 10.1.2.128/25 → the same /24 zone)
// or to a nibble boundary for IPv6. Classless (RFC 2317) delegation is left to
// the DNS layer.
func ReverseZone(p netip.Prefix) string {
	p = p.Masked()
	a := p.Addr().Unmap()
	switch {
	case a.Is4():
		bits := p.Bits()
		if p.Addr().Is6() { // mapped prefix
			bits -= 96
			if bits < 0 {
				bits = 0
			}
		}
		b := a.As4()
		labels := []string{}
		for i := bits/8 - 1; i >= 0; i-- {
			labels = append(labels, strconv.Itoa(int(b[i])))
		}
		labels = append(labels, "in-addr", "arpa")
		return strings.Join(labels, ".") + "."
	case a.Is6():
		return reverseNibbles(a.As16(), p.Bits()/4)
	}
	return ""
}

// CloudCIXReverseZone returns the reverse zone CloudCIX uses for an address:
// the reverse name without its first label for IPv4 (a /24 zone) and without
// its first 20 nibbles for IPv6 (a /48 zone), without the trailing dot, as
// dns-facts §2 describes.
func CloudCIXReverseZone(a netip.Addr) string {
	a = a.Unmap()
	name := strings.TrimSuffix(ReverseName(a), ".")
	drop := 1
	if a.Is6() {
		drop = 20
	}
	for i := 0; i < drop; i++ {
		j := strings.IndexByte(name, '.')
		if j < 0 {
			return ""
		}
		name = name[j+1:]
	}
	return name
}
