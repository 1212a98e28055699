package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func strp(s string) *string { return &s }

func TestValidateIPs(t *testing.T) {
	if _, err := ValidateIPs(nil, nil); !errors.Is(err, ErrValidatorNoParams) {
		t.Fatal(err)
	}
	res, err := ValidateIPs(strp("10.0.0.1/24,10.0.0.0/8,1.2.3.4,10.0.0.0/x,300.0.0.0/8,10.0.0.0/33,fe::/129,10.0.0.0/24/1,192.0.2.0/ 25,10.0.0.1/24,fe80::/10,255.255.255.255/32,10.0.0.0/31"),
		strp("10.0.0.5,8.8.8.8,127.0.0.1,::1,nonsense,192.0.2.7,100.64.0.1,10.0.0.5"))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		input     string
		code      string
		cidr      string
		bcast     string
		reference string
		use       string
	}
	wants := []want{
		{"10.0.0.1/24", "", "10.0.0.0/24", "10.0.0.255", "RFC 1918", "Private-Use Networks"},
		{"10.0.0.0/8", "", "10.0.0.0/8", "10.255.255.255", "RFC 1918", "Private-Use Networks"},
		{"1.2.3.4", CodeRangeFormat, "", "", "", ""},
		{"10.0.0.0/x", CodeRangeMaskNotInt, "", "", "", ""},
		{"300.0.0.0/8", CodeRangeAddress, "", "", "", ""},
		{"10.0.0.0/33", CodeRangeMaskV4, "", "", "", ""},
		{"fe::/129", CodeRangeMaskV6, "", "", "", ""},
		{"10.0.0.0/24/1", CodeRangeFormat, "", "", "", ""},
		{"192.0.2.0/ 25", "", "192.0.2.0/25", "192.0.2.127", "RFC 5737", "TEST-NET-1"}, // Python int(" 25")
		{"fe80::/10", "", "fe80::/10", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "IPv6", "Public-Use Networks"},
		{"255.255.255.255/32", "", "255.255.255.255/32", "", "RFC 1122", "Reserved for Future Use"}, // 240/4 comes first
		{"10.0.0.0/31", "", "10.0.0.0/31", "", "RFC 1918", "Private-Use Networks"},
	}
	if len(res.AddressRanges) != len(wants) {
		t.Fatalf("%d ranges: %+v", len(res.AddressRanges), res.AddressRanges)
	}
	for i, w := range wants {
		r := res.AddressRanges[i]
		if r.Input != w.input {
			t.Fatalf("%d: input %q; want %q", i, r.Input, w.input)
		}
		if w.code != "" {
			if r.Valid || r.Error == nil || r.Error.Code != w.code || r.Error.Detail != ValidatorMessage(w.code) || r.Details != nil {
				t.Errorf("%s: %+v", w.input, r)
			}
			continue
		}
		d := r.Details
		if !r.Valid || r.Error != nil || d.CIDR != w.cidr || d.BroadcastAddress != w.bcast || d.Reference != w.reference || d.PresentUse != w.use {
			t.Errorf("%s: %+v %+v", w.input, r, d)
		}
	}
	d := res.AddressRanges[0].Details
	if !d.IPv4 || d.IPv6 || d.NetworkAddress != "10.0.0.0" || d.NetmaskAddress != "255.255.255.0" || d.HostmaskAddress != "0.0.0.255" {
		t.Fatalf("%+v", d)
	}
	if d := res.AddressRanges[9].Details; d.NetmaskAddress != "ffc0::" || !d.IPv6 {
		t.Fatalf("%+v", d)
	}
	addrs := map[string]*AddressDetails{}
	for _, a := range res.IPAddresses {
		addrs[a.Input] = a.Details
	}
	if len(res.IPAddresses) != 7 {
		t.Fatalf("%d addresses (duplicates must merge)", len(res.IPAddresses))
	}
	// parent_network: the last valid range containing it, as sent (the
	// repeated 10.0.0.1/24 comes after 10.0.0.0/8 in the input).
	if a := addrs["10.0.0.5"]; a == nil || a.ParentNetwork != "10.0.0.1/24" || !a.IsPrivate || a.IsReserved || a.IsLoopback {
		t.Fatalf("%+v", a)
	}
	if a := addrs["8.8.8.8"]; a.IsPrivate || a.ParentNetwork != "" {
		t.Fatalf("%+v", a)
	}
	if a := addrs["127.0.0.1"]; !a.IsLoopback || !a.IsReserved || !a.IsPrivate {
		t.Fatalf("%+v", a)
	}
	if a := addrs["::1"]; !a.IsLoopback || !a.IPv6 || !a.IsPrivate || !a.IsReserved {
		t.Fatalf("%+v", a)
	}
	if a := addrs["192.0.2.7"]; a.ParentNetwork != "192.0.2.0/25" || !a.IsReserved {
		t.Fatalf("%+v", a)
	}
	if a := addrs["100.64.0.1"]; !a.IsPrivate || a.IsReserved {
		t.Fatalf("%+v", a)
	}
	for _, a := range res.IPAddresses {
		if a.Input == "nonsense" && (a.Valid || a.Error.Code != CodeAddressInvalid) {
			t.Fatalf("%+v", a)
		}
	}
	// Empty parameters are empty lists.
	res, err = ValidateIPs(strp(""), nil)
	if err != nil || len(res.AddressRanges) != 0 || len(res.IPAddresses) != 0 {
		t.Fatal(res, err)
	}
	// A mask that Python's int() rejects vs one it accepts but netaddr refuses.
	res, _ = ValidateIPs(strp("10.0.0.0/2_4,10.0.0.0/-1,10.0.0.0/__1,10.0.0.0/,10.0.0.0/+8"), nil)
	codes := []string{"", CodeRangeMaskV4, CodeRangeMaskNotInt, CodeRangeMaskNotInt, ""}
	for i, c := range codes {
		r := res.AddressRanges[i]
		if (c == "") != r.Valid || (c != "" && r.Error.Code != c) {
			t.Errorf("%s: %+v", r.Input, r)
		}
	}
}

func TestIsGlobalAndReserved(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "10.1.1.1": false, "192.0.0.9": true, "192.0.0.8": false, "224.0.0.1": true,
		"2001:4860::8888": true, "fd00::1": false, "2001:db8::1": false, "2001:20::1": true, "::ffff:8.8.8.8": false,
	} {
		if IsGlobal(netip.MustParseAddr(s)) != want {
			t.Errorf("IsGlobal(%s) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{
		"0.1.2.3": true, "225.1.1.1": true, "232.1.1.1": false, "238.255.255.255": true, "192.88.99.1": true,
		"8.8.8.8": false, "::1": true, "2001:db8::1": false, "fe80::1": false, "fe00::1": true, "ff01::1": true, "ff10::1": false,
	} {
		if IsReserved(netip.MustParseAddr(s)) != want {
			t.Errorf("IsReserved(%s) != %v", s, want)
		}
	}
}
