// Package rdata validates DNS records as the CloudCIX Record API carries them
// (owner name, type, TTL, a separate priority, and content) and turns them
// into resource records. The API uses it to refuse bad input with a clear
// message; the DNS server uses it to build what it serves, so both agree on
// what a record means.
//
// Names are absolute: a record's name is its full owner name ("www.example.com"
// or "@" for the apex) and target names in content ("mail.example.com") are
// fully qualified whether or not they end in a dot.
package rdata

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
)

// Zone normalises a domain (zone) name: trimmed, lower case, without the
// trailing dot (and without one trailing "/", which CloudCIX removes too).
// It must be a syntactically valid name of at least two labels, at most
// 240 characters (CloudCIX), labels at most 63.
func Zone(s string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "/"), "."))
	if n == "" {
		return "", fmt.Errorf("the domain name is empty")
	}
	if len(n) > 240 {
		return "", fmt.Errorf("the domain name is %d characters long; the limit is 240", len(n))
	}
	if err := labels(n, false, false); err != nil {
		return "", err
	}
	if !strings.Contains(n, ".") {
		return "", fmt.Errorf("%q is a top-level domain; a domain needs at least two labels", n)
	}
	return n, nil
}

// Owner normalises the name of a record of zone: "@" is the apex, a
// name must equal the zone or end in "."+zone (a trailing dot is allowed);
// a blank name is refused.
// A leading "*" label makes a wildcard; underscores are allowed (SRV, DKIM).
func Owner(zone, name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if n == "@" {
		return zone, nil
	}
	if n == "" {
		return "", fmt.Errorf("the name is blank: give the full name, such as www.%s, or @ for the apex", zone)
	}
	if n != zone && !strings.HasSuffix(n, "."+zone) {
		return "", fmt.Errorf("the name %q is outside the domain %s: give the full name, such as www.%s, or @ for the apex", name, zone, zone)
	}
	if len(n) > 253 {
		return "", fmt.Errorf("the name is %d characters long; the limit is 253", len(n))
	}
	if err := labels(n, true, true); err != nil {
		return "", err
	}
	return n, nil
}

// labels checks the syntax of every label of n.
func labels(n string, underscore, wildcard bool) error {
	for i, l := range strings.Split(n, ".") {
		if l == "" {
			return fmt.Errorf("%q has an empty label", n)
		}
		if len(l) > 63 {
			return fmt.Errorf("the label %q is %d characters long; the limit is 63", l, len(l))
		}
		if l == "*" && wildcard && i == 0 {
			continue
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c >= 'A' && c <= 'Z':
			case c == '-' && j > 0 && j < len(l)-1:
			case c == '_' && underscore:
			default:
				return fmt.Errorf("the label %q of %q is not valid: use letters, digits and inner hyphens", l, n)
			}
		}
	}
	return nil
}

// hostname checks a target name: "." only when allowRoot.
func hostname(field, s string, allowRoot, underscore bool) error {
	t := strings.TrimSuffix(s, ".")
	if t == "" {
		if allowRoot && s == "." {
			return nil
		}
		return fmt.Errorf("%s must be a host name", field)
	}
	if len(t) > 253 {
		return fmt.Errorf("%s is longer than 253 characters", field)
	}
	if err := labels(strings.ToLower(t), underscore, false); err != nil {
		return fmt.Errorf("%s %q is not a host name: %v", field, s, err)
	}
	return nil
}

// NameError is an error of Check about the record's owner name, not its
// content (an SRV record not at a _service._proto name).
type NameError struct{ msg string }

func (e *NameError) Error() string { return e.msg }

