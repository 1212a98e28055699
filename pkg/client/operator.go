package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/regentcloud/regent/pkg/api"
)

// OperatorService is the cluster administration API under /v1/operator/.
// Every call but Join needs a global user's token.
type OperatorService struct{ c *Client }

// Operator is the cluster administration API.
func (c *Client) Operator() *OperatorService { return &OperatorService{c: c} }

// Members lists the controller nodes of the raft configuration, with the
// health of each as the answering node sees it.
func (o *OperatorService) Members(ctx context.Context) ([]api.ClusterMember, error) {
	var out api.Item[[]api.ClusterMember]
	if _, err := o.c.do(ctx, &request{method: http.MethodGet, path: "/v1/operator/members"}, &out); err != nil {
		return nil, err
	}
	return out.Content, nil
}

// Leader returns the current raft leader.
func (o *OperatorService) Leader(ctx context.Context) (*api.LeaderInfo, error) {
	var out api.Item[api.LeaderInfo]
	if _, err := o.c.do(ctx, &request{method: http.MethodGet, path: "/v1/operator/leader"}, &out); err != nil {
		return nil, err
	}
	return &out.Content, nil
}

// TransferLeader hands leadership to the voter named to (empty: the most
// up-to-date other voter) and returns the new leader. Writes sent meanwhile
// wait for the new leader instead of failing.
func (o *OperatorService) TransferLeader(ctx context.Context, to string) (*api.LeaderInfo, error) {
	var out api.Item[api.LeaderInfo]
	if _, err := o.c.do(ctx, &request{method: http.MethodPost, path: "/v1/operator/leader/transfer", body: api.TransferRequest{ID: to}}, &out); err != nil {
		return nil, err
	}
	return &out.Content, nil
}

// Join asks the cluster to add the node described by req as a voter. It is
// authorised by clusterToken (sent as X-Regent-Cluster-Token), not by the
// client's API token; req.ClusterToken is not sent.
func (o *OperatorService) Join(ctx context.Context, req api.JoinRequest, clusterToken string) (*api.JoinRequest, error) {
	req.ClusterToken = ""
	var out api.Item[api.JoinRequest]
	r := &request{method: http.MethodPost, path: "/v1/operator/join", body: req, noAuth: true,
		header: http.Header{HeaderClusterToken: {clusterToken}}}
	if _, err := o.c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out.Content, nil
}

// RemoveMember removes the node with the given id from the raft
// configuration.
func (o *OperatorService) RemoveMember(ctx context.Context, id string) error {
	_, err := o.c.do(ctx, &request{method: http.MethodDelete, path: "/v1/operator/members/" + url.PathEscape(id)}, nil)
	return err
}

// SnapshotSave streams a snapshot of the whole state into w and returns its
// size. A snapshot cut short by a failure on the server is an error
// (io.ErrUnexpectedEOF), and so is one that does not end in its trailer
// line (the record count and checksum a restore verifies); w then holds a
// partial snapshot, so write it to a temporary file and rename that only on
// success.
func (o *OperatorService) SnapshotSave(ctx context.Context, w io.Writer) (int64, error) {
	resp, _, err := o.c.send(ctx, &request{method: http.MethodGet, path: "/v1/operator/snapshot"})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var tail tailWriter
	n, err := io.Copy(io.MultiWriter(w, &tail), resp.Body)
	if err != nil {
		return n, fmt.Errorf("regent: snapshot save: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("regent: snapshot save: got %d of %d bytes: %w", n, resp.ContentLength, io.ErrUnexpectedEOF)
	}
	if n == 0 {
		return 0, fmt.Errorf("regent: snapshot save: the server sent an empty snapshot")
	}
	if !tail.endsInTrailer() {
		return n, fmt.Errorf("regent: snapshot save: the snapshot does not end in its trailer (%d bytes): %w", n, io.ErrUnexpectedEOF)
	}
	return n, nil
}

// tailWriter keeps the last bytes written to it: a snapshot's last line is
// its trailer, {"t":"#end",...}.
type tailWriter struct{ b []byte }

const tailKeep = 512

func (t *tailWriter) Write(p []byte) (int, error) {
	if len(p) >= tailKeep {
		t.b = append(t.b[:0], p[len(p)-tailKeep:]...)
	} else {
		t.b = append(t.b, p...)
		if len(t.b) > tailKeep {
			t.b = append(t.b[:0], t.b[len(t.b)-tailKeep:]...)
		}
	}
	return len(p), nil
}

func (t *tailWriter) endsInTrailer() bool {
	b, ok := bytes.CutSuffix(t.b, []byte("\n"))
	if !ok {
		return false
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return bytes.HasPrefix(b, []byte(`{"t":"#end"`))
}

// SnapshotRestore replaces the whole state of the cluster with the snapshot
// read from r. A snapshot the server cannot read is refused and nothing
// changes.
func (o *OperatorService) SnapshotRestore(ctx context.Context, r io.Reader) (*api.SnapshotRestoreResult, error) {
	var out api.Item[api.SnapshotRestoreResult]
	if _, err := o.c.do(ctx, &request{method: http.MethodPut, path: "/v1/operator/snapshot", raw: r}, &out); err != nil {
		return nil, err
	}
	return &out.Content, nil
}

// Health asks the node at the base URL (never forwarded) for its health.
// The status is returned whenever the node answered; when it is not healthy
// (HTTP 503: no leader, or another condition) the error is an *api.Error
// whose Detail is the status.
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	resp, _, err := c.send(ctx, &request{method: http.MethodGet, path: "/healthz", noAuth: true, anyStatus: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return nil, decodeError(resp)
	}
	var h api.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return nil, fmt.Errorf("regent: GET /healthz: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &api.Error{Status: resp.StatusCode, Detail: "The node is not healthy: " + h.Status + "."}
		if h.Leader == "" {
			e.ErrorCode = api.CodeNoLeader
		}
		return &h, e
	}
	return &h, nil
}
