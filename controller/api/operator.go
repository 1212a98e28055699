package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/cluster"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// MaxSnapshotBytes bounds an uploaded snapshot.
const MaxSnapshotBytes = 4 << 30

// snapshotPath is the route that takes a snapshot (PUT: restore).
const snapshotPath = "/v1/operator/snapshot"

// transferPath hands leadership over (POST).
const transferPath = "/v1/operator/leader/transfer"

// membersPath + a node id removes that node (DELETE).
const membersPath = "/v1/operator/members/"

// bodyLimit is the most a request to r's route may send: MaxBodyBytes,
// and MaxSnapshotBytes for a snapshot restore, the one route that takes a
// file. The handlers and the forwarder (which reads a body before the
// leader's route sees it) both go by it.
func bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPut && r.URL.Path == snapshotPath {
		return MaxSnapshotBytes
	}
	return MaxBodyBytes
}

// mayUpload checks, on this node's state, that r's caller may use the
// route whose body may exceed MaxBodyBytes (a snapshot restore:
// operator_snapshot update), before a follower reads that body to forward it.
func (a *API) mayUpload(r *http.Request) error {
	p, err := a.Authenticate(r)
	if err != nil {
		return err
	}
	return a.perms.Check(p, "regent", "operator_snapshot", auth.Update)
}

func (a *API) registerCore() {
	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.HandleFunc("GET /metrics", a.serveMetrics())
	a.mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(a.cfg.OpenAPI)
	})
	a.mux.HandleFunc("GET /v1/operator/members", a.route("regent", "operator", auth.List, a.members))
	a.mux.HandleFunc("GET /v1/operator/leader", a.route("regent", "operator", auth.Read, a.leader))
	a.mux.HandleFunc("POST "+transferPath, a.route("regent", "operator", auth.Update, a.transferLeader))
	a.mux.HandleFunc("DELETE "+membersPath+"{id}", a.route("regent", "operator", auth.Delete, a.removeMember))
	a.mux.HandleFunc("GET "+snapshotPath, a.route("regent", "operator_snapshot", auth.Read, a.snapshotSave))
	a.mux.HandleFunc("PUT "+snapshotPath, a.route("regent", "operator_snapshot", auth.Update, a.snapshotRestore))
	a.mux.HandleFunc("POST /v1/operator/join", a.join)
}

// serveMetrics answers /metrics. Without a token it shows the node's own
// metrics (as Nomad does; Prometheus needs no credential for them); the
// series that name tenants' networks (Config.TenantMetrics) are shown only
// to a token of a global user or a robot (the "metrics" row of the
// permission table), and a token that is bad (401) or may not see them
// (403) is refused rather than silently given less.
func (a *API) serveMetrics() http.HandlerFunc {
	public := promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})
	full := public
	if a.cfg.TenantMetrics != nil {
		full = promhttp.HandlerFor(prometheus.Gatherers{a.reg, a.cfg.TenantMetrics}, promhttp.HandlerOpts{})
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if auth.FromRequest(r) == "" {
			public.ServeHTTP(w, r)
			return
		}
		p, err := a.Authenticate(r)
		if err == nil {
			err = a.perms.Check(p, "regent", "metrics", auth.Read)
		}
		var e *wire.Error
		if errors.As(err, &e) && e.Status == http.StatusForbidden {
			// The table's "You do not have permission to read metrics
			// objects." left the caller to guess that no token at all
			// would have done.
			err = &wire.Error{Status: e.Status, ErrorCode: e.ErrorCode, Detail: "A token on /metrics asks for the tenants' series too " +
				"(regent_ipam_block_*), which only a global user's or a robot's token may read: send no token for the node's own metrics."}
		}
		if err != nil {
			WriteError(w, err)
			return
		}
		full.ServeHTTP(w, r)
	}
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	id, _ := a.cluster.Leader()
	h := wire.Health{Status: "ok", NodeID: a.cluster.NodeID(), Leader: id, IsLeader: a.cluster.IsLeader(),
		AppliedIndex: a.cluster.AppliedIndex()}
	status := http.StatusOK
	if id == "" {
		status, h.Status = http.StatusServiceUnavailable, "no leader"
	}
	// A node removed from the cluster keeps running (so it can be joined
	// again) and may still name its old leader for a while.
	if servers, err := a.cluster.Servers(); err == nil && len(servers) > 0 &&
		!slices.ContainsFunc(servers, func(s cluster.Server) bool { return s.ID == h.NodeID }) {
		status, h.Status = http.StatusServiceUnavailable,
			"not a member of the cluster (removed): add it back with regent-controller join"
	}
	if a.cfg.Health != nil {
		if err := a.cfg.Health(); err != nil {
			status, h.Status = http.StatusServiceUnavailable, err.Error()
		}
	}
	WriteJSON(w, status, h)
}

