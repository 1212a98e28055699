package state

// Rules numbers the versions of what Apply does with the commands already
// in raft logs. The leader stamps the current one into every command
// (fsm.Command.Rules) and Apply follows the version the command carries,
// so an entry replayed later (a follower catching up from an older
// snapshot, a node restarted after an upgrade) gives what it gave when it
// was first applied, on every node. A change to how an existing command
// type is applied (a new refusal, a different choice) is made under a new
// version and keeps the old behaviour for lower ones. A node that cannot
// read a command's version refuses to apply it rather than diverge: upgrade
// the followers first and the leader last.
const (
	// RulesOriginal is every command before versions were stamped.
	RulesOriginal uint32 = 0
	// Rules1 (2026-11-24): the segments (VLAN, VNI) and stif numbers of
	// CLOSED virtual routers are free, and a router's VPNs are deleted when
	// it closes; a PTR record goes with its address; a member with DNS
	// objects cannot be deleted; manual ASNs in the pseudo range are
	// refused; nothing is added to a project whose router is being
	// deleted; a robot's request is held by the VM's snapshots and backups
	// as a user's is; TXT, SPF and NAPTR duplicates compare byte for byte;
	// firewall rules sort without overflow at the ends of the int range.
	Rules1 uint32 = 1
	// Rules2 (2026-11-24, later the same day); each change under it
	// checks t.since(Rules2) where Apply decides: a member that is the
	// Melange tenant of an interface or an address cannot be deleted
	// (membership_member_delete_107), nor a region that offers images
	// (membership_region_delete_103); the Melange interface, device and
	// network ids of the non-unique string indexes match exactly (an id
	// with a NUL in it was found under its prefix: an interface delete
	// freed, and the network checks saw, another's); a MAC range keeps its
	// cidr as given, as Melange does (it was stored normalised); a
	// project's pseudo-ASN keeps its number and member
	// (ipam_asn_update_106); a router's floating subnet is not deleted
	// (ipam_block_delete_104); a subnet of a project's virtual router has
	// no subnets (ipam_block_create_124); a CloudCIX subnet's new gateway
	// may not make its address_range the same as its parent subnet's or a
	// child's (ipam_block_update_116).
	Rules2 uint32 = 2
	// Rules3 (2026-11-24, twentieth session): a released address whose
	// Melange tenant member was deleted meanwhile (a released address does
	// not keep its member from being deleted, membership_member_delete_107)
	// is not restored (ipam_ip_address_restore_101): it would have been
	// allocated again to a member that is gone.
	Rules3 uint32 = 3
	// Rules4 (2026-11-24, twenty-second session): nested zones. A forward record whose name lies
	// inside a more specific domain than its own is refused
	// (iaas_record_{create,update}_122: that domain serves the name, the
	// record would never be; an update is checked only when it changes the
	// name, so a record stored there before keeps being updatable), except
	// the parent's delegation of the child
	// (NS records at its apex) and their glue; and a domain is not created
	// while its parent domain holds records at or below its apex other
	// than such a delegation and glue (409 iaas_domain_create_109).
	Rules4 uint32 = 4
	// Rules5 (2026-11-24, twenty-third session): a virtual router that
	// closes drops its ip_address and ip_address_id with the address it
	// gives back (the next project's router gets it: both listed it); a
	// member holds the public (NAT) address of its own address for PTR
	// records (iaas_ptr_record_create_109 refused a VM's public address,
	// the region's row), and the record goes when the member stops holding
	// it (the row leaves the public address or goes without it).
	Rules5 uint32 = 5
	// Rules6 (2026-11-24, twenty-third session): a VM's name is unique in
	// its project among the VMs that are not CLOSED regardless of case and
	// of what the router's DHCP host name drops (netx.HostLabel;
	// iaas_vm_create_128, iaas_vm_update_128 and the cloud's): "Web" and
	// "web", or "Web 1" and "web_1", got one host name. VMs that already
	// share a name so keep it, and keep being updatable; only a new name is
	// checked. A VM has at most api.MaxVMStorages disks: a spec change that
	// adds disks beyond them is refused (iaas_vm_update_113; one that adds
	// none is not), as is a storage create on a VM that has them
	// (iaas_storage_create_108). A new VM's gateway_subnet holds one of its
	// ip_addresses (iaas_vm_create_131): without one the VM has no default
	// route.
	Rules6 uint32 = 6
	// Rules7 (2026-11-24, twenty-third session):
	// a floating subnet is one router's: a router may not add to its
	// floating_subnet_ids a subnet another router lists
	// (iaas_router_{create,update}_107; a subnet shared before stays
	// updatable); a router does not give up a floating subnet while virtual
	// routers or VMs (NAT) hold addresses in it (iaas_router_update_108),
	// unless another router (sharing it from before) still lists it.
	Rules7 uint32 = 7
	// Rules8 (2026-11-25, twenty-fourth session): DNS records. The records
	// of one name and type (an RRset) fit in one DNS message: a record that
	// would take them past MaxRRsetOctets is refused
	// (iaas_record_{create,update}_123; 300 long TXT records at one name
	// made an answer no message could carry). A CNAME that would close a
	// loop of the domain's CNAMEs (a → b → a) is refused
	// (iaas_record_{create,update}_111; resolvers answer it with SERVFAIL).
	// An agent registration's interfaces of one name keep the order
	// reported (a stable sort: the unstable one's order, and so the ids
	// they got, was its algorithm's, which a Go release may change).
	Rules8 uint32 = 8
	// RulesCurrent is the version the leader stamps.
	RulesCurrent = Rules8
)

// since reports whether the command being applied was made under rules v
// or later.
func (t *Txn) since(v uint32) bool { return t.Rules >= v }
