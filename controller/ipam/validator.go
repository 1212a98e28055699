package ipam

import (
	"errors"
	"math/big"
	"net/netip"
	"strings"

	"github.com/regentcloud/regent/pkg/netx"
)

// This file is CloudCIX's ip_validator service (cloudcix-facts §5.14, the
// "IP Validator" section of cloudcix-iaas-services.rst; codes and texts from
// CloudCIX iaas errors/ip_validator.py). Unlike CloudCIX, whose controller
// keeps the parsed ranges in a class-level deque shared by every request
// (weakness #18), parent_network is computed from this request's ranges only.

// Error codes and messages of the ip_validator service.
const (
	CodeValidatorNoParams = "iaas_ip_validator_001"
	CodeRangeFormat       = "iaas_ip_validator_101"
	CodeRangeAddress      = "iaas_ip_validator_102"
	CodeRangeMaskNotInt   = "iaas_ip_validator_103"
	CodeRangeMaskV4       = "iaas_ip_validator_104"
	CodeRangeMaskV6       = "iaas_ip_validator_105"
	CodeAddressInvalid    = "iaas_ip_validator_106"
)

var validatorMessages = map[string]string{
	CodeValidatorNoParams: `This service requires either one or both of the "address_ranges" and "ip_addresses" parameters to be sent.`,
	CodeRangeFormat:       `This address_range was sent in an invalid format. The address_range should be in the format (network_address)/(mask)`,
	CodeRangeAddress:      `This address_range is invalid. The "network_address" portion of the address_range is not a valid IP address.`,
	CodeRangeMaskNotInt:   `This address_range is invalid. The "mask" portion is not a valid integer.`,
	CodeRangeMaskV4:       `This address_range is invalid. The "mask" portion must be between 0 and 32 for IPv4 address ranges.`,
	CodeRangeMaskV6:       `This address_range is invalid. The "mask" portion must be between 0 and 128 for IPv6 address ranges.`,
	CodeAddressInvalid:    `This ip_address is invalid. The ip_address is not in a valid IP address format.`,
}

// ValidatorMessage returns the detail text of an ip_validator error code.
func ValidatorMessage(code string) string { return validatorMessages[code] }

// ErrValidatorNoParams is returned when neither parameter is sent (HTTP 400,
// CodeValidatorNoParams).
var ErrValidatorNoParams = errors.New(validatorMessages[CodeValidatorNoParams])

// ValidatorError is the {error_code, detail} of an invalid item.
type ValidatorError struct {
	Code   string `json:"error_code"`
	Detail string `json:"detail"`
}

// RangeResult is the result for one address range.
type RangeResult struct {
	Input   string // the item as sent (the response is keyed by it)
	Valid   bool
	Error   *ValidatorError // nil when valid
	Details *RangeDetails   // nil when invalid
}

// RangeDetails describes a valid address range. BroadcastAddress is empty
// for ranges with fewer than two host bits, where netaddr has no broadcast
// (CloudCIX would print the Python string "None"; the API layer decides how
// to render it).
type RangeDetails struct {
	IPv4             bool   `json:"ipv4"`
	IPv6             bool   `json:"ipv6"`
	NetworkAddress   string `json:"network_address"`
	NetmaskAddress   string `json:"netmask_address"`
	HostmaskAddress  string `json:"hostmask_address"`
	BroadcastAddress string `json:"broadcast_address"`
	CIDR             string `json:"cidr"`
	Reference        string `json:"reference"`
	PresentUse       string `json:"present_use"`
}

// AddressResult is the result for one IP address.
type AddressResult struct {
	Input   string
	Valid   bool
	Error   *ValidatorError
	Details *AddressDetails
}

// AddressDetails describes a valid address. ParentNetwork is the last range
// of this request (in input order) that contains the address, formatted as
// sent (host bits kept, "10.0.0.1/24"), or "" when none does.
type AddressDetails struct {
	IPv4          bool   `json:"ipv4"`
	IPv6          bool   `json:"ipv6"`
	IsPrivate     bool   `json:"is_private"`
	IsReserved    bool   `json:"is_reserved"`
	IsLoopback    bool   `json:"is_loopback"`
	ParentNetwork string `json:"parent_network"`
}

// ValidatorResult is the whole response; both lists are in first-occurrence
// order of the comma-separated inputs, without duplicates (the CloudCIX
// response is a JSON object keyed by the input strings).
type ValidatorResult struct {
	AddressRanges []RangeResult
	IPAddresses   []AddressResult
}