func (a *API) members(q *Request) error {
	servers, err := a.cluster.Servers()
	if err != nil {
		return &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: wire.CodeNoLeader, Detail: err.Error(), RetryAfter: 1}
	}
	out := make([]wire.ClusterMember, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		m := wire.ClusterMember{ID: s.ID, RaftAddr: s.Address, Suffrage: s.Suffrage, Leader: s.Leader}
		if n, ok := q.Txn.Node(s.ID); ok {
			m.HTTPAddr = n.HTTPAddr
		}
		out[i] = m
		wg.Add(1)
		go func(m *wire.ClusterMember) {
			defer wg.Done()
			m.Healthy = m.ID == a.cluster.NodeID() || a.probe(q, m.HTTPAddr)
		}(&out[i])
	}
	wg.Wait()
	WriteJSON(q.W, http.StatusOK, wire.Item[[]wire.ClusterMember]{Content: out})
	return nil
}

// probe asks a peer's /healthz, briefly.
func (a *API) probe(q *Request, base string) bool {
	if base == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(q.Context(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := a.proxy.transport.RoundTrip(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (a *API) leader(q *Request) error {
	id, addr := a.cluster.Leader()
	if id == "" {
		return NoLeader("There is no leader at the moment.")
	}
	WriteJSON(q.W, http.StatusOK, wire.Item[wire.LeaderInfo]{Content: leaderInfo(q.Txn, id, addr)})
	return nil
}

// leaderInfo describes node id, the leader: its raft address (raftAddr, or
// else its node record's) and the HTTP address of its node record.
func leaderInfo(txn *state.ReadTxn, id, raftAddr string) wire.LeaderInfo {
	info := wire.LeaderInfo{ID: id, RaftAddr: raftAddr}
	if n, ok := txn.Node(id); ok {
		info.HTTPAddr = n.HTTPAddr
		if info.RaftAddr == "" {
			info.RaftAddr = n.RaftAddr
		}
	}
	return info
}

// transferLeader hands leadership to another voter (the body's id, or the
// most up-to-date one) and answers with the new leader. Writes that arrive
// meanwhile wait and then go to the new leader (cluster.BeginWrite).
func (a *API) transferLeader(q *Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, q.Body, MaxBodyBytes))
	if err != nil {
		return wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "The request body could not be read: %v.", err)
	}
	var req wire.TransferRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return err
		}
	}
	from := a.cluster.NodeID()
	id, err := a.cluster.TransferLeadership(q.Context(), req.ID)
	switch {
	case errors.Is(err, cluster.ErrNoOtherVoter):
		return wire.Errorf(http.StatusConflict, "regent_operator_transfer_101",
			"%s is the cluster's only voter: there is no other node to take over leadership.", from)
	case errors.Is(err, cluster.ErrUnknownServer):
		fe := wire.FieldErrors{}
		fe.Add("id", "regent_operator_transfer_102", "%q is not a voter of the cluster (see GET /v1/operator/members).", req.ID)
		return fe.Err()
	case errors.Is(err, cluster.ErrLeadershipTransferInProgress):
		return wire.Errorf(http.StatusConflict, "regent_operator_transfer_103", "A leadership transfer is already under way; wait for it to finish.")
	case err != nil:
		var nl *cluster.ErrNotLeader
		if errors.As(err, &nl) || errors.Is(err, cluster.ErrNoLeader) || errors.Is(err, cluster.ErrShutdown) {
			return asUnavailable(err)
		}
		return &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: "regent_operator_transfer_104",
			Detail: "Leadership was not handed over: " + strings.TrimPrefix(err.Error(), "cluster: ") + ".", RetryAfter: 1}
	}
	if id != from {
		a.log.Info("leadership handed over on request", "from", from, "to", id)
	}
	WriteJSON(q.W, http.StatusOK, wire.Item[wire.LeaderInfo]{Content: leaderInfo(q.Txn, id, "")})
	return nil
}

