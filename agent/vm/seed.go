package vm

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/regentcloud/regent/pkg/api"
)

// The NoCloud seed: cloud-init finds a filesystem labelled "cidata" with
// user-data, meta-data and network-config. The router's metadata service
// (the CloudCIX datasource, selected by the SMBIOS product) answers the
// same things over HTTP; the seed makes a VM configure itself even before
// its router is up.

// q quotes a YAML scalar (a JSON string is a valid YAML double-quoted one).
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// instanceID is CloudCIX's <project>_<vm> unless the controller set one.
func instanceID(spec *api.VMSpec) string {
	if spec.Metadata.InstanceID != "" {
		return spec.Metadata.InstanceID
	}
	return fmt.Sprintf("%d_%d", spec.ProjectID, spec.ID)
}

func hostname(spec *api.VMSpec) string {
	if spec.Metadata.Hostname != "" {
		return spec.Metadata.Hostname
	}
	if spec.Name != "" {
		return spec.Name
	}
	return "vm" + instanceID(spec)
}

// seedFiles renders the three NoCloud files of a VM.
func seedFiles(spec *api.VMSpec) ([]isoFile, error) {
	// The SSH keys go in meta-data (NoCloud's public-keys, for the
	// image's default user), so that they reach the VM whether or not the
	// tenant sent userdata of its own.
	var m strings.Builder
	fmt.Fprintf(&m, "instance-id: %s\nlocal-hostname: %s\n", q(instanceID(spec)), q(hostname(spec)))
	if len(spec.Metadata.PublicKeys) > 0 {
		m.WriteString("public-keys:\n")
		for _, k := range spec.Metadata.PublicKeys {
			fmt.Fprintf(&m, "  - %s\n", q(k))
		}
	}
	meta := m.String()

	user := spec.Metadata.Userdata
	if user == "" {
		user = fmt.Sprintf("#cloud-config\nhostname: %s\n", q(hostname(spec)))
	}

	var n strings.Builder
	n.WriteString("version: 2\nethernets:\n")
	for i, c := range spec.NICs {
		mac := strings.ToLower(c.MAC)
		fmt.Fprintf(&n, "  nic%d:\n    match:\n      macaddress: %s\n    set-name: %s\n", i, q(mac), q(fmt.Sprintf("eth%d", i)))
		if len(c.Addresses) == 0 {
			n.WriteString("    dhcp4: true\n")
			continue
		}
		n.WriteString("    addresses:\n")
		for _, a := range c.Addresses {
			if _, err := netip.ParsePrefix(a); err != nil {
				return nil, fmt.Errorf("nics[%d]: address %q is not address/length", i, a)
			}
			fmt.Fprintf(&n, "      - %s\n", q(a))
		}
		// The first NIC is the gateway subnet's: the default route goes there.
		if i == 0 && c.Gateway != "" {
			if _, err := netip.ParseAddr(c.Gateway); err != nil {
				return nil, fmt.Errorf("nics[%d]: gateway %q is not an address", i, c.Gateway)
			}
			fmt.Fprintf(&n, "    routes:\n      - to: default\n        via: %s\n", q(c.Gateway))
		}
		// ... and the VM's DNS servers.
		if i == 0 && len(spec.Metadata.DNS) > 0 {
			n.WriteString("    nameservers:\n      addresses:\n")
			for _, d := range spec.Metadata.DNS {
				if _, err := netip.ParseAddr(d); err != nil {
					return nil, fmt.Errorf("dns %q is not an address", d)
				}
				fmt.Fprintf(&n, "        - %s\n", q(d))
			}
		}
	}
	return []isoFile{
		{Name: "meta-data", Data: []byte(meta)},
		{Name: "network-config", Data: []byte(n.String())},
		{Name: "user-data", Data: []byte(user)},
	}, nil
}

// seedISO renders a VM's NoCloud seed image.
func seedISO(spec *api.VMSpec) ([]byte, error) {
	files, err := seedFiles(spec)
	if err != nil {
		return nil, err
	}
	return buildISO("cidata", files)
}