// Check validates the content (and, for MX and SRV, the priority) of a
// record of type typ at owner name, already normalised by Owner. The
// message of the error is meant for the API's caller; a *NameError is
// about the name.
func Check(zone, name, typ string, priority uint32, content string) error {
	content = strings.TrimSpace(content)
	if content == "" {
		return fmt.Errorf("content is empty")
	}
	if len(content) > 255 && typ != "TXT" && typ != "SPF" {
		return fmt.Errorf("content is %d characters long; the limit is 255", len(content))
	}
	for _, r := range content {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("content contains a control character")
		}
	}
	if typ != "TXT" && typ != "SPF" && typ != "NAPTR" && strings.ContainsAny(content, ";()$\"\\") {
		return fmt.Errorf("content of a %s record may not contain ; ( ) $ \" or \\", typ)
	}
	switch typ {
	case "A":
		a, err := netip.ParseAddr(content)
		if err != nil || !a.Is4() {
			return fmt.Errorf("content of an A record must be an IPv4 address such as 192.0.2.1, got %q", content)
		}
	case "AAAA":
		a, err := netip.ParseAddr(content)
		if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return fmt.Errorf("content of an AAAA record must be an IPv6 address such as 2001:db8::1, got %q", content)
		}
	case "NS":
		if err := hostname("content", content, false, false); err != nil {
			return err
		}
	case "CNAME":
		if name == zone {
			return fmt.Errorf("a CNAME record cannot be at the apex of the domain (it holds the SOA and NS records)")
		}
		if err := hostname("content", content, false, true); err != nil {
			return err
		}
		if strings.EqualFold(strings.TrimSuffix(content, "."), name) {
			return fmt.Errorf("a CNAME record cannot point to its own name %s: it would be a loop that resolvers answer with SERVFAIL", name)
		}
	case "PTR":
		if err := hostname("content", content, false, true); err != nil {
			return err
		}
	case "MX":
		if priority > 65535 {
			return fmt.Errorf("priority (the MX preference) must be between 0 and 65535")
		}
		f := strings.Fields(content)
		if a, err := netip.ParseAddr(strings.Trim(strings.TrimSuffix(f[len(f)-1], "."), "[]")); err == nil {
			return fmt.Errorf("the mail exchange must be a host name, not the IP address %s (RFC 5321 section 5.1): name a host that has an A or AAAA record", a)
		}
		if _, err := strconv.ParseUint(f[0], 10, 16); err == nil && len(f) == 2 {
			return fmt.Errorf("content of an MX record is the mail exchange only: its preference goes in the priority field")
		}
		if err := hostname("content (the mail exchange)", content, true, false); err != nil {
			return err
		}
	case "SRV":
		if priority > 65535 {
			return fmt.Errorf("priority must be between 0 and 65535")
		}
		l := strings.Split(name, ".")
		if len(l) < 3 || !strings.HasPrefix(l[0], "_") || !strings.HasPrefix(l[1], "_") {
			return &NameError{fmt.Sprintf("the name of an SRV record must be _service._proto.<name>, such as _sip._tcp.%s", zone)}
		}
		f := strings.Fields(content)
		if len(f) != 3 {
			return fmt.Errorf("content of an SRV record is \"weight port target\" (the priority is its own field), got %d fields", len(f))
		}
		for i, what := range []string{"weight", "port"} {
			if _, err := strconv.ParseUint(f[i], 10, 16); err != nil {
				return fmt.Errorf("the SRV %s must be an integer between 0 and 65535, got %q", what, f[i])
			}
		}
		if err := hostname("the SRV target", f[2], true, false); err != nil {
			return err
		}
	case "SSHFP":
		f := strings.Fields(content)
		if len(f) != 3 {
			return fmt.Errorf("content of an SSHFP record is \"algorithm type fingerprint\", got %d fields", len(f))
		}
		switch f[0] {
		case "1", "2", "3", "4", "6":
		default:
			return fmt.Errorf("the SSHFP algorithm must be 1 (RSA), 2 (DSA), 3 (ECDSA), 4 (Ed25519) or 6 (Ed448), got %q", f[0])
		}
		want := map[string]int{"1": 40, "2": 64}[f[1]]
		if want == 0 {
			return fmt.Errorf("the SSHFP fingerprint type must be 1 (SHA-1) or 2 (SHA-256), got %q", f[1])
		}
		if _, err := hex.DecodeString(f[2]); err != nil || len(f[2]) != want {
			return fmt.Errorf("the SSHFP fingerprint must be %d hexadecimal digits for type %s", want, f[1])
		}
	case "TXT", "SPF", "LOC", "NAPTR":
		// syntax through the parser below
	default:
		return fmt.Errorf("type %q is not supported", typ)
	}
	rr, err := RR(name, typ, RecordTTLForCheck, priority, content)
	if err != nil {
		return err
	}
	switch r := rr.(type) {
	case *mdns.NAPTR:
		if err := hostname("the NAPTR replacement", r.Replacement, true, true); err != nil {
			return err
		}
	case *mdns.TXT:
		if err := strs(r.Txt); err != nil {
			return err
		}
	case *mdns.SPF:
		if err := strs(r.Txt); err != nil {
			return err
		}
	}
	buf := make([]byte, mdns.MaxMsgSize)
	if _, err := mdns.PackRR(rr, buf, 0, nil, false); err != nil {
		return fmt.Errorf("content of the %s record does not encode: %v", typ, err)
	}
	return nil
}

// RecordTTLForCheck is the TTL Check builds with; it does not matter.
const RecordTTLForCheck = 3600

func strs(ss []string) error {
	if len(ss) == 0 {
		return fmt.Errorf("content holds no text")
	}
	total := 0
	for _, s := range ss {
		total += len(s) + 1
		if err := escapes(s); err != nil {
			return err
		}
	}
	if total > 4000 {
		return fmt.Errorf("the text is too long (%d bytes; the limit is 4000)", total)
	}
	return nil
}

