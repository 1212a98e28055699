package query

import (
	"cmp"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// keyKind is the kind of a comparable value.
type keyKind uint8

const (
	kString keyKind = iota
	kNumber
	kTime
	kBool
	kPrefix
)

// key is one comparable value: a field of an item, or a filter's operand.
// A time is kept in n as Unix seconds (i) and nanoseconds (u), which keeps
// keys small: Apply holds two per item. A prefix (a CIDR field's value, host
// part kept, or an operand, host part cleared) is in p, its text in s.
type key struct {
	null bool
	kind keyKind
	b    bool
	s    string
	n    num
	p    netip.Prefix
}

func timeKey(t time.Time) key {
	return key{kind: kTime, n: num{i: t.Unix(), u: uint64(t.Nanosecond())}}
}

// num is a number that compares exactly across all Go integer kinds, and by
// float64 once a fraction is involved.
type num struct {
	integral bool    // i or u holds the value exactly
	neg      bool    // integral and < 0: i holds it; else u does
	i        int64   //
	u        uint64  //
	f        float64 // the value as a float64, always set
}

func intNum(i int64) num {
	if i < 0 {
		return num{integral: true, neg: true, i: i, f: float64(i)}
	}
	return num{integral: true, u: uint64(i), f: float64(i)}
}

func uintNum(u uint64) num { return num{integral: true, u: u, f: float64(u)} }

func floatNum(f float64) num {
	if f == math.Trunc(f) {
		switch {
		case f >= -(1<<63) && f < 0:
			return intNum(int64(f))
		case f >= 0 && f < 1<<64:
			return uintNum(uint64(f))
		}
	}
	return num{f: f}
}

func cmpNum(a, b num) int {
	if a.integral && b.integral {
		switch {
		case a.neg && b.neg:
			return cmp.Compare(a.i, b.i)
		case a.neg:
			return -1
		case b.neg:
			return 1
		}
		return cmp.Compare(a.u, b.u)
	}
	return cmp.Compare(a.f, b.f)
}

// cmpKey orders keys: values of one kind naturally (false < true; prefixes
// as cmpPrefix), kinds by their number, and null after everything, as
// PostgreSQL's ascending order puts NULLs last.
func cmpKey(a, b key) int {
	switch {
	case a.null || b.null:
		if a.null == b.null {
			return 0
		}
		if a.null {
			return 1
		}
		return -1
	case a.kind != b.kind:
		return cmp.Compare(a.kind, b.kind)
	}
	switch a.kind {
	case kString:
		return strings.Compare(a.s, b.s)
	case kNumber:
		return cmpNum(a.n, b.n)
	case kTime:
		if c := cmp.Compare(a.n.i, b.n.i); c != 0 {
			return c
		}
		return cmp.Compare(a.n.u, b.n.u)
	case kPrefix:
		if c := cmpNetwork(a.p, b.p); c != 0 {
			return c
		}
		return a.p.Addr().Compare(b.p.Addr())
	}
	switch {
	case a.b == b.b:
		return 0
	case a.b:
		return 1
	}
	return -1
}

// parseKey parses a filter operand for a field of type t.
func parseKey(t FieldType, s string) (key, bool) {
	switch t {
	case String:
		return key{kind: kString, s: s}, true
	case Number:
		n, ok := parseNum(s)
		return key{kind: kNumber, n: n}, ok
	case Date:
		tm, ok := parseTime(s)
		return timeKey(tm), ok
	case Bool:
		b, ok := parseBool(s)
		return key{kind: kBool, b: b}, ok
	case CIDR:
		p, ok := parseCIDR(s)
		return key{kind: kPrefix, s: p.String(), p: p}, ok
	}
	return key{}, false
}

// cidrKey is the key of a CIDR field's text: its prefix with the host part
// kept (a subnet's address_range in gateway notation, 10.0.0.1/24), an
// address as its /32 or /128; null when empty or not a prefix.
func cidrKey(s string) key {
	t := strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(t); err == nil {
		return key{kind: kPrefix, s: s, p: p}
	}
	if a, err := netip.ParseAddr(t); err == nil && a.Zone() == "" {
		return key{kind: kPrefix, s: s, p: netip.PrefixFrom(a, a.BitLen())}
	}
	return key{null: true}
}

// cmpNetwork orders prefixes numerically by their network: IPv4 before
// IPv6, then by network address, then by prefix length (10.0.0.0/8 before
// 10.0.0.0/16 before 10.0.0.9/32 before 10.0.0.10/32).
func cmpNetwork(a, b netip.Prefix) int {
	if c := a.Masked().Addr().Compare(b.Masked().Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// parseCIDR reads a prefix (host bits cleared) or an address (its /32 or
// /128).
func parseCIDR(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// cidrContains reports whether prefix outer holds all of inner (same IP
// version).
func cidrContains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// parseNum accepts decimal integers of any size up to 64 bits and finite
// decimal floats.
func parseNum(s string) (num, bool) {
	s = strings.TrimSpace(s)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return intNum(i), true
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return uintNum(u), true
	}
	if s == "" || strings.ContainsAny(s, "xXpP_") {
		return num{}, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return num{}, false
	}
	return floatNum(f), true
}

// parseTime accepts RFC 3339 (fractional seconds optional), the same without
// a zone, and a bare date; times without a zone are UTC. A "+" of the zone
// offset that arrived unescaped in a query string, and so decoded to a space,
// is put back.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if t, ok := parseTimeLayouts(s); ok {
		return t, true
	}
	if i := strings.LastIndexByte(s, ' '); i > 0 {
		return parseTimeLayouts(s[:i] + "+" + s[i+1:])
	}
	return time.Time{}, false
}

func parseTimeLayouts(s string) (time.Time, bool) {
	for _, layout := range [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
