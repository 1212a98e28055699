# regent-agent configuration — read by regent-agent (agent issue). Placeholder: the schema is
# settled by that issue; names follow the controller's (flat attributes, flag = -name-with-dashes).
#   regent-agent -config /etc/regent/agent.hcl   (see deploy/regent-agent.service)

# Controller HTTP addresses; the agent tries them in order and follows leader forwarding.
controllers = ["https://10.0.0.1:8080", "https://10.0.0.2:8080", "https://10.0.0.3:8080"]
ca_file     = "/etc/regent/tls/cluster-ca.crt" # verifies the controllers' HTTP certificates

# Per-server robot token (regent-controller token create ...), file mode 0600.
token_file = "/etc/regent/agent.token"

# hypervisor: builds VMs with libvirt; network: virtual routers and VPNs. One or both.
roles = ["hypervisor", "network"]

data_dir = "/var/lib/regent-agent"

# Tenant segments: "vxlan" (default) or "vlan".
segment_mode  = "vxlan"
public_bridge = "br-public"   # bridge the routers' public veths attach to
vtep_addr     = "10.0.1.11"   # local VXLAN tunnel endpoint address

metrics_addr = "0.0.0.0:8090" # Prometheus /metrics

# libvirt_uri = "qemu:///system"
# domain_type = "kvm"         # "qemu" where there is no /dev/kvm