// ValidateIPs validates the address_ranges and ip_addresses query parameters
// (nil = parameter absent). Both absent is ErrValidatorNoParams; an empty
// parameter yields an empty list.
func ValidateIPs(addressRanges, ipAddresses *string) (*ValidatorResult, error) {
	if addressRanges == nil && ipAddresses == nil {
		return nil, ErrValidatorNoParams
	}
	res := &ValidatorResult{AddressRanges: []RangeResult{}, IPAddresses: []AddressResult{}}
	var nets []netip.Prefix // valid ranges of this request, in input order
	if addressRanges != nil && *addressRanges != "" {
		seen := map[string]int{}
		for _, item := range strings.Split(*addressRanges, ",") {
			r, p := validateRange(item)
			if r.Valid {
				nets = append(nets, p)
			}
			if i, dup := seen[item]; dup {
				res.AddressRanges[i] = r
				continue
			}
			seen[item] = len(res.AddressRanges)
			res.AddressRanges = append(res.AddressRanges, r)
		}
	}
	if ipAddresses != nil && *ipAddresses != "" {
		seen := map[string]int{}
		for _, item := range strings.Split(*ipAddresses, ",") {
			if _, dup := seen[item]; dup {
				continue
			}
			r := validateAddress(item, nets)
			seen[item] = len(res.IPAddresses)
			res.IPAddresses = append(res.IPAddresses, r)
		}
	}
	return res, nil
}

func vErr(code string) *ValidatorError {
	return &ValidatorError{Code: code, Detail: validatorMessages[code]}
}

// parseValidatorAddr parses an address as netaddr's IPAddress does by
// default (inet_pton: dotted quad or IPv6 text, no zones, no padding).
func parseValidatorAddr(s string) (netip.Addr, bool) {
	if strings.ContainsAny(s, "% \t\n") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}

// pythonInt reports whether Python's int() accepts s and returns its value
// (clamped to ±2^31 for range checks): optional surrounding whitespace, an
// optional sign, decimal digits with single underscores between them.
func pythonInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, false
	}
	digits := strings.ReplaceAll(s, "_", "")
	v, ok := new(big.Int).SetString(digits, 10)
	if !ok || strings.ContainsAny(digits, "+-") {
		return 0, false
	}
	if neg {
		v.Neg(v)
	}
	if !v.IsInt64() || v.Int64() > 1<<31 || v.Int64() < -(1<<31) {
		if v.Sign() < 0 {
			return -(1 << 31), true
		}
		return 1 << 31, true
	}
	return v.Int64(), true
}

func validateRange(item string) (RangeResult, netip.Prefix) {
	r := RangeResult{Input: item}
	parts := strings.Split(item, "/")
	if len(parts) != 2 {
		r.Error = vErr(CodeRangeFormat)
		return r, netip.Prefix{}
	}
	a, ok := parseValidatorAddr(parts[0])
	if !ok {
		r.Error = vErr(CodeRangeAddress)
		return r, netip.Prefix{}
	}
	n, ok := pythonInt(parts[1])
	if !ok {
		r.Error = vErr(CodeRangeMaskNotInt)
		return r, netip.Prefix{}
	}
	if n < 0 || n > int64(a.BitLen()) {
		if a.Is4() {
			r.Error = vErr(CodeRangeMaskV4)
		} else {
			r.Error = vErr(CodeRangeMaskV6)
		}
		return r, netip.Prefix{}
	}
	p := netip.PrefixFrom(a, int(n)) // host bits kept, as str(IPNetwork)
	m := p.Masked()
	d := &RangeDetails{
		IPv4:            a.Is4(),
		IPv6:            a.Is6(),
		NetworkAddress:  m.Addr().String(),
		NetmaskAddress:  netx.Netmask(m).String(),
		HostmaskAddress: netx.Hostmask(m).String(),
		CIDR:            m.String(),
	}
	if netx.HostBits(m) >= 2 {
		d.BroadcastAddress = netx.Last(m).String()
	}
	d.Reference, d.PresentUse = networkClass(m)
	r.Valid, r.Details = true, d
	return r, p
}

type netClass struct {
	prefix     netip.Prefix
	reference  string
	presentUse string
}

