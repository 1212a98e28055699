package netx

import "net/netip"

// ParseGatewayPrefix parses CloudCIX gateway notation, a CIDR whose host part
// is the gateway: "10.0.0.1/24" gives the prefix 10.0.0.0/24 and the gateway
// 10.0.0.1. It accepts any host part, the network address included; callers
// that must reject "10.0.0.0/24" (CloudCIX project subnets) compare the
// gateway with First(prefix).
func ParseGatewayPrefix(s string) (prefix netip.Prefix, gateway netip.Addr, err error) {
	raw, err := ParsePrefixRaw(s)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, err
	}
	return raw.Masked(), raw.Addr(), nil
}

// FormatGatewayPrefix is the inverse of ParseGatewayPrefix: the gateway with
// the prefix's length ("10.0.0.1/24").
func FormatGatewayPrefix(prefix netip.Prefix, gateway netip.Addr) string {
	return netip.PrefixFrom(gateway, prefix.Bits()).String()
}