// join adds a node as a voter. It is authorised by the cluster token, not a
// user token, because the joining node has no state yet.
func (a *API) join(w http.ResponseWriter, r *http.Request) {
	refuse := func() {
		WriteError(w, wire.Errorf(http.StatusForbidden, "regent_operator_join_201", "The cluster token is missing or wrong."))
	}
	// Guesses are limited: an attempt takes one of the guard's tokens
	// before the cluster token is checked (so that when none is left the
	// answer is 429 whatever was sent, and a right guess cannot be told
	// from a wrong one), and the right token gives it back.
	if !a.joins.take(a.cfg.Now()) {
		WriteError(w, &wire.Error{Status: http.StatusTooManyRequests, ErrorCode: "regent_operator_join_202", RetryAfter: 1,
			Detail: "Too many joins with a wrong cluster token: retry in a moment."})
		return
	}
	if *a.clusterToken.Load() == "" {
		// No token can match: say so, not "wrong", so that the operator
		// of the joining node does not hunt for a typo in a right token.
		a.log.Warn("join refused: this node has no cluster token", "remote", r.RemoteAddr)
		WriteError(w, wire.Errorf(http.StatusForbidden, "regent_operator_join_203",
			"This node has no cluster token, so it takes no joins: set the same cluster_token on the cluster's nodes (config, -cluster-token or $REGENT_CLUSTER_TOKEN) and reload or restart them, then join with it."))
		return
	}
	checked := false
	defer func() {
		if !checked {
			a.log.Warn("join refused: the cluster token is missing or wrong", "remote", r.RemoteAddr)
		}
	}()
	matches := func(tok string) bool {
		want := *a.clusterToken.Load()
		ok := want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
		if ok && !checked {
			checked = true
			a.joins.giveBack()
		}
		return ok
	}
	// The token is checked before the body is parsed, so an unauthorised
	// caller learns nothing and costs little; it may also come in the body.
	tok := r.Header.Get("X-Regent-Cluster-Token")
	if tok != "" && !matches(tok) {
		refuse()
		return
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 4096)
	var req wire.JoinRequest
	if err := DecodeBody(r, &req); err != nil {
		if tok == "" {
			refuse()
		} else {
			WriteError(w, err)
		}
		return
	}
	if tok == "" && !matches(req.ClusterToken) {
		refuse()
		return
	}
	fe := wire.FieldErrors{}
	if req.NodeID == "" {
		fe.Add("node_id", "regent_operator_join_101", "This field is required.")
	}
	if !validHostPort(req.RaftAddr) {
		fe.Add("raft_addr", "regent_operator_join_102", "Expected host:port with a routable host, got %q.", req.RaftAddr)
	}
	if !strings.HasPrefix(req.HTTPAddr, "http://") && !strings.HasPrefix(req.HTTPAddr, "https://") {
		fe.Add("http_addr", "regent_operator_join_103", "Expected an http:// or https:// base URL, got %q.", req.HTTPAddr)
	}
	if err := fe.Err(); err != nil {
		WriteError(w, err)
		return
	}
	q := &Request{Request: r, W: w, API: a, P: &auth.Principal{}, App: "regent", Service: "operator", Action: "join"}
	// A join the cluster will refuse (say, under the id of a live server)
	// must not touch the record of the node that has that id.
	err := a.cluster.CheckAddVoter(req.NodeID, req.RaftAddr)
	old, hadRecord := a.store.Read().Node(req.NodeID)
	var cmd *fsm.Command
	if err == nil {
		cmd, err = fsm.NewCommand(fsm.NodeUpsertType, a.Now(), fsm.Actor{}, &state.Node{ID: req.NodeID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr})
	}
	if err == nil {
		_, _, err = a.Apply(q, cmd)
	}
	if err == nil {
		if err = a.cluster.AddVoter(req.NodeID, req.RaftAddr); err != nil {
			// Leave the record as it was: none for a node that is not in
			// the cluster, the old one for a server that still is.
			undo, uerr := fsm.NewCommand(fsm.NodeDeleteType, a.Now(), fsm.Actor{}, &state.Node{ID: req.NodeID})
			if hadRecord {
				undo, uerr = fsm.NewCommand(fsm.NodeUpsertType, a.Now(), fsm.Actor{}, old)
			}
			if uerr == nil {
				a.Apply(q, undo)
			}
		}
	}
	if err != nil {
		a.writeErr(w, r, membershipErr(err, "regent_operator_join_105", "regent_operator_join_104"))
		return
	}
	a.log.Info("node joined", "node_id", req.NodeID, "raft_addr", req.RaftAddr, "http_addr", req.HTTPAddr)
	WriteJSON(w, http.StatusOK, wire.Item[wire.JoinRequest]{Content: wire.JoinRequest{NodeID: req.NodeID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr}})
}

