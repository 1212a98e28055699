# regent-controller, single-node development setup.
#   regent-controller server -config configs/controller-dev.hcl
# Same as `regent-controller server -dev` but with debug logging: bootstraps itself, loopback
# only, data in ./data, prints a root token once and writes it to <data_dir>/root.token
# (mode 0600).
# Every attribute is also a flag: node_id -> -node-id. Flags override this file.

dev       = true
node_id   = "dev"
data_dir  = "./data"
bootstrap = true

http_addr = "127.0.0.1:8080" # HTTP API (CloudCIX + Melange dialects) and /metrics
raft_addr = "127.0.0.1:8300"
dns_addr  = "127.0.0.1:8053" # authoritative DNS, UDP and TCP: dig @127.0.0.1 -p 8053 <name>
dns_nameservers = ["localhost."] # apex NS of every zone

log_level = "debug"
log_json  = false

# Raft timings (hashicorp/raft defaults are for WANs; these suit a LAN / loopback).
heartbeat_timeout    = "500ms"
election_timeout     = "500ms"
leader_lease_timeout = "250ms"
# Raft snapshots: checked every interval, taken after this many log entries; the log keeps
# raft_trailing_logs entries after one (configs/controller.hcl explains).
raft_snapshot_threshold = 8192
raft_snapshot_interval  = "2m"
raft_trailing_logs      = 10240

# IPAM: how long a released address stays out of the free pool.
keep_deallocated_ips_for = "48h"
