package netx

import (
	"strconv"
	"strings"
)

// MAC is a 48-bit IEEE 802 MAC address held in the low 48 bits of a uint64
// (first octet in bits 47–40), the integer form in which Melange stores MACs.
//
// Bit rules (IEEE 802, as used by cloudcix-facts §6.6): in the first octet,
// bit 0 (0x01) is the I/G bit — 1 means group (multicast), 0 unicast — and
// bit 1 (0x02) is the U/L bit — 1 means locally administered, 0 universally
// administered (an OUI assigned by the IEEE). A MAC for a guest NIC must be
// unicast, and a MAC made up by us should be locally administered, so its
// first octet matches xxxxxx10 (0x02, 0x06, 0x0a, … 0x52, … 0xfe).
type MAC uint64

// MaxMAC is ff:ff:ff:ff:ff:ff.
const MaxMAC MAC = 1<<48 - 1

// MAC bit masks on the first octet (bits 40 and 41 of the integer).
const (
	macGroupBit MAC = 0x01 << 40 // I/G: multicast
	macLocalBit MAC = 0x02 << 40 // U/L: locally administered
)

// IsMulticast reports whether the I/G bit is set.
func (m MAC) IsMulticast() bool { return m&macGroupBit != 0 }

// IsUnicast reports whether the I/G bit is clear.
func (m MAC) IsUnicast() bool { return m&macGroupBit == 0 }

// IsLocal reports whether the U/L bit is set (locally administered).
func (m MAC) IsLocal() bool { return m&macLocalBit != 0 }

// IsLocalUnicast reports whether m is locally administered and unicast: its
// first octet is xxxxxx10.
func (m MAC) IsLocalUnicast() bool { return m.IsLocal() && m.IsUnicast() }

// Valid reports whether m fits in 48 bits.
func (m MAC) Valid() bool { return m <= MaxMAC }

// Bytes returns the six octets of m.
func (m MAC) Bytes() [6]byte {
	var b [6]byte
	for i := 5; i >= 0; i-- {
		b[i] = byte(m)
		m >>= 8
	}
	return b
}

// MACFromBytes builds a MAC from six octets.
func MACFromBytes(b [6]byte) MAC {
	var m MAC
	for _, x := range b {
		m = m<<8 | MAC(x)
	}
	return m
}

// Format writes m as six two-digit hex octets joined by sep, in upper or
// lower case.
func (m MAC) Format(sep byte, upper bool) string {
	hex := "0123456789abcdef"
	if upper {
		hex = "0123456789ABCDEF"
	}
	b := m.Bytes()
	out := make([]byte, 0, 17)
	for i, x := range b {
		if i > 0 {
			out = append(out, sep)
		}
		out = append(out, hex[x>>4], hex[x&0xf])
	}
	return string(out)
}

// String returns the UNIX form "aa:bb:cc:dd:ee:ff".
func (m MAC) String() string { return m.Format(':', false) }

// EUI returns the IEEE EUI-48 form "AA-BB-CC-DD-EE-FF" (netaddr's str(EUI),
// Melange's internal form).
func (m MAC) EUI() string { return m.Format('-', true) }

