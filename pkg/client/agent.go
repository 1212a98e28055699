package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// AgentService is the agent protocol under /v1/agent/ and the state
// reports agents make. It needs a robot token.
type AgentService struct{ c *Client }

// Agent is the agent protocol.
func (c *Client) Agent() *AgentService { return &AgentService{c: c} }

// Register creates or updates the agent's server and router.
func (a *AgentService) Register(ctx context.Context, reg api.AgentRegistration) (*api.AgentRegistered, error) {
	var out api.Item[api.AgentRegistered]
	if _, err := a.c.do(ctx, &request{method: http.MethodPost, path: "/v1/agent/register", body: reg}, &out); err != nil {
		return nil, err
	}
	return &out.Content, nil
}

// Heartbeat tells the leader the agent is alive.
func (a *AgentService) Heartbeat(ctx context.Context, hb api.Heartbeat) error {
	_, err := a.c.do(ctx, &request{method: http.MethodPost, path: "/v1/agent/heartbeat", body: hb}, nil)
	return err
}

// Work returns the complete desired state of the agent's server and
// router. With index > 0 it blocks until something changes past index, or
// wait passes (the server caps it at 10 minutes). With hash, the
// Meta.ContentHash of the work the caller holds, it blocks until the work
// itself differs from that (or wait passes), not until anything in the
// region's tables changes.
func (a *AgentService) Work(ctx context.Context, serverID, routerID, index uint64, wait time.Duration, hash string) (*api.Work, *Meta, error) {
	q := url.Values{}
	if serverID != 0 {
		q.Set("server_id", strconv.FormatUint(serverID, 10))
	}
	if routerID != 0 {
		q.Set("router_id", strconv.FormatUint(routerID, 10))
	}
	readValues(q, false, false, index, wait)
	if hash != "" && index > 0 {
		q.Set("hash", hash)
	}
	var out api.Item[api.Work]
	meta, err := a.c.do(ctx, &request{method: http.MethodGet, path: "/v1/agent/work", query: q}, &out)
	if err != nil {
		return nil, meta, err
	}
	return &out.Content, meta, nil
}

// StateReport is a robot's state change of a VM, virtual router, snapshot or backup:
// compare-and-swap from Expected to State (a mismatch is a 409, see
// IsConflict), with the generation it built and, for UNRESOURCED, why.
type StateReport struct {
	State              int     `json:"state"`
	Expected           int     `json:"expected_state"`
	ObservedGeneration *uint64 `json:"observed_generation,omitempty"`
	ErrorCode          string  `json:"error_code,omitempty"`
	ErrorDetail        string  `json:"error_detail,omitempty"`
}

// SetVMState reports a VM's state change.
func (a *AgentService) SetVMState(ctx context.Context, id uint64, r StateReport) error {
	_, err := a.c.do(ctx, &request{method: http.MethodPatch, path: "/iaas/vm/" + strconv.FormatUint(id, 10) + "/", body: r}, nil)
	return err
}

// SetRouterState reports a virtual router's state change.
func (a *AgentService) SetRouterState(ctx context.Context, id uint64, r StateReport) error {
	_, err := a.c.do(ctx, &request{method: http.MethodPatch, path: "/iaas/virtual_router/" + strconv.FormatUint(id, 10) + "/", body: r}, nil)
	return err
}

// SetSnapshotState reports a snapshot's state change (the same
// compare-and-swap as a VM's).
func (a *AgentService) SetSnapshotState(ctx context.Context, id uint64, r StateReport) error {
	_, err := a.c.do(ctx, &request{method: http.MethodPatch, path: "/iaas/snapshot/" + strconv.FormatUint(id, 10) + "/", body: r}, nil)
	return err
}

// SetBackupState reports a backup's state change (the same
// compare-and-swap as a VM's).
func (a *AgentService) SetBackupState(ctx context.Context, id uint64, r StateReport) error {
	_, err := a.c.do(ctx, &request{method: http.MethodPatch, path: "/iaas/backup/" + strconv.FormatUint(id, 10) + "/", body: r}, nil)
	return err
}
