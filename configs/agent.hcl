# regent-agent configuration.
#   regent-agent -config /etc/regent/agent.hcl   (see deploy/regent-agent.service)
# Every attribute is also a flag (-name-with-dashes); flags override the file.

# Controller HTTP base URLs. The agent uses one and fails over to the next on
# transport errors and 502/503/504 (followers forward to the leader).
controllers = ["https://10.0.0.1:8080", "https://10.0.0.2:8080", "https://10.0.0.3:8080"]
ca_file     = "/etc/regent/tls/cluster-ca.crt" # verifies the controllers' HTTPS certificates (read again when one is not trusted)

# The region's robot token (POST /membership/token/ {"kind":"robot","region_id":N}),
# file mode 0600. Or: token = "..." (not both).
token_file = "/etc/regent/agent.token"

# How the controller finds this host's server (hypervisor) and router (network)
# records: their hostname, or their asset_tag. Default: os.Hostname().
# hostname = "edge-1"

# hypervisor: builds the VMs through libvirtd, keeps their network segments (bridge + VXLAN
# per VNI) and reports the server's capacity; network: builds the project virtual routers.
# One or both.
roles = ["hypervisor", "network"]

data_dir = "/var/lib/regent-agent" # default; the directories below default to subdirectories of it

# Storage type (as named in /iaas/storage_type/) → directory of its disks. The
# hypervisor role makes each one a libvirt dir pool (regent-<domain_prefix><type>)
# and reports its size and free space. QEMU (libvirt-qemu) must reach it.
storage = {
  SSD = "/var/lib/regent-agent/disks"
}

# Hypervisor role: VMs through libvirtd (docs/vm.md).
# libvirt_socket   = "/var/run/libvirt/libvirt-sock"
# domain_type      = "kvm"      # or "qemu" (TCG) where there is no /dev/kvm; default: kvm if /dev/kvm exists
# domain_prefix    = ""         # domains are <prefix><project_id>_<vm_id>; the agent owns (and
#                               # garbage-collects) those of that shape that carry its
#                               # metadata tag (others are left alone); letters,
#                               # digits, - _ . only (at most 32)
# storage_root     = "/var/lib/regent-agent/pools"   # pools of storage types not in `storage`
# image_dir        = "/var/lib/regent-agent/images"  # resolves relative image sources
# seed_dir         = "/var/lib/regent-agent/seeds"   # NoCloud seed ISOs
# console_log_dir  = "/var/lib/regent-agent/console" # serial console logs
# backup_dir       = "/var/lib/regent-agent/backups" # VM backups: <backup_dir>/<domain>/backup-<id>/
#                               # (one qcow2 per disk, the domain XML, manifest.json); created if
#                               # missing; if it cannot be made or written the backup goes
#                               # UNRESOURCED with error_code vm_backup_dir
# shutdown_timeout = "2m"       # ACPI shutdown wait before quiesce destroys the domain
# image_retention  = "24h"      # an image volume no VM of this host, disk or backup uses is
#                               # removed after this long ("0s": as soon as it is unused)

# Tenant segments (both roles): "vxlan" (default) or "vlan".
segment_mode    = "vxlan"
public_bridge   = "br-public"  # default; bridge of the region's floating subnet (network role, created if missing)
# public_bridge_addr = "198.51.100.1/24" # only on a host that is the floating gateway
vtep_addr       = "10.0.1.11"  # local VXLAN tunnel endpoint address (required with vxlan)
underlay_device = "eth1"       # link of the VTEP (vxlan, optional) or VLAN parent (vlan, required)
# link_prefix      = "rg"      # host link names and ownership tags (1-4 letters, digits, - _ .)
# namespace_prefix = "P"       # router namespaces are P<project_id> (letters, digits, - _ .)

# Network role: site-to-site VPNs, one strongSwan charon per router namespace over VICI
# (docs/netrouter.md). vpn_mode "xfrm" (production: kernel IPsec, an XFRM interface per VPN) or
# "libipsec" (userspace ESP over a TUN device, for hosts without kernel ESP); default: xfrm where
# the kernel can create XFRM interfaces.
# vpn_mode    = "xfrm"
# charon_path = "/usr/sbin/charon-systemd"
# vpn_run_dir = "/var/lib/regent-agent/vpn" # per-router strongswan.conf, VICI socket, pid and
#                                             # state file, charon log; charons outlive the agent
#                                             # and the next agent adopts them from here;
#                                             # <vpn_run_dir>/<namespace_prefix><project id>/charon.vici
#                                             # must fit 107 bytes (a unix socket path)

# Prometheus /metrics and /healthz (default 127.0.0.1:8090; "off": none). They need no token:
# listen on this host's management address, the one Prometheus scrapes, never on 0.0.0.0 where
# a public interface would serve them, and firewall the port to the Prometheus servers.
metrics_addr = "10.0.0.11:8090"
log_level    = "info"         # default; trace, debug, info, warn, error
log_json     = false          # default; true: JSON lines
# work_wait       = "5m"      # one blocking work query
# resync_interval = "5m"      # re-apply every router and VM although unchanged (drift repair)
