package vm

import (
	"context"
	"errors"

	libvirt "github.com/digitalocean/go-libvirt"
)

// Libvirt is what the builder needs from libvirtd. Objects are named, not
// handles, so an implementation can reconnect between calls. Errors from
// libvirtd are libvirt.Error values (possibly wrapped) so their codes can
// be inspected with libvirtCode.
type Libvirt interface {
	// Domains.
	DefineDomain(ctx context.Context, xml string) error
	StartDomain(ctx context.Context, name string) error
	ShutdownDomain(ctx context.Context, name string) error
	DestroyDomain(ctx context.Context, name string) error
	// UndefineDomain removes the persistent definition with its nvram,
	// snapshot and checkpoint metadata.
	UndefineDomain(ctx context.Context, name string) error
	DomainState(ctx context.Context, name string) (DomainState, error)
	// DomainXML is the live description of a running domain, or the
	// persistent one when inactive is set or the domain is not running.
	DomainXML(ctx context.Context, name string, inactive bool) (string, error)
	ListDomains(ctx context.Context) ([]string, error)
	SetAutostart(ctx context.Context, name string, on bool) error
	// AttachDevice attaches a device to the running domain only (its
	// persistent config is rewritten by DefineDomain).
	AttachDevice(ctx context.Context, name, xml string) error
	// BlockResize grows a disk of a running domain to size bytes.
	BlockResize(ctx context.Context, name, disk string, size uint64) error

	// Snapshots and block jobs.
	CreateSnapshot(ctx context.Context, domain, xml string, diskOnly bool) error
	RevertSnapshot(ctx context.Context, domain, snapshot string) error
	DeleteSnapshot(ctx context.Context, domain, snapshot string, children bool) error
	ListSnapshots(ctx context.Context, domain string) ([]SnapshotInfo, error)
	// CommitActive commits the active layer of disk into its backing file
	// and pivots the domain back onto it, waiting for the job to finish.
	CommitActive(ctx context.Context, domain, disk string) error

	// Storage.
	DefinePool(ctx context.Context, xml string) error
	// StartPool builds (creates the directory of) and starts a pool.
	StartPool(ctx context.Context, name string) error
	RefreshPool(ctx context.Context, name string) error
	PoolInfo(ctx context.Context, name string) (PoolInfo, error)
	CreateVolume(ctx context.Context, pool, xml string) error
	VolumeInfo(ctx context.Context, pool, name string) (VolumeInfo, error)
	ResizeVolume(ctx context.Context, pool, name string, size uint64) error
	DeleteVolume(ctx context.Context, pool, name string) error

	// Host.
	NodeInfo(ctx context.Context) (NodeInfo, error)
	DomainStats(ctx context.Context) ([]DomainStats, error)
}

// DomainState is libvirt's virDomainState.
type DomainState int

// Domain states (virDomainState).
const (
	StateNoState     DomainState = 0
	StateRunning     DomainState = 1
	StateBlocked     DomainState = 2
	StatePaused      DomainState = 3
	StateShutdown    DomainState = 4
	StateShutoff     DomainState = 5
	StateCrashed     DomainState = 6
	StatePMSuspended DomainState = 7
)

func (s DomainState) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateBlocked:
		return "blocked"
	case StatePaused:
		return "paused"
	case StateShutdown:
		return "shutting down"
	case StateShutoff:
		return "shut off"
	case StateCrashed:
		return "crashed"
	case StatePMSuspended:
		return "pmsuspended"
	}
	return "no state"
}

// Active reports whether a domain in this state has a QEMU process.
func (s DomainState) Active() bool {
	return s != StateShutoff && s != StateNoState && s != StateCrashed
}

// SnapshotInfo is one snapshot of a domain and its parent ("" for a root).
type SnapshotInfo struct {
	Name    string
	Parent  string
	Current bool
}

// PoolInfo is virStoragePoolInfo in bytes.
type PoolInfo struct {
	Active     bool
	Capacity   uint64
	Allocation uint64
	Available  uint64
}

// VolumeInfo is a volume's path and sizes in bytes.
type VolumeInfo struct {
	Path       string
	Capacity   uint64
	Allocation uint64
}

// NodeInfo is what virNodeGetInfo reports.
type NodeInfo struct {
	CPUs      int
	MemoryKiB uint64
}

// DomainStats are one domain's counters in base units.
type DomainStats struct {
	Name        string
	State       DomainState
	CPUSeconds  float64
	MemoryBytes uint64 // balloon.current
	Block       []BlockStats
	Net         []NetStats
}

// BlockStats are the byte counters of one disk.
type BlockStats struct {
	Device                string
	ReadBytes, WriteBytes uint64
}

// NetStats are the byte counters of one interface.
type NetStats struct {
	Device           string
	RxBytes, TxBytes uint64
}

// libvirt error codes (virErrorNumber) the builder acts on.
const (
	errNoDomain         = 42 // VIR_ERR_NO_DOMAIN
	errNoStoragePool    = 49 // VIR_ERR_NO_STORAGE_POOL
	errNoStorageVol     = 50 // VIR_ERR_NO_STORAGE_VOL
	errOperationInvalid = 55 // VIR_ERR_OPERATION_INVALID: already running, not running...
	errNoDomainSnapshot = 72 // VIR_ERR_NO_DOMAIN_SNAPSHOT
	errStorageVolExist  = 90 // VIR_ERR_STORAGE_VOL_EXIST
)

// libvirtCode is the libvirt error number of err, or -1.
func libvirtCode(err error) int {
	var le libvirt.Error
	if errors.As(err, &le) {
		return int(le.Code)
	}
	var lp *libvirt.Error
	if errors.As(err, &lp) && lp != nil {
		return int(lp.Code)
	}
	return -1
}

// isCode reports whether err is a libvirt error with one of codes.
func isCode(err error, codes ...int) bool {
	c := libvirtCode(err)
	for _, want := range codes {
		if c == want {
			return true
		}
	}
	return false
}

// done maps the "already done" codes to success.
func done(err error, codes ...int) error {
	if err == nil || isCode(err, codes...) {
		return nil
	}
	return err
}
