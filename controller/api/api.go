// Package api is the HTTP front of a controller node: routing, the request
// pipeline (metrics, forwarding to the leader, authentication, body
// decoding, errors), and the one generic list/read/create/update/delete path
// that every CloudCIX-style service is registered through. The dialects live
// in subpackages (membership, iaas, melange) that register their services
// on an *API; the operator routes live here.
package api

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/cluster"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/auditlog"
)

// Cluster is what the API needs of the raft layer.
type Cluster interface {
	NodeID() string
	Apply(ctx context.Context, cmd []byte) (any, uint64, error)
	IsLeader() bool
	Leader() (id, raftAddr string)
	WaitForLeader(ctx context.Context) (string, error)
	VerifyLeader(ctx context.Context) error
	ReadyForReads() bool
	AwaitReadyForReads(ctx context.Context) error
	LastContact() time.Duration
	AppliedIndex() uint64
	AddVoter(id, addr string) error
	CheckAddVoter(id, addr string) error
	RemoveServer(id string) error
	TransferLeadership(ctx context.Context, to string) (string, error)
	BeginWrite(ctx context.Context) (done func(), err error)
	Servers() ([]cluster.Server, error)
	SnapshotSave(ctx context.Context, w io.Writer) error
	SnapshotRestore(ctx context.Context, r io.Reader, validate cluster.SnapshotValidator) error
}

// Config carries what the API needs besides the cluster and the store.
type Config struct {
	// ClusterToken authorises POST /v1/operator/join.
	ClusterToken string
	// ApplyTimeout bounds how long a write waits for a leader (default 5s).
	ApplyTimeout time.Duration
	// OpenAPI is the JSON rendering of pkg/api/openapi.yaml, served at /openapi.json.
	OpenAPI []byte
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// ForwardTLS, when set, returns the client TLS config of a new
	// connection to a leader over HTTPS (called per connection, so that a
	// rotated CA applies to the next one); nil: the system's roots.
	ForwardTLS func() *tls.Config
	// Health reports extra health conditions for /healthz (nil = healthy).
	Health func() error
	// TenantMetrics gathers the metrics that name tenants' objects (their
	// address blocks): /metrics adds them for a global user's or a robot's
	// token only.
	TenantMetrics prometheus.Gatherer
	// BodyTimeout bounds how long a client may take to send a request body
	// (default 30s); see timedBody.
	BodyTimeout time.Duration
	// Placement overrides the factors of the CloudCIX VM placement score
	// (nil: wire.DefaultPlacement). The leader stamps them into commands.
	Placement *wire.PlacementFactors
	// Audit, when set, receives the audit trail: a JSON line (AuditRecord)
	// per request that may change something, written by the node that
	// serves it.
	Audit *auditlog.Writer
	// GenericLists makes every list filter, order and page the rendered
	// views of all the visible objects, without the shortcuts that render
	// only the page (Service.list): tests compare the shortcuts' answers
	// with it.
	GenericLists bool
}

// API is one node's HTTP handler.
type API struct {
	cfg Config
	// clusterToken is the one joins present: Config.ClusterToken, or
	// what SetClusterToken made it.
	clusterToken atomic.Pointer[string]
	cluster      Cluster
	store        *state.Store
	log          hclog.Logger
	perms        auth.Table
	mux          *http.ServeMux
	metrics      *httpMetrics
	proxy        *forwarder
	reg          prometheus.Gatherer
	lists        []ListSpec
	joins        *joinGuard
	// drain ends when the node stops (Drain): blocking queries answer at
	// once, as if their wait ran out.
	drain    context.Context
	drainNow context.CancelFunc
}

// ListSpec is the query Spec of one registered list route, for the
// conventions tests and docs.
type ListSpec struct {
	App, Name string
	Query     query.Spec
}

// Lists returns the query Specs of the lists registered so far.
func (a *API) Lists() []ListSpec { return slices.Clone(a.lists) }

// New builds the API and registers the core routes (operator, health,
// metrics, OpenAPI). Services are added with Register.
func New(cfg Config, c Cluster, store *state.Store, log hclog.Logger, reg *prometheus.Registry) *API {
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = 30 * time.Second
	}
	a := &API{cfg: cfg, cluster: c, store: store, log: log.Named("http"), perms: auth.Permissions(),
		mux: http.NewServeMux(), reg: reg, joins: newJoinGuard()}
	a.drain, a.drainNow = context.WithCancel(context.Background())
	a.SetClusterToken(cfg.ClusterToken)
	a.metrics = newHTTPMetrics(reg, a.log)
	if cfg.Audit != nil {
		a.metrics.audit = &auditor{w: cfg.Audit, node: c.NodeID}
		if reg != nil {
			reg.MustRegister(auditCollector{cfg.Audit})
		}
	}
	a.proxy = newForwarder(a)
	a.registerCore()
	return a
}

// Drain ends the waits of blocking queries (they answer what they have, as
// when their wait runs out) and of the ones this node relays to the leader
// (503, retry elsewhere), now and from now on, so that a stopping node's
// HTTP server drains in moments rather than after the agents' five-minute
// long polls. Other requests are not touched: writes under way finish.
func (a *API) Drain() { a.drainNow() }

// SetClusterToken replaces the cluster token joins must present (a
// configuration reload); "" refuses every join.
func (a *API) SetClusterToken(tok string) { a.clusterToken.Store(&tok) }

// ClusterToken is the cluster token joins must present now (the node's own
// joins present it too).
func (a *API) ClusterToken() string { return *a.clusterToken.Load() }

// Placement returns the placement factors stamped into VM commands.
func (a *API) Placement() wire.PlacementFactors {
	if a.cfg.Placement != nil {
		return *a.cfg.Placement
	}
	return wire.DefaultPlacement
}

// Store returns the state store.
func (a *API) Store() *state.Store { return a.store }

// Now returns the API clock's time, in UTC.
func (a *API) Now() time.Time { return a.cfg.Now().UTC() }

// Permissions returns the permission table, for the matrix test and docs.
func (a *API) Permissions() auth.Table { return a.perms }

// Handle registers a route. pattern is a Go ServeMux pattern with a method.
// A pattern ending in "/{$}" matches exactly that path and is also
// registered without the trailing slash, so both /x/ and /x are served.
func (a *API) Handle(pattern string, h http.HandlerFunc) {
	a.mux.HandleFunc(pattern, h)
	if base, ok := strings.CutSuffix(pattern, "/{$}"); ok && strings.Count(base, "/") > 1 {
		a.mux.HandleFunc(base, h)
	}
}

// Handler returns the complete HTTP handler of the node.
func (a *API) Handler() http.Handler {
	return a.proxy.wrap(a.mux)
}

// Authenticate resolves the request's token to a principal.
func (a *API) Authenticate(r *http.Request) (*auth.Principal, error) {
	p, err := auth.Authenticate(a.store.Read(), auth.FromRequest(r), a.Now())
	if err == nil {
		notePrincipal(r, p)
	}
	return p, err
}
