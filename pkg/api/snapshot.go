package api

// Snapshot is a point-in-time snapshot of a VM. A VM's snapshots form a
// tree: a new snapshot's parent is the VM's active snapshot, and exactly
// one snapshot of a VM is active (the one the VM runs from).
type Snapshot struct {
	Meta
	VMID      uint64 `json:"vm_id"`
	ProjectID uint64 `json:"project_id"`
	MemberID  uint64 `json:"member_id"`
	RegionID  uint64 `json:"region_id"`
	Name      string `json:"name"`
	ParentID  uint64 `json:"parent_id"`
	Active    bool   `json:"active"`
	// RemoveSubtree, when the snapshot is closed, closes its descendants
	// too; otherwise they move up to its parent.
	RemoveSubtree      bool   `json:"remove_subtree"`
	State              int    `json:"state"`
	StateChanged       string `json:"state_changed"`
	Generation         uint64 `json:"generation"`
	ObservedGeneration uint64 `json:"observed_generation"`
	ErrorCode          string `json:"error_code"`
	ErrorDetail        string `json:"error_detail"`
}

// Backup is a copy of a VM's disks in a repository.
type Backup struct {
	Meta
	VMID       uint64 `json:"vm_id"`
	ProjectID  uint64 `json:"project_id"`
	MemberID   uint64 `json:"member_id"`
	RegionID   uint64 `json:"region_id"`
	Name       string `json:"name"`
	Repository int    `json:"repository"`
	// TimeValid is when the backup was completed (the robot's move to RUNNING).
	TimeValid          string `json:"time_valid"`
	State              int    `json:"state"`
	StateChanged       string `json:"state_changed"`
	Generation         uint64 `json:"generation"`
	ObservedGeneration uint64 `json:"observed_generation"`
	ErrorCode          string `json:"error_code"`
	ErrorDetail        string `json:"error_detail"`
}

// ObjectHistory is a state change of a snapshot or backup, with the actor.
type ObjectHistory struct {
	Meta
	// ObjectID is the snapshot or backup.
	ObjectID  uint64 `json:"object_id"`
	VMID      uint64 `json:"vm_id"`
	ProjectID uint64 `json:"project_id"`
	MemberID  uint64 `json:"member_id"`
	State     int    `json:"state"`
	UserID    uint64 `json:"user_id"`
	TokenID   uint64 `json:"token_id"`
	Robot     bool   `json:"robot"`
}
