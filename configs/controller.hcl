# regent-controller, one node of a three-node production cluster (node 1 of ctl1..ctl3).
#   regent-controller server -config /etc/regent/controller.hcl   (see deploy/regent-controller.service)
# Copy to each node and change node_id, the addresses, the certificate paths and, on ctl2 and
# ctl3, bootstrap for join (see "Forming the cluster" below).
# Every attribute is also a flag: node_id -> -node-id. Flags override this file.

node_id  = "ctl1"
data_dir = "/var/lib/regent"

http_addr = "10.0.0.1:8080" # HTTPS API and /metrics
raft_addr = "10.0.0.1:8300" # raft + leader forwarding, mutual TLS; must be reachable from peers
dns_addr  = "10.0.0.1:53"   # authoritative DNS, UDP and TCP (the unit grants CAP_NET_BIND_SERVICE)

# DNS: every node serves every zone. The apex NS set of every zone: one name per node,
# matching the delegation in the parent zone. These two are cluster-wide: set the same on
# every node; the leader writes its values into the replicated state (docs/operations.md).
dns_nameservers = ["ns1.region.example.net.", "ns2.region.example.net.", "ns3.region.example.net."]
dns_hostmaster  = "hostmaster@example.net"
# External secondaries: who may AXFR, and who gets a NOTIFY on every change.
dns_allow_transfer = ["192.0.2.53/32"]
dns_notify         = ["192.0.2.53:53"]
# Optional TSIG: transfers must be signed with one of these keys; NOTIFYs are signed.
# dns_tsig_keys = { "xfr-key." = "REPLACE-WITH-OUTPUT-OF: head -c32 /dev/urandom | base64" }
# One UDP socket per core (SO_REUSEPORT) answers ~15 % more queries a second; only when the
# controller runs as a user of its own (deploy/regent-controller.service does).
# dns_udp_sockets = 4
# TCP connections open at once (default 1000); raise it with the process's file descriptor limit.
# dns_tcp_conns = 1000

# Forming the cluster (docs/operations.md): bootstrap = true on ctl1 only, for its first start
# (it becomes a one-node cluster and creates the root user). On ctl2 and ctl3 delete the
# bootstrap line and set join to a running member's HTTP address: a node started with bootstrap
# founds a cluster of its own, it does not join this one. Once the cluster has formed, replace
# bootstrap with join on ctl1 as well (join = "https://10.0.0.2:8080"). A node whose data dir holds
# raft state ignores both, so either restarts it; but a ctl1 started with an empty data dir (a
# replaced disk) and bootstrap still set would found a second, separate cluster instead of
# joining again.
bootstrap = true
# join    = "https://10.0.0.1:8080"   # ctl2, ctl3; ctl1 after the cluster has formed

# Shared secret a joining node presents; the same value on every node, required to form a cluster
# (without one no node can join). Keep this file 0640 root:regent. Uncomment and replace the
# placeholder (the node refuses it, and any token under 16 bytes): the token admits a raft voter,
# which receives the whole state.
# cluster_token = "REPLACE-WITH-OUTPUT-OF: head -c32 /dev/urandom | base64"

log_level = "info"
log_json  = true

# TLS for the HTTP API (clients, agents, regentctl).
http_tls_cert = "/etc/regent/tls/ctl1-http.crt"
http_tls_key  = "/etc/regent/tls/ctl1-http.key"
# CA of the other nodes' HTTPS certificates: a follower forwards writes to the leader and a
# joining node calls a member over HTTPS. Unset: the system roots.
http_tls_ca = "/etc/regent/tls/cluster-ca.crt"
# The base URL the other nodes use to reach this API (default https://<http_addr>, or, when
# http_addr is "0.0.0.0:8080" or "[::]:8080", the host of raft_addr with the HTTP port); set it
# when the certificate names a host name rather than the address.
# advertise_http = "https://ctl1.region.example.net:8080"

# Mutual TLS between controller nodes: each node presents raft_tls_cert and requires a peer
# certificate signed by raft_tls_ca.
raft_tls_cert = "/etc/regent/tls/ctl1-raft.crt"
raft_tls_key  = "/etc/regent/tls/ctl1-raft.key"
raft_tls_ca   = "/etc/regent/tls/cluster-ca.crt"
# Renewed certificates: replace the files and run systemctl reload regent-controller.

# Audit trail: a JSON line per request that may change something (who, what, the answer).
# /var/log/regent is the unit's LogsDirectory; rotate with logrotate and a reload.
audit_log = "/var/log/regent/audit.log"

# Raft timeouts (LAN). The election timeout (at least the heartbeat timeout) and the leader
# lease (at most the heartbeat timeout) follow the heartbeat timeout when left out.
heartbeat_timeout    = "500ms"
election_timeout     = "500ms"
leader_lease_timeout = "250ms"

# Raft snapshots: every raft_snapshot_interval (at least 5s; raft adds up to as much again at
# random) a node takes a snapshot of the whole state if raft_snapshot_threshold log entries
# were written since its last one, then drops the log up to raft_trailing_logs entries before
# the snapshot. A follower that lags by fewer entries catches up from the log; one further
# behind is sent the whole snapshot. Raise the threshold to snapshot less often under heavy
# writes (a larger raft.db, a longer replay at start); raise trailing logs when followers
# restart often under load.
raft_snapshot_threshold = 8192
raft_snapshot_interval  = "2m"
raft_trailing_logs      = 10240

# Group commit: with 8 or more busy writers, the next raft entry may wait this long for more
# writes (larger entries, less CPU per write); "0s" disables it.
commit_linger = "5ms"

# Autopilot-style cleanup: a server unreachable this long is removed from the raft configuration.
dead_server_cleanup = "5m"

# IPAM: how long a released address stays out of the free pool.
keep_deallocated_ips_for = "48h"

# Melange: the CIDR of the block created for an unknown network (unset: 404).
# melange_default_cidr = "10.0.0.0/16"

# Melange: dns1 and dns2 of a block or subnet created without them (unset: none, shown as null).
# melange_dns1 = "8.8.8.8"
# melange_dns2 = "8.8.4.4"

# Agents: the heartbeat interval they are told to use, and how long a silent agent stays "up"
# (at least twice the interval; default three times). Agents get both at registration: one
# whose heartbeats go untaken for agent_down_after holds its work until one is taken.
agent_heartbeat  = "10s"
agent_down_after = "30s"

# VM placement (CloudCIX scoring, cloudcix-facts §6.1). A server offers new
# VMs ceil((ram - ram_reserve_gb) x ram_factor) GB of RAM,
# ceil((gb - disk_reserve_gb) x disk_factor) GB of disk and
# ceil(cores x cpu_oversubscription x cpu_factor) vCPUs. These are CloudCIX's
# values; leave out what you do not change.
placement {
  cpu_oversubscription = 8
  ram_reserve_gb       = 8
  disk_reserve_gb      = 100
  ram_factor           = 0.85
  disk_factor          = 0.77
  cpu_factor           = 0.77
}
