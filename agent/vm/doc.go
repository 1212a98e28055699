// Package vm builds tenant VMs on a hypervisor through libvirt: storage pools
// and image import, copy-on-write volumes, the domain XML, the cloud-init
// NoCloud seed ISO, the VM lifecycle (build, quiesce, restart, update, scrub),
// internal snapshots, backups, capacity and per-domain metrics.
//
// The libvirt calls the builder needs are the Libvirt interface declared
// here; Conn implements it over go-libvirt and libvirtd's unix socket,
// reconnecting when the connection drops. Every step is idempotent: the
// libvirt errors that mean "already done" (volume exists, domain already
// running or not running, no such domain) are treated as success, so a
// build interrupted at any point converges when it is run again.
//
// Names: a VM's domain is <prefix><project_id>_<vm_id> (CloudCIX's
// convention) with a UUID derived from that name, so redefining it replaces
// its persistent configuration instead of creating a duplicate; its volumes
// are <domain>_<storage_id>.qcow2 in the pool of its storage type and its
// seed ISO is <domain>-seed.iso in the seed directory.
package vm
