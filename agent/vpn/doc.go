// Package vpn runs the site-to-site IPsec VPNs of the agent's virtual
// routers with strongSwan, over VICI.
//
// Every router namespace with at least one VPN gets its own charon
// (charon-systemd) started inside the namespace with its own
// STRONGSWAN_CONF and VICI unix socket under the manager's run directory;
// the agent reaches every instance through the socket path from the root
// namespace. A Manager owns the instances: Ensure starts one when a router
// has VPNs and stops it when it has none, Remove stops it when the router
// goes (quiesce, scrub, removal); an Ensure that races Remove starts
// nothing (a closed instance refuses it, and no instance is created for a
// cancelled context: the agent cancels a router's apply before removing
// the router). Each instance has one supervisor
// goroutine: when charon dies it restarts it and loads every connection
// again (VICI-loaded connections live only in charon's memory), and every
// tick, and after every Ensure, it initiates the "immediately" VPNs that
// have no IKE SA. The initiates run on a VICI session of their own and
// without the instance's lock, so an Ensure (a firewall change of the
// router, say) or a status read never waits for a peer that does not
// answer (up to InitiateTimeout per child); a result is recorded only if
// the VPN is still loaded as it was when its initiate began.
//
// charon outlives the agent: it runs in its own session with no
// parent-death signal and its output in its log file, and Close only
// detaches (supervisors and sessions end, charon runs on). So an agent
// stop, upgrade or crash leaves every tunnel up. The next Manager on the
// same RunDir adopts each charon at its router's first Ensure: the pid
// file's process must be alive, not a zombie, charon by its command line
// and this instance's by the STRONGSWAN_CONF in its environment (a
// recycled pid is never touched; an adopted charon is then watched by its
// /proc start time), and its VICI socket must answer "version"; otherwise
// it is killed and a new one started. Each instance keeps a state file
// (state.json: router id, namespace, the digest of each loaded connection
// and an HMAC of its PSK keyed with the run directory's random
// psk-digest.key: never the key, nor a plain hash a dictionary could
// reverse), from which the adopter re-loads an unchanged VPN in place
// (load-conn of an identical connection keeps its IKE and CHILD SAs; it
// is initiated only if down), re-establishes one whose connection or PSK
// changed while no agent ran, and unloads the namespace's connections the
// spec no longer lists. A router that lost its VPNs, or went, while no
// agent ran has its charon found by the state file and stopped on Remove
// or Ensure.
//
// Mapping (cloudcix-facts §7.5, new-generation column): connection
// <namespace>-<vpn_id>, one child per route pair (<conn>-<n>) when
// traffic_selector is set, else one child with 0.0.0.0/0 on both sides;
// proposals are one per combination of the comma-separated algorithm sets
// (weakness #8). The PSK goes to charon with load-shared only: it is never
// written to a file, an argument, the environment, a log line or an error.
//
// charon follows its router's namespace: when the namespace was deleted and
// built again (charon keeps the old one alive), the next Ensure stops it
// and starts one in the new namespace, and a charon of an earlier
// namespace is never adopted.
//
// Each VPN succeeds or fails on its own: one whose spec cannot be rendered
// or that charon refuses is left out (an older version of it unloaded),
// reported in Result.Failed and in its status' error, and the router's
// other VPNs load; a refused one is sent again only when its spec changes
// or charon restarts.
//
// Updates are incremental: the digest of each VPN's rendered connection
// (and of its PSK) is remembered per instance; an unchanged VPN is not
// touched (no tunnel flap), a changed one is re-loaded and its SAs
// re-established, a removed one is terminated and unloaded.
//
// ESP: ModeXFRM (production) lets charon install SAs in the kernel with
// XFRM interface ids (if_id = VPN id; the router routes the remote subnets
// into the xfrm<id> interface). ModeLibIPsec runs ESP in userspace with the
// kernel-libipsec plugin over a TUN device (ipsec0 in the namespace), for
// hosts without kernel XFRM/ESP (CI, containers); its ESP is always UDP
// encapsulated and its policies have no interface ids, so in this mode
// several VPNs of one router need traffic_selector to keep their traffic
// apart. The TUN device exists only while charon runs (and the kernel
// drops its routes when charon dies): the router fails closed meanwhile,
// its ruleset letting a remote subnet's traffic out only by that device
// (agent/netrouter, chain vpn_egress), so a VPN that is not up yet, whose
// charon died, or that does not run holds its traffic back rather than
// letting it take the default route out unencrypted.
package vpn