// escapes checks the escapes of a character-string as the zone-file parser
// leaves it (quoted content keeps them; free text is quoted by RR with
// every backslash escaped). A backslash takes either three digits of value
// at most 255 (\DDD) or one character that is not a digit (\" \\ \X);
// miekg/dns would otherwise pack "\1" as "1", "\256" as a wrapped byte
// and drop a trailing backslash.
func escapes(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if i == len(s) {
			return fmt.Errorf("content ends in a lone backslash: write \\\\ for a backslash")
		}
		if !isDigit(s[i]) {
			continue
		}
		if i+3 > len(s) || !isDigit(s[i+1]) || !isDigit(s[i+2]) {
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			return fmt.Errorf("content holds the ill-formed escape %s: a backslash takes three digits (\\DDD, at most 255) or one character that is not a digit", s[i-1:j])
		}
		if v := int(s[i]-'0')*100 + int(s[i+1]-'0')*10 + int(s[i+2]-'0'); v > 255 {
			return fmt.Errorf("content holds the ill-formed escape %s: \\DDD takes a value from 000 to 255", s[i-1:i+3])
		}
		i += 2
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// RR builds the resource record for a record. MX and SRV take their
// priority (preference) from the priority field; TXT and SPF content that
// is not already quoted is one text, split into 255-byte strings.
func RR(name, typ string, ttl, priority uint32, content string) (mdns.RR, error) {
	content = strings.TrimSpace(content)
	rdata := content
	switch typ {
	case "MX", "SRV":
		rdata = strconv.FormatUint(uint64(priority), 10) + " " + content
	case "TXT", "SPF":
		if !strings.HasPrefix(content, "\"") {
			rdata = quote(content)
		} else if unterminated(content) {
			return nil, fmt.Errorf("content has an unterminated quoted string: end it with \" (write \\\" for a quote inside it), or send the text without quotes")
		}
	case "A", "AAAA", "NS", "CNAME", "PTR", "SSHFP", "LOC", "NAPTR":
	default:
		return nil, fmt.Errorf("type %q is not supported", typ)
	}
	if t := typ; t == "NS" || t == "CNAME" || t == "PTR" {
		rdata = mdns.Fqdn(rdata)
	}
	line := mdns.Fqdn(name) + " " + strconv.FormatUint(uint64(ttl), 10) + " IN " + typ + " " + rdata
	rr, err := mdns.NewRR(line)
	if err != nil {
		return nil, fmt.Errorf("content is not a valid %s record: %s", typ, parseMessage(err))
	}
	if rr == nil || rr.Header().Rrtype != mdns.StringToType[typ] {
		return nil, fmt.Errorf("content is not a valid %s record", typ)
	}
	return rr, nil
}

// quote turns free text into DNS character-strings of at most 255 bytes.
func quote(s string) string {
	var b strings.Builder
	for len(s) > 0 || b.Len() == 0 {
		n := len(s)
		if n > 255 {
			n = 255
		}
		chunk := s[:n]
		s = s[n:]
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for i := 0; i < len(chunk); i++ {
			if c := chunk[i]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(chunk[i])
		}
		b.WriteByte('"')
		if len(s) == 0 {
			break
		}
	}
	return b.String()
}

// parseMessage turns miekg's parse error ("dns: bad LOC Latitude: "95"
// at line: 1:28") into words about the caller's content ("the latitude
// "95" is not valid"): its line and column refer to the synthesised
// zone-file line, not to anything the caller sent.
func parseMessage(err error) string {
	pe, ok := err.(*mdns.ParseError)
	if !ok {
		return err.Error()
	}
	msg := strings.TrimPrefix(pe.Error(), "dns: ")
	if i := strings.LastIndex(msg, " at line: "); i >= 0 {
		msg = msg[:i]
	}
	what, tok := msg, ""
	if i := strings.Index(msg, `: "`); i >= 0 {
		what = msg[:i]
		if t, err := strconv.Unquote(msg[i+2:]); err == nil {
			tok = strings.TrimSpace(t)
		}
	}
	// "bad LOC Latitude" names the part of the content that is wrong.
	if f := strings.Fields(what); len(f) >= 3 && f[0] == "bad" {
		what = "the " + strings.ToLower(strings.Join(f[2:], " "))
	}
	if tok == "" {
		return what + " is missing or not valid"
	}
	return fmt.Sprintf("%s %q is not valid", what, tok)
}

// unterminated reports whether quoted content leaves a quoted string open
// (a backslash escapes the character after it).
func unterminated(s string) bool {
	in := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			in = !in
		}
	}
	return in
}
