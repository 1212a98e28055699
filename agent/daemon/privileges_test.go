package daemon

import (
	"strings"
	"testing"
)

// TestCheckCaps: without CAP_NET_ADMIN (and CAP_SYS_ADMIN for the
// network role) the agent refuses to start with one error that says to
// run it as root, rather than failing at its first nftables call.
func TestCheckCaps(t *testing.T) {
	status := func(eff string) string {
		return "Name:\tregent-agent\nUid:\t1000\t1000\t1000\t1000\nCapInh:\t0000000000000000\nCapEff:\t" + eff + "\nCapBnd:\t000001ffffffffff\n"
	}
	for _, tc := range []struct {
		eff     string
		roles   []string
		missing string // "" ok
	}{
		{"000001ffffffffff", []string{"hypervisor", "network"}, ""},
		{"0000000000001000", []string{"hypervisor"}, ""}, // CAP_NET_ADMIN alone
		{"0000000000001000", []string{"network"}, "without CAP_SYS_ADMIN"},
		{"0000000000000000", []string{"hypervisor"}, "without CAP_NET_ADMIN"},
		{"0000000000000000", []string{"hypervisor", "network"}, "without CAP_NET_ADMIN, CAP_SYS_ADMIN"},
	} {
		err := checkCaps(status(tc.eff), 1000, tc.roles)
		switch {
		case tc.missing == "" && err != nil:
			t.Errorf("%s %v: %v", tc.eff, tc.roles, err)
		case tc.missing != "" && (err == nil || !strings.Contains(err.Error(), tc.missing) ||
			!strings.Contains(err.Error(), "must run as root: ") || !strings.Contains(err.Error(), "uid 1000")):
			t.Errorf("%s %v: %v, want %q", tc.eff, tc.roles, err, tc.missing)
		}
	}
	if err := checkCaps("Name:\tx\n", 0, []string{"network"}); err != nil {
		t.Errorf("no CapEff line: %v", err)
	}
}
