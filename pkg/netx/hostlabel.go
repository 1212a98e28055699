package netx

import "strings"

// HostLabel is name made a DNS label, as a virtual router's DHCP server
// hands it out as a VM's host name: lower case, a-z and 0-9 kept, every
// run of other characters one inner hyphen, at most 63 characters; ""
// when nothing is left. Two VM names with one non-empty label would give
// two VMs of a project one host name.
func HostLabel(name string) string {
	var b strings.Builder
	hyphen := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if hyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			hyphen = false
			b.WriteRune(r)
			continue
		}
		hyphen = true
	}
	out := b.String()
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	return out
}
