package api

// JoinRequest is the body of POST /v1/operator/join, and the content of its
// response (without the cluster token).
type JoinRequest struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// ClusterToken may travel in the body instead of the
	// X-Regent-Cluster-Token header.
	ClusterToken string `json:"cluster_token,omitempty"`
}

// LeaderInfo is the content of GET /v1/operator/leader.
type LeaderInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// TransferRequest is the optional body of POST /v1/operator/leader/transfer:
// the node to hand leadership to. Empty: the most up-to-date other voter.
// The response's content is the new leader's LeaderInfo.
type TransferRequest struct {
	ID string `json:"id,omitempty"`
}

// Health is the body of GET /healthz (not enveloped). Status is "ok" with
// HTTP 200; otherwise it says what is wrong and the status is 503.
type Health struct {
	Status       string `json:"status"`
	NodeID       string `json:"node_id"`
	Leader       string `json:"leader"`
	IsLeader     bool   `json:"is_leader"`
	AppliedIndex uint64 `json:"applied_index"`
}

// SnapshotRestoreResult is the content of PUT /v1/operator/snapshot.
type SnapshotRestoreResult struct {
	Restored bool `json:"restored"`
	// Index is the restoring node's applied raft index afterwards.
	Index uint64 `json:"index"`
}