// joinGuard limits the joins whose cluster token is wrong: a burst of
// joinBurst, then one per joinRefill. The cluster token is the credential
// that adds a voter, which receives the whole state.
type joinGuard struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

const (
	joinBurst  = 10
	joinRefill = time.Second
)

func newJoinGuard() *joinGuard { return &joinGuard{tokens: joinBurst} }

// take reserves an attempt; false when none is left.
func (g *joinGuard) take(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() && now.After(g.last) {
		g.tokens = min(joinBurst, g.tokens+float64(now.Sub(g.last))/float64(joinRefill))
	}
	g.last = now
	if g.tokens < 1 {
		return false
	}
	g.tokens--
	return true
}

// giveBack returns the attempt of a join whose token was right.
func (g *joinGuard) giveBack() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokens = min(joinBurst, g.tokens+1)
}

// asUnavailable maps a cluster error of an operator request to 503:
// regent_cluster_002 when a change may have been made (leadership lost
// while committing, or not committed in time: look before retrying), else
// regent_cluster_001 (nothing done; retry).
func asUnavailable(err error) error {
	var e *wire.Error
	switch {
	case errors.As(err, &e):
		return err
	case errors.Is(err, cluster.ErrLeadershipLost), errors.Is(err, cluster.ErrCommitTimeout):
		return &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: wire.CodeForwardFailed,
			Detail: err.Error() + ": check the cluster (GET /v1/operator/members), then retry.", RetryAfter: 1}
	}
	return &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: wire.CodeNoLeader, Detail: err.Error(), RetryAfter: 1}
}

func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && host != "" && port != "" && host != "0.0.0.0" && host != "::"
}

func (a *API) removeMember(q *Request) error {
	id := q.PathValue("id")
	servers, err := a.cluster.Servers()
	if err != nil {
		return asUnavailable(err)
	}
	var target *cluster.Server
	voters := 0
	for i, s := range servers {
		if s.Suffrage == "voter" {
			voters++
		}
		if s.ID == id {
			target = &servers[i]
		}
	}
	if target == nil {
		return wire.NotFound("regent_operator_delete_001")
	}
	if target.Suffrage == "voter" && voters == 1 {
		return wire.Errorf(http.StatusConflict, "regent_operator_delete_102",
			"%s is the cluster's last voter and cannot be removed; stop it instead, or join another node first.", id)
	}
	// The leader hands leadership over before it removes itself, so the
	// cluster does not wait out an election timeout, and the new leader
	// removes it (the request is sent on). If the hand-over fails, this
	// node removes itself and steps down; the others then elect a leader.
	if self := a.cluster.NodeID(); id == self && target.Suffrage == "voter" {
		if to, err := a.cluster.TransferLeadership(q.Context(), ""); err == nil && to != self {
			a.log.Info("leadership handed over before removing this node", "to", to)
			rw, ok := q.W.(*respWriter)
			if !ok {
				rw = &respWriter{ResponseWriter: q.W, a: a}
			}
			a.proxy.forward(rw, q.Request)
			return nil
		} else if err != nil {
			a.log.Warn("leadership not handed over before removing this node", "error", err)
		}
	}
	// Forget the node's address first: removing the leader itself makes it
	// step down, after which this node can no longer write.
	old, hadRecord := q.Txn.Node(id)
	cmd, err := q.Command(fsm.NodeDeleteType, &state.Node{ID: id})
	if err != nil {
		return err
	}
	_, index, err := a.Apply(q, cmd)
	if err != nil {
		return err
	}
	if err := a.cluster.RemoveServer(id); err != nil {
		// Nothing changed in raft: put the address record back.
		if hadRecord {
			if undo, uerr := q.Command(fsm.NodeUpsertType, old); uerr == nil {
				a.Apply(q, undo)
			}
		}
		return membershipErr(err, "regent_operator_delete_102", "")
	}
	setIndex(q.W, index)
	a.log.Info("node removed", "node_id", id)
	q.W.WriteHeader(http.StatusNoContent)
	return nil
}

