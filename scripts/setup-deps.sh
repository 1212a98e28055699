#!/usr/bin/env bash
# Installs the Debian packages Regent's tests and dev tools need. Idempotent: when everything
# is present it only runs dpkg-query (no network, well under a second).
# Not root: prints what is missing and exits 0 (tests then skip their system parts).
set -euo pipefail

PACKAGES=(
  # build and test tooling (gcc and libc6-dev: go test -race needs cgo)
  git make curl jq gcc libc6-dev
  # networking used by router/system tests: ip netns/veth/bridge/vxlan, nft, sysctl/pgrep/fuser
  iproute2 nftables procps psmisc
  # controller failure tests: tmpfs data dirs (mount), an unwritable raft store (chattr +i)
  mount e2fsprogs
  # virtual routers (agent/netrouter): DHCP server in the namespace; DHCP client and ping for the test VMs
  dnsmasq-base isc-dhcp-client iputils-ping
  # --- added by the agent/DNS issues (uncomment there) ---
  # VMs: libvirtd + QEMU (TCG here, no /dev/kvm), cloud-init seed ISOs
  libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils libvirt-clients genisoimage
  # VPN: strongSwan charon over VICI, userspace ESP (kernel-libipsec)
  charon-systemd strongswan-swanctl libcharon-extra-plugins
  # ECP groups (group19/20, the API default group20) and AES-GCM (the API default ESP cipher)
  libstrongswan-standard-plugins
  # DNS: dig/kdig, load tests, reference server (NSD), conformance (zonemaster)
  bind9-dnsutils knot-dnsutils dnsperf nsd zonemaster-cli
)

log() { echo "setup-deps: $*"; }

# start_daemons starts virtlogd + libvirtd (no systemd here) when they are installed and not
# running; idempotent. Root only.
start_daemons() {
  if ((EUID == 0)); then bash "$(dirname "${BASH_SOURCE[0]}")/libvirtd-up.sh"; fi
}

if command -v go >/dev/null; then
  log "$(go version)"
else
  log "WARNING: go not found in PATH (Go 1.26 is required)"
fi

if ! command -v dpkg-query >/dev/null; then
  log "not a Debian system: install by hand: ${PACKAGES[*]}"
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  log "all ${#PACKAGES[@]} packages present"
  start_daemons
  exit 0
fi

if ((EUID != 0)); then
  log "missing (not root, not installing): ${missing[*]}"
  log "run as root: apt-get install -y --no-install-recommends ${missing[*]}"
  log "tests that need these skip their system parts"
  exit 0
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' init scripts from starting system daemons (NSD on port 53, which the DNS
# tests bind; dnsmasq; libvirtd): the tests start their own. policy-rc.d exit 101 = "action
# forbidden"; an image's own policy-rc.d is left alone.
policy_rc=
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  policy_rc=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' >"$policy_rc" && chmod 755 "$policy_rc"
  trap 'rm -f "$policy_rc"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Acquire::Retries=3 "${missing[@]}"
if [[ -n $policy_rc ]]; then rm -f "$policy_rc"; trap - EXIT; fi
start_daemons