// networkClasses is CloudCIX's NETWORK_CLASSES table in its (dict) order:
// the first class that contains the whole range wins; the last entry of each
// family is the default.
var networkClasses = map[bool][]netClass{
	true: {
		{netip.MustParsePrefix("10.0.0.0/8"), "RFC 1918", "Private-Use Networks"},
		{netip.MustParsePrefix("172.16.0.0/12"), "RFC 1918", "Private-Use Networks"},
		{netip.MustParsePrefix("192.168.0.0/16"), "RFC 1918", "Private-Use Networks"},
		{netip.MustParsePrefix("192.0.2.0/24"), "RFC 5737", "TEST-NET-1"},
		{netip.MustParsePrefix("198.51.100.0/24"), "RFC 5737", "TEST-NET-2"},
		{netip.MustParsePrefix("203.0.113.0/24"), "RFC 5737", "TEST-NET-3"},
		{netip.MustParsePrefix("0.0.0.0/8"), "RFC 1122", `"This" Network`},
		{netip.MustParsePrefix("127.0.0.0/8"), "RFC 1122", "Loopback"},
		{netip.MustParsePrefix("240.0.0.0/4"), "RFC 1122", "Reserved for Future Use"},
		{netip.MustParsePrefix("169.254.0.0/16"), "RFC 3927", "Link Local"},
		{netip.MustParsePrefix("192.0.0.0/24"), "RFC 5736", "IETF Protocol Assignments"},
		{netip.MustParsePrefix("192.88.99.0/24"), "RFC 3068", "6to4 Relay Anycast"},
		{netip.MustParsePrefix("198.18.0.0/15"), "RFC 2544", "Network Interconnect Device Benchmark Testing"},
		{netip.MustParsePrefix("224.0.0.0/4"), "RFC 3171", "Multicast"},
		{netip.MustParsePrefix("255.255.255.255/32"), "RFC 919, RFC 922", "Limited Broadcast"},
		{netip.MustParsePrefix("0.0.0.0/0"), "IPv4", "Public-Use Networks"},
	},
	false: {
		{netip.MustParsePrefix("fd00::/7"), "RFC 4193", "Unique-local Network"},
		{netip.MustParsePrefix("2001:20::/28"), "RFC 7343", "ORCHIDv2"},
		{netip.MustParsePrefix("::ffff:0:0/96"), "RFC 4291", "IPv4-mapped Address"},
		{netip.MustParsePrefix("2001::/23"), "RFC 2928", "IETF Protocol Assignments"},
		{netip.MustParsePrefix("::/0"), "IPv6", "Public-Use Networks"},
	},
}

func networkClass(p netip.Prefix) (string, string) {
	for _, c := range networkClasses[p.Addr().Is4()] {
		if netx.ContainsPrefix(c.prefix.Masked(), p) {
			return c.reference, c.presentUse
		}
	}
	return "", ""
}

func validateAddress(item string, nets []netip.Prefix) AddressResult {
	r := AddressResult{Input: item}
	a, ok := parseValidatorAddr(item)
	if !ok {
		r.Error = vErr(CodeAddressInvalid)
		return r
	}
	d := &AddressDetails{
		IPv4:       a.Is4(),
		IPv6:       a.Is6(),
		IsPrivate:  !IsGlobal(a),
		IsReserved: IsReserved(a),
		IsLoopback: isLoopback(a),
	}
	for _, p := range nets {
		if p.Masked().Contains(a) {
			d.ParentNetwork = p.String()
		}
	}
	r.Valid, r.Details = true, d
	return r
}

func isLoopback(a netip.Addr) bool {
	if a.Is4() {
		return netip.MustParsePrefix("127.0.0.0/8").Contains(a)
	}
	return a == netip.IPv6Loopback()
}

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// The IANA special-purpose registries' "not globally reachable" blocks and
// their exceptions, as in netaddr (IPV4/6_NOT_GLOBALLY_REACHABLE[_EXCEPTIONS]).
var (
	v4NotGlobal = mustPrefixes("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
		"169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.0.170/31", "192.0.2.0/24",
		"192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"255.255.255.255/32")
	v4NotGlobalExceptions = mustPrefixes("192.0.0.9/32", "192.0.0.10/32")
	v6NotGlobal           = mustPrefixes("::1/128", "::/128", "::ffff:0:0/96", "64:ff9b:1::/48",
		"100::/64", "2001::/23", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10")
	v6NotGlobalExceptions = mustPrefixes("2001:1::1/128", "2001:1::2/128", "2001:3::/32",
		"2001:4:112::/48", "2001:20::/28", "2001:30::/28")
	v4Reserved = mustPrefixes("0.0.0.0/8", "192.0.2.0/24", "240.0.0.0/4", "198.51.100.0/24",
		"203.0.113.0/24", "233.252.0.0/24", "127.0.0.0/8", "192.88.99.0/24")
	v6Reserved = mustPrefixes("ff00::/12", "::/8", "100::/8", "200::/7", "400::/6", "800::/5",
		"1000::/4", "4000::/3", "6000::/3", "8000::/3", "a000::/3", "c000::/3", "e000::/4",
		"f000::/5", "f800::/6", "fe00::/9")
)

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// IsGlobal reports whether a is globally reachable per the IANA
// special-purpose address registries (netaddr's is_global). The
// ip_validator's is_private is its negation (cloudcix-facts §5.14).
func IsGlobal(a netip.Addr) bool {
	if a.Is4() {
		return !inAny(a, v4NotGlobal) || inAny(a, v4NotGlobalExceptions)
	}
	return !inAny(a, v6NotGlobal) || inAny(a, v6NotGlobalExceptions)
}

// IsReserved reports whether a is in netaddr's IANA reserved list
// (IPV4_RESERVED, which also holds 225.0.0.0–231.255.255.255 and
// 234.0.0.0–238.255.255.255, and IPV6_RESERVED).
func IsReserved(a netip.Addr) bool {
	if a.Is4() {
		b := a.As4()
		if (b[0] >= 225 && b[0] <= 231) || (b[0] >= 234 && b[0] <= 238) {
			return true
		}
		return inAny(a, v4Reserved)
	}
	return inAny(a, v6Reserved)
}