// membershipErr maps a refused membership change to a 4xx the operator can
// act on (conflict: 409 with conflictCode; an unreachable node: 400 on the
// raft_addr field with unreachableCode); other errors are the cluster's.
func membershipErr(err error, conflictCode, unreachableCode string) error {
	switch {
	case errors.Is(err, cluster.ErrMembershipConflict):
		return wire.Errorf(http.StatusConflict, conflictCode, "%s", strings.TrimPrefix(err.Error(), cluster.ErrMembershipConflict.Error()+": "))
	case unreachableCode != "" && errors.Is(err, cluster.ErrUnreachable):
		fe := wire.FieldErrors{}
		fe.Add("raft_addr", unreachableCode, "%s", strings.TrimPrefix(err.Error(), "cluster: "))
		return fe.Err()
	}
	return asUnavailable(err)
}

func (a *API) snapshotSave(q *Request) error {
	q.W.Header().Set("Content-Type", "application/octet-stream")
	q.W.Header().Set("Content-Disposition", `attachment; filename="regent.snap"`)
	// Stream into the response. A failure after the first byte can only be
	// told by cutting the stream: the chunked response then never ends, and
	// clients see an unexpected EOF (and no trailer), never a complete-looking
	// snapshot that is not.
	pw := &lazyWriter{w: q.W}
	if err := a.cluster.SnapshotSave(q.Context(), pw); err != nil {
		if pw.started {
			a.log.Error("snapshot save failed mid-stream; the download is cut", "error", err)
			panic(http.ErrAbortHandler)
		}
		return asUnavailable(err)
	}
	return nil
}

type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) Write(b []byte) (int, error) {
	l.started = true
	return l.w.Write(b)
}

func (a *API) snapshotRestore(q *Request) error {
	before := q.Txn.NodeList()
	allowLongBody(q.Body) // the caller is authorised: the upload may be large
	body := http.MaxBytesReader(nil, q.Body, bodyLimit(q.Request))
	err := a.cluster.SnapshotRestore(q.Context(), body, state.Validate)
	if err != nil {
		if errors.Is(err, state.ErrBadSnapshot) || errors.Is(err, cluster.ErrInvalidSnapshot) {
			return wire.Errorf(http.StatusBadRequest, "regent_operator_snapshot_101", "The snapshot was refused and nothing changed: %s.", snapshotReason(err))
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return wire.Errorf(http.StatusRequestEntityTooLarge, wire.CodeBodyTooLarge, "The snapshot is larger than %d bytes.", MaxSnapshotBytes)
		}
		return asUnavailable(err)
	}
	if err := a.restoreNodes(q, before); err != nil {
		return err
	}
	a.log.Info("snapshot restored")
	WriteJSON(q.W, http.StatusOK, wire.Item[wire.SnapshotRestoreResult]{Content: wire.SnapshotRestoreResult{Restored: true, Index: a.cluster.AppliedIndex()}})
	return nil
}

// restoreNodes puts back this cluster's node records after a restore: the
// snapshot may come from another cluster, whose nodes are not ours.
// snapshotReason is why a snapshot was refused, without the layers' prefixes
// ("cluster: invalid snapshot: invalid snapshot: truncated: ..." says
// "truncated: ...").
func snapshotReason(err error) string {
	msg := err.Error()
	for _, p := range []string{cluster.ErrInvalidSnapshot.Error() + ": ", state.ErrBadSnapshot.Error() + ": "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

func (a *API) restoreNodes(q *Request, ours []*state.Node) error {
	servers, err := a.cluster.Servers()
	if err != nil {
		return asUnavailable(err)
	}
	inConfig := map[string]bool{}
	for _, s := range servers {
		inConfig[s.ID] = true
	}
	rt := a.store.Read()
	apply := func(t fsm.MessageType, n *state.Node) error {
		cmd, err := q.Command(t, n)
		if err == nil {
			_, _, err = a.Apply(q, cmd)
		}
		return err
	}
	for _, n := range rt.NodeList() {
		if !inConfig[n.ID] {
			if err := apply(fsm.NodeDeleteType, n); err != nil {
				return err
			}
		}
	}
	for _, n := range ours {
		if cur, ok := rt.Node(n.ID); inConfig[n.ID] && (!ok || *cur != *n) {
			if err := apply(fsm.NodeUpsertType, n); err != nil {
				return err
			}
		}
	}
	return nil
}
