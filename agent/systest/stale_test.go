package systest

import "testing"

// TestStalePatterns: the sweep of a killed run's leftovers takes what this
// package's tests name after their prefix (z + three characters) and
// nothing else: not the router tests' (y…), the VM unit tests' (rgt<n>-),
// an agent's defaults (rg…, regent-SSD) or a live host's names.
func TestStalePatterns(t *testing.T) {
	for _, c := range []struct {
		re   string
		name string
		want bool
	}{
		{"link", "zri0pub", true},
		{"link", "zri0P17", true},
		{"link", "zri0ha", true},
		{"link", "regent:zri0:segment:vxlan:10000", true},
		{"link", "zri0x10000", false}, // found through the prefix the others name
		{"link", "y3apub", false},
		{"link", "rgb10000", false},
		{"link", "eth0", false},
		{"domain", "zri0-1_1", true},
		{"domain", "rgt12-1_1", false},
		{"domain", "web1", false},
		{"pool", "regent-zri0-SSDzri0", true},
		{"pool", "regent-SSDzri0", true},
		{"pool", "regent-SSD", false},
		{"pool", "regent-rg-SSD", false},
		{"pool", "regent-rgt12-SSD", false},
	} {
		var got bool
		switch c.re {
		case "link":
			got = staleName.MatchString(c.name)
		case "domain":
			got = staleDomain.MatchString(c.name)
		case "pool":
			got = stalePool.MatchString(c.name)
		}
		if got != c.want {
			t.Errorf("%s %q stale = %v, want %v", c.re, c.name, got, c.want)
		}
	}
}
