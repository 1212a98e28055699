// Package cluster is the raft layer of one regent controller node.
//
// It wires hashicorp/raft to durable storage and the network and gives the
// rest of the controller a small, typed API:
//
//   - storage: one raft-boltdb/v2 file, <DataDir>/raft/raft.db, serves as both
//     the log store (behind a 512-entry raft.LogCache) and the stable store;
//     bbolt's freelist is rebuilt on open rather than written on each commit;
//     FSM snapshots live in <DataDir>/raft/snapshots (the two newest are kept);
//     everything under <DataDir>/raft is owner-only (directories 0700,
//     files 0600: raft's own snapshot store would make them 0755/0644),
//     and raft state found with looser modes is tightened at start
//     (perms.go);
//   - transport: raft's NetworkTransport over a TCP stream layer bound to
//     Config.RaftAddr, which is also the address advertised to peers. With
//     Config.TLS set every raft connection is mutual TLS (both ends present a
//     certificate signed by a CA the other end trusts);
//   - writes: Apply commits a command on the leader and returns the FSM's
//     response and the raft index. On a follower it returns *ErrNotLeader
//     naming the leader, so the HTTP layer can forward the request; during an
//     election it waits up to Config.ApplyTimeout for this node to win. With
//     Config.Coalesce set the leader commits in groups (coalesce.go): while
//     one entry is in flight, new commands queue and go out together as the
//     next entry, which the Coalescer encodes and splits the results of;
//   - membership: AddVoter, RemoveServer, Servers and Leave;
//   - hand-off: TransferLeadership moves leadership to another voter behind a
//     gate (BeginWrite) that holds new writes until the transfer is over,
//     instead of letting raft refuse them (handoff.go);
//   - backup: SnapshotSave streams the FSM's own snapshot bytes, and
//     SnapshotRestore validates such a stream before handing it to raft (see
//     SnapshotRestore for why validation must happen first);
//   - dead server cleanup: with Config.DeadServerCleanup set, the leader
//     removes a server that has failed every heartbeat for that long, but only
//     while a healthy majority of the remaining configuration stays (an
//     autopilot-style rule; see deadserver.go);
//   - metrics: InstallMetrics routes raft's go-metrics into Prometheus;
//     Config.Registerer receives the group commit's own metrics.
//
// The FSM is the caller's: this package sees only raft.FSM and opaque bytes.
// Everything a Cluster starts (raft, its transport, the bolt file and the
// package's own goroutines) is stopped by Cluster.Shutdown.
package cluster
