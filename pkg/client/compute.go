package client

import (
	"context"
	"fmt"
	"strconv"

	"github.com/regentcloud/regent/pkg/api"
)

// Paths of the compute services (CloudCIX /iaas/).
const (
	ProjectPath       = "/iaas/project/"
	CloudPath         = "/iaas/cloud/"
	VirtualRouterPath = "/iaas/virtual_router/"
	VMPath            = "/iaas/vm/"
	StoragePath       = "/iaas/storage/"
	StorageTypePath   = "/iaas/storage_type/"
	ImagePath         = "/iaas/image/"
	RegionImagePath   = "/iaas/region_image/"
	ServerPath        = "/iaas/server/"
	InterfacePath     = "/iaas/interface/"
	RouterPath        = "/iaas/router/"
	VPNPath           = "/iaas/vpn/"
	SnapshotPath      = "/iaas/snapshot/"
	BackupPath        = "/iaas/backup/"
)

// Projects is the project service; reads carry the derived state. Its
// Update changes the project's fields; SetProjectState deletes or restores
// the project.
func (c *Client) Projects() *Service[*api.ProjectView, api.ProjectInput] {
	return NewService[*api.ProjectView, api.ProjectInput](c, ProjectPath)
}

// Clouds is the cloud service: a whole project in one request. Its list
// and delete routes do not exist.
func (c *Client) Clouds() *Service[*api.CloudView, api.CloudInput] {
	return NewService[*api.CloudView, api.CloudInput](c, CloudPath)
}

// VirtualRouters is the virtual router service (updates are state changes).
func (c *Client) VirtualRouters() *Service[*api.VRView, api.StateChangeInput] {
	return NewService[*api.VRView, api.StateChangeInput](c, VirtualRouterPath)
}

// VMs is the VM service; create with VMCreate, update with Update.
func (c *Client) VMs() *Service[*api.VMView, api.VMChangeInput] {
	return NewService[*api.VMView, api.VMChangeInput](c, VMPath)
}

// VMCreate creates a VM (its body differs from the update body).
func (c *Client) VMCreate(ctx context.Context, in *api.VMInput) (*api.VMView, *Meta, error) {
	return Create[*api.VMView](ctx, c, VMPath, in)
}

// SetVMState changes a VM's state; a robot passes expected, the state it
// read (a mismatch is a 409: see IsConflict).
func (c *Client) SetVMState(ctx context.Context, id uint64, to int, expected *int) (*api.VMView, *Meta, error) {
	return Update[*api.VMView](ctx, c, fmt.Sprintf("%s%d/", VMPath, id), &api.StateChangeInput{State: &to, ExpectedState: expected}, nil)
}

// SetProjectState asks for the state of everything of a project: StateScrub
// (8) deletes its virtual router and VMs (they wait out the project's
// grace_period in SCRUB_QUEUE), StateRunning (4) restores them meanwhile.
func (c *Client) SetProjectState(ctx context.Context, id uint64, state int) (*api.ProjectView, *Meta, error) {
	return Update[*api.ProjectView](ctx, c, fmt.Sprintf("%s%d/", ProjectPath, id), map[string]int{"state": state}, nil)
}

// Storages is the storage service (create adds a disk to a VM).
func (c *Client) Storages() *Service[*api.Storage, api.StorageCreateInput] {
	return NewService[*api.Storage, api.StorageCreateInput](c, StoragePath)
}

// StorageTypes is the storage type catalogue.
func (c *Client) StorageTypes() *Service[*api.StorageType, api.NameInput] {
	return NewService[*api.StorageType, api.NameInput](c, StorageTypePath)
}

// Images is the image catalogue.
func (c *Client) Images() *Service[*api.Image, api.ImageInput] {
	return NewService[*api.Image, api.ImageInput](c, ImagePath)
}

// RegionImages says which images a region offers.
func (c *Client) RegionImages() *Service[*api.RegionImage, api.RegionImageInput] {
	return NewService[*api.RegionImage, api.RegionImageInput](c, RegionImagePath)
}

// Servers is the hypervisor service; a server shows the health its agent
// reports.
func (c *Client) Servers() *Service[*api.ServerView, api.ServerInput] {
	return NewService[*api.ServerView, api.ServerInput](c, ServerPath)
}

// Interfaces is the server interface service.
func (c *Client) Interfaces() *Service[*api.ServerInterface, api.InterfaceInput] {
	return NewService[*api.ServerInterface, api.InterfaceInput](c, InterfacePath)
}

// Routers is the physical router service; a router shows its
// capacity_available and the health its agent reports.
func (c *Client) Routers() *Service[*api.RouterView, api.RouterInput] {
	return NewService[*api.RouterView, api.RouterInput](c, RouterPath)
}

// VPNs is the VPN service (the pre-shared key is write-only).
func (c *Client) VPNs() *Service[*api.VPN, api.VPNInput] {
	return NewService[*api.VPN, api.VPNInput](c, VPNPath)
}

// Snapshots is the snapshot service (updates are state changes).
func (c *Client) Snapshots() *Service[*api.Snapshot, api.StateChangeInput] {
	return NewService[*api.Snapshot, api.StateChangeInput](c, SnapshotPath)
}

// Backups is the backup service (updates are state changes).
func (c *Client) Backups() *Service[*api.Backup, api.StateChangeInput] {
	return NewService[*api.Backup, api.StateChangeInput](c, BackupPath)
}

// SnapshotCreate snapshots a VM.
func (c *Client) SnapshotCreate(ctx context.Context, in *api.SnapshotInput) (*api.Snapshot, *Meta, error) {
	return Create[*api.Snapshot](ctx, c, SnapshotPath, in)
}

// BackupCreate backs up a VM.
func (c *Client) BackupCreate(ctx context.Context, in *api.SnapshotInput) (*api.Backup, *Meta, error) {
	return Create[*api.Backup](ctx, c, BackupPath, in)
}

// VPNStatus reads the live IPsec state of a VPN as its router's agent last
// reported it (ike_state UNKNOWN before the first report).
func (c *Client) VPNStatus(ctx context.Context, id uint64) (*api.VPNStatus, error) {
	st, _, err := Get[*api.VPNStatus](ctx, c, "/iaas/vpn_status/"+strconv.FormatUint(id, 10)+"/", nil)
	return st, err
}
