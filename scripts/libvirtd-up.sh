#!/usr/bin/env bash
# Starts virtlogd and libvirtd by hand (no systemd here, see ../shared/ENVIRONMENT.md) when
# they are not running. Idempotent; needs root; exits 0 without doing anything otherwise.
# Stop them with: scripts/libvirtd-up.sh stop
set -euo pipefail

log() { echo "libvirtd-up: $*"; }

if ((EUID != 0)); then log "not root: not starting libvirtd"; exit 0; fi
if [[ ! -x /usr/sbin/libvirtd || ! -x /usr/sbin/virtlogd ]]; then
  log "libvirtd/virtlogd not installed (scripts/setup-deps.sh installs them)"; exit 0
fi

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [[ ${1:-} == stop ]]; then
  # Wait until each has exited: a start right after a stop must not take a
  # daemon on its way out (and its socket file) for a running one.
  for p in /run/libvirtd.pid /run/virtlogd.pid; do
    if running "$p"; then
      pid=$(cat "$p")
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
      log "stopped $(basename "$p" .pid)"
    fi
  done
  exit 0
fi

mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/images /var/lib/libvirt/qemu /var/cache/libvirt /run/libvirt
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  useradd -r -M -d /var/lib/libvirt -g libvirt-qemu -G kvm -s /usr/sbin/nologin libvirt-qemu

# The daemons outlive this script: they must not keep its caller's descriptors open
# (e.g. a lock taken with flock(1) around a test run would then be held for ever).
# 255 is the descriptor bash reads this script from.
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  if ((fd > 2 && fd < 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
done

if ! running /run/virtlogd.pid; then
  /usr/sbin/virtlogd --daemon --pid-file /run/virtlogd.pid
  log "virtlogd started"
fi
if ! running /run/libvirtd.pid; then
  /usr/sbin/libvirtd --daemon --pid-file /run/libvirtd.pid
  log "libvirtd started"
fi
for _ in $(seq 1 100); do
  [[ -S /var/run/libvirt/libvirt-sock ]] && exit 0
  sleep 0.1
done
log "libvirtd socket did not appear"; exit 1