// ParseMAC parses a MAC address in any of the forms netaddr's EUI accepts,
// which are the forms Melange accepts, case-insensitively:
//
//	aa:bb:cc:dd:ee:ff   six groups of 1–2 hex digits separated by ':' (a:b:c:0:0:0 too)
//	aa-bb-cc-dd-ee-ff   the same with '-'
//	aabb.ccdd.eeff      three groups of 1–4 hex digits separated by '.', ':' or '-'
//	aabbcc:ddeeff       two groups of 5–6 hex digits separated by ':' or '-'
//	aabbccddeeff        12 (or 11) bare hex digits
//
// Surrounding space and mixed separators are errors.
func ParseMAC(s string) (MAC, error) {
	bad := func(msg string) (MAC, error) {
		return 0, &ParseError{Kind: "MAC address", Input: s, Msg: msg}
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > 17 {
		return bad("too long")
	}
	var sep byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isHex(c) {
			continue
		}
		if c != ':' && c != '-' && c != '.' {
			return bad("unexpected character " + strconv.QuoteRune(rune(c)))
		}
		if sep != 0 && c != sep {
			return bad("mixed separators")
		}
		sep = c
	}
	if sep == 0 {
		if len(s) != 12 && len(s) != 11 {
			return bad("bare form needs 12 hex digits")
		}
		v, _ := strconv.ParseUint(s, 16, 64)
		return MAC(v), nil
	}
	groups := strings.Split(s, string(sep))
	var width, minDigits, maxDigits int
	switch {
	case len(groups) == 6 && sep != '.':
		width, minDigits, maxDigits = 8, 1, 2
	case len(groups) == 3:
		width, minDigits, maxDigits = 16, 1, 4
	case len(groups) == 2 && sep != '.':
		width, minDigits, maxDigits = 24, 5, 6
	default:
		return bad("wrong number of groups")
	}
	var m MAC
	for _, g := range groups {
		if len(g) < minDigits || len(g) > maxDigits {
			return bad("group " + strconv.Quote(g) + " has the wrong number of digits")
		}
		v, _ := strconv.ParseUint(g, 16, 32)
		m = m<<width | MAC(v)
	}
	return m, nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// MACRange is a block of MAC addresses written like a CIDR over the 48-bit
// MAC space, as Melange's MacAddressRange ("BC:76:4E:20:00:00/27"). Base has
// its host bits cleared; the range holds 2^(48 − Bits) addresses.
type MACRange struct {
	Base MAC
	Bits int
}

// ParseMACRange parses "MAC/length" with a MAC in any ParseMAC form and a
// decimal length 0–48. The base is normalised by clearing the host bits, as
// Melange computes first_address = base & netmask.
func ParseMACRange(s string) (MACRange, error) {
	bad := func(msg string) (MACRange, error) {
		return MACRange{}, &ParseError{Kind: "MAC range", Input: s, Msg: msg}
	}
	i := strings.IndexByte(s, '/')
	if i < 0 {
		return bad("missing prefix length")
	}
	ms, ls := s[:i], s[i+1:]
	if strings.IndexByte(ls, '/') >= 0 {
		return bad("more than one '/'")
	}
	m, err := ParseMAC(ms)
	if err != nil {
		return bad("bad MAC address " + strconv.Quote(ms))
	}
	n, msg := parseLength(ls, 48)
	if msg != "" {
		return bad(strings.Replace(msg, "IPv4", "MAC", 1))
	}
	return NewMACRange(m, n), nil
}

// NewMACRange returns the range of the given length containing m. It panics
// if bits is outside 0–48.
func NewMACRange(m MAC, bits int) MACRange {
	if bits < 0 || bits > 48 {
		panic("netx: MAC range length out of range")
	}
	return MACRange{Base: m &^ MAC(macHostMask(bits)), Bits: bits}
}

func macHostMask(bits int) uint64 { return 1<<(48-uint(bits)) - 1 }

// First returns the first MAC of r.
func (r MACRange) First() MAC { return r.Base }

// Last returns the last MAC of r.
func (r MACRange) Last() MAC { return r.Base | MAC(macHostMask(r.Bits)) }

// Size returns the number of MACs in r, 2^(48 − Bits).
func (r MACRange) Size() uint64 { return macHostMask(r.Bits) + 1 }

// Contains reports whether m lies in r.
func (r MACRange) Contains(m MAC) bool { return m >= r.First() && m <= r.Last() }

// IsLocalUnicast reports whether every MAC in r is locally administered
// unicast: the first octet is fixed by the prefix (Bits ≥ 8) and matches
// xxxxxx10.
func (r MACRange) IsLocalUnicast() bool { return r.Bits >= 8 && r.Base.IsLocalUnicast() }

// String returns the range as "aa:bb:cc:00:00:00/24".
func (r MACRange) String() string { return r.Base.String() + "/" + strconv.Itoa(r.Bits) }
