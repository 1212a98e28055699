package rdata

import (
	"strings"
	"testing"
)

func TestOwner(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"@", "example.com", ""},
		{"", "", "blank"},
		{"   ", "", "blank"},
		{"WWW.Example.com.", "www.example.com", ""},
		{"*.wild.example.com", "*.wild.example.com", ""},
		{"_sip._tcp.example.com", "_sip._tcp.example.com", ""},
		{"www", "", "outside the domain"},
		{"www.example.org", "", "outside the domain"},
		{"badexample.com", "", "outside the domain"},
		{"a..example.com", "", "empty label"},
		{"a.*.example.com", "", "not valid"},
		{"-a.example.com", "", "not valid"},
		{strings.Repeat("a", 64) + ".example.com", "", "limit is 63"},
	} {
		got, err := Owner("example.com", c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Owner(%q) = %q, %v; want error containing %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Owner(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestZone(t *testing.T) {
	for in, ok := range map[string]bool{"Example.COM.": true, "a.b.c": true, "com": false, "": false,
		"ex ample.com": false, strings.Repeat("a.", 121) + "com": false, "2.0.192.in-addr.arpa": true} {
		if _, err := Zone(in); (err == nil) != ok {
			t.Errorf("Zone(%q) error = %v, want ok=%v", in, err, ok)
		}
	}
	// CloudCIX removes one trailing "/" (a URL-minded client's).
	for in, want := range map[string]string{"example.com/": "example.com", " Example.com./ ": "example.com"} {
		if got, err := Zone(in); err != nil || got != want {
			t.Errorf("Zone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Zone("example.com//"); err == nil {
		t.Error(`Zone("example.com//") accepted: only one "/" goes`)
	}
}

func TestCheck(t *testing.T) {
	const z = "example.com"
	for _, c := range []struct {
		name, typ string
		prio      uint32
		content   string
		ok        bool
	}{
		{"www.example.com", "A", 1, "192.0.2.1", true},
		{"www.example.com", "A", 1, "2001:db8::1", false},
		{"www.example.com", "A", 1, "192.0.2.1 ; comment", false},
		{"www.example.com", "A", 1, "banana", false},
		{"www.example.com", "AAAA", 1, "2001:db8::1", true},
		{"www.example.com", "AAAA", 1, "192.0.2.1", false},
		{"www.example.com", "AAAA", 1, "::ffff:192.0.2.1", false},
		{"sub.example.com", "NS", 1, "ns1.example.net", true},
		{"sub.example.com", "NS", 1, "ns_1.example.net", false},
		{"www.example.com", "CNAME", 1, "host1.example.com.", true},
		{"example.com", "CNAME", 1, "host1.example.com", false},
		{"www.example.com", "CNAME", 1, "a..b", false},
		{"www.example.com", "CNAME", 1, "WWW.example.com.", false},
		{"www.example.com", "CNAME", 1, "www.example.com.example.com", true},
		{"example.com", "MX", 10, "mail.example.com", true},
		{"example.com", "MX", 0, ".", true},
		{"example.com", "MX", 70000, "mail.example.com", false},
		{"example.com", "MX", 10, "10 mail.example.com", false},
		{"example.com", "MX", 10, "192.0.2.25", false},
		{"example.com", "MX", 10, "10 192.0.2.25", false},
		{"example.com", "MX", 10, "2001:db8::25", false},
		{"example.com", "MX", 10, "[192.0.2.25]", false},
		{"example.com", "MX", 10, "25.example.com", true},
		{"example.com", "TXT", 1, "v=spf1 -all", true},
		{"example.com", "TXT", 1, `"one" "two"`, true},
		{"example.com", "TXT", 1, strings.Repeat("x", 600), true},
		{"example.com", "TXT", 1, `"unterminated`, false},
		// Escapes in quoted strings (PowerDNS refuses "TEST\1" with 422).
		{"example.com", "TXT", 1, `"TEST\1"`, false},
		{"example.com", "TXT", 1, `"TEST\12"`, false},
		{"example.com", "TXT", 1, `"TEST\256"`, false},
		{"example.com", "TXT", 1, `"one" "two\9x"`, false},
		{"example.com", "TXT", 1, `"one" two\1`, false},
		{"example.com", "SPF", 1, `"v=spf1 \1 -all"`, false},
		{"example.com", "TXT", 1, `"say \"hi\""`, true},
		{"example.com", "TXT", 1, `"back\\slash\\"`, true},
		{"example.com", "TXT", 1, `"\065BC\255\000"`, true},
		{"example.com", "TXT", 1, `"semi\;colon\ space\x"`, true},
		{"example.com", "TXT", 1, `"TEST\0011"`, true},
		{"example.com", "TXT", 1, `TEST\1`, true}, // free text: a literal backslash
		{"example.com", "SPF", 1, "v=spf1 mx -all", true},
		{"_sip._tcp.example.com", "SRV", 10, "5 5060 sip.example.com", true},
		{"_sip._tcp.example.com", "SRV", 10, "10 5 5060 sip.example.com", false},
		{"_sip._tcp.example.com", "SRV", 10, "5 70000 sip.example.com", false},
		{"sip.example.com", "SRV", 10, "5 5060 sip.example.com", false},
		{"host.example.com", "SSHFP", 1, "4 2 " + strings.Repeat("ab", 32), true},
		{"host.example.com", "SSHFP", 1, "4 2 xyz", false},
		{"host.example.com", "SSHFP", 1, "5 2 " + strings.Repeat("ab", 32), false},
		{"host.example.com", "SSHFP", 1, "1 1 " + strings.Repeat("ab", 32), false},
		{"example.com", "LOC", 1, "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m", true},
		{"example.com", "LOC", 1, "95 22 23.000 N 4 53 32.000 E", false},
		{"example.com", "NAPTR", 1, `100 10 "U" "E2U+sip" "!^.*$!sip:info@example.com!" .`, true},
		{"example.com", "NAPTR", 1, `100 10 U E2U+sip x .`, false},
		{"www.example.com", "PTR", 1, "host.example.com", true},
		{"www.example.com", "SOA", 1, "a b 1 2 3 4 5", false},
		{"www.example.com", "A", 1, "", false},
		{"www.example.com", "A", 1, "1.2.3.4\n5.6.7.8", false},
	} {
		err := Check(z, c.name, c.typ, c.prio, c.content)
		if (err == nil) != c.ok {
			t.Errorf("Check(%s %s %d %q) = %v, want ok=%v", c.name, c.typ, c.prio, c.content, err, c.ok)
		}
	}
	if err := Check(z, z, "TXT", 1, `"TEST\1"`); err == nil || !strings.Contains(err.Error(), `ill-formed escape \1:`) {
		t.Errorf(`Check("TEST\1") = %v, want an ill-formed escape error`, err)
	}
	if err := Check(z, z, "TXT", 1, `"TEST\300"`); err == nil || !strings.Contains(err.Error(), `ill-formed escape \300:`) {
		t.Errorf(`Check("TEST\300") = %v, want an ill-formed escape error`, err)
	}
}

func TestRRPriorityAndQuoting(t *testing.T) {
	rr, err := RR("example.com", "MX", 300, 10, "mail.example.com")
	if err != nil || rr.String() != "example.com.\t300\tIN\tMX\t10 mail.example.com." {
		t.Fatalf("MX = %v, %v", rr, err)
	}
	rr, err = RR("_sip._tcp.example.com", "SRV", 300, 10, "5 5060 sip.example.com.")
	if err != nil || rr.String() != "_sip._tcp.example.com.\t300\tIN\tSRV\t10 5 5060 sip.example.com." {
		t.Fatalf("SRV = %v, %v", rr, err)
	}
	rr, err = RR("example.com", "TXT", 300, 1, `say "hi"`)
	if err != nil || rr.String() != "example.com.\t300\tIN\tTXT\t\"say \\\"hi\\\"\"" {
		t.Fatalf("TXT = %v, %v", rr, err)
	}
}

// FuzzCheck feeds arbitrary content to every type: Check must not panic,
// and whatever it accepts must build and pack.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "2001:db8::1", "mail.example.com", `"a" "b"`, "4 2 ab",
		"5 5060 sip.example.com", `100 10 "U" "E2U+sip" "!^.*$!sip:x@example.com!" .`, "52 N 4 E 2m", "\\", `"`} {
		f.Add("www.example.com", s, uint32(10))
	}
	types := []string{"NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "SPF", "SSHFP", "LOC", "NAPTR", "PTR"}
	f.Fuzz(func(t *testing.T, name, content string, prio uint32) {
		owner, err := Owner("example.com", name)
		if err != nil {
			return
		}
		for _, typ := range types {
			if Check("example.com", owner, typ, prio, content) != nil {
				continue
			}
			if _, err := RR(owner, typ, 3600, prio, content); err != nil {
				t.Fatalf("%s %q accepted by Check but RR fails: %v", typ, content, err)
			}
		}
	})
}

// TestCheckMXAddress: an MX exchange is a host name (RFC 5321 §5.1): an
// IPv4 or IPv6 literal, with or without a preference before it, is refused
// with a message that says so.
func TestCheckMXAddress(t *testing.T) {
	for _, c := range []string{"192.0.2.25", "192.0.2.25.", "10 192.0.2.25", "2001:db8::25", "10 2001:db8::25", "[192.0.2.25]"} {
		err := Check("example.com", "example.com", "MX", 10, c)
		if err == nil || !strings.Contains(err.Error(), "not the IP address") {
			t.Errorf("MX %q: %v, want an error that the exchange is an IP address", c, err)
		}
	}
	if err := Check("example.com", "example.com", "MX", 10, "10 mail.example.com"); err == nil || !strings.Contains(err.Error(), "priority field") {
		t.Errorf(`MX "10 mail.example.com": %v, want an error naming the priority field`, err)
	}
}

// TestCheckParseMessages: a content error speaks of the caller's content,
// not of the zone-file line Check builds (no "at line: 1:28").
func TestCheckParseMessages(t *testing.T) {
	for _, c := range []struct{ typ, content, want string }{
		{"TXT", `"unterminated`, "unterminated quoted string"},
		{"TXT", `"a" "b`, "unterminated quoted string"},
		{"SPF", `"v=spf1 \" -all`, "unterminated quoted string"},
		{"LOC", "95 0 0 N 0 0 0 E 0m", `the latitude "95" is not valid`},
		{"LOC", "north pole", `the latitude "north" is not valid`},
		{"LOC", "52 N 4 E", "the altitude is missing or not valid"},
		{"NAPTR", "100 10 U sip x .", `the flags "U" is not valid`},
	} {
		err := Check("example.com", "example.com", c.typ, 1, c.content)
		if err == nil {
			t.Errorf("%s %q accepted", c.typ, c.content)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "line") || strings.Contains(msg, "dns:") {
			t.Errorf("%s %q: %q, want a message with %q and no parser position", c.typ, c.content, msg, c.want)
		}
	}
	for _, ok := range []string{`"a" b`, `"say \"hi\""`, `"back\\"`} {
		if err := Check("example.com", "example.com", "TXT", 1, ok); err != nil {
			t.Errorf("TXT %q: %v", ok, err)
		}
	}
}
