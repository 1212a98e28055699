package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/pkg/auditlog"
)

// The audit trail (Config.Audit): one JSON line per request that may
// change something (any method but GET, HEAD and OPTIONS) and per snapshot
// download, written by the node that served it (a follower that forwards a
// request leaves it to the leader), with who sent it as the token resolved.

// principalSlot receives the principal of a request from Authenticate, for
// the audit line written after the handler returns.
type principalSlot struct{ p *auth.Principal }

type principalKey struct{}

// notePrincipal records p for the audit line of r, if r is audited.
func notePrincipal(r *http.Request, p *auth.Principal) {
	if s, ok := r.Context().Value(principalKey{}).(*principalSlot); ok {
		s.p = p
	}
}

// audited says whether r gets an audit line.
func audited(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return r.URL.Path == snapshotPath
	case http.MethodOptions:
		return false
	}
	return true
}

// AuditRecord is one line of the audit trail.
type AuditRecord struct {
	Time time.Time `json:"time"`
	Node string    `json:"node"`
	// Remote is the address the request came from; ForwardedBy the nodes
	// that forwarded it (X-Regent-Forwarded-By, kept only with the proof
	// that a node set it: forwardProofHeader), Remote then being the last
	// of them.
	Remote      string `json:"remote"`
	ForwardedBy string `json:"forwarded_by,omitempty"`
	// Client is, for a forwarded request, the client's address as the
	// first forwarding node saw it (X-Regent-Client-Addr, proven as
	// ForwardedBy is).
	Client string `json:"client,omitempty"`
	Method string `json:"method"`
	// Path without the query (which may hold filter values, never a
	// secret this line needs).
	Path   string `json:"path"`
	Route  string `json:"route"`
	Status int    `json:"status"`
	// Index is the raft index the answer names (X-Regent-Index): the
	// write's commit, or the state it was refused against.
	Index  uint64  `json:"index,omitempty"`
	TookMS float64 `json:"took_ms"`
	// Who: from the token, when it resolved (none: no token, or one that
	// is invalid, revoked or expired; the status says which).
	Role     string `json:"role"`
	TokenID  uint64 `json:"token_id,omitempty"`
	UserID   uint64 `json:"user_id,omitempty"`
	MemberID uint64 `json:"member_id,omitempty"`
}

// auditor writes the audit lines of one node.
type auditor struct {
	w    *auditlog.Writer
	node func() string
}

// begin prepares r for its audit line: nil when r is not audited.
func (au *auditor) begin(r *http.Request) (*http.Request, *principalSlot) {
	if au == nil || !audited(r) {
		return r, nil
	}
	slot := &principalSlot{}
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, slot)), slot
}

func (au *auditor) record(r *http.Request, slot *principalSlot, w http.ResponseWriter, route string, status int, start time.Time, took time.Duration) {
	rec := AuditRecord{Time: start.UTC(), Node: au.node(), Remote: r.RemoteAddr, ForwardedBy: r.Header.Get(forwardedHeader),
		Client: r.Header.Get(clientAddrHeader),
		Method: r.Method, Path: r.URL.Path, Route: route, Status: status, TookMS: float64(took.Microseconds()) / 1000, Role: auth.None.String()}
	if rec.ForwardedBy == "" {
		rec.Client = ""
	}
	rec.Index, _ = strconv.ParseUint(w.Header().Get("X-Regent-Index"), 10, 64)
	if p := slot.p; p != nil {
		rec.Role = p.Role.String()
		if p.Holds(auth.GlobalAdmin) {
			rec.Role = auth.GlobalAdmin.String()
		}
		rec.TokenID, rec.UserID, rec.MemberID = p.TokenID, p.UserID, p.MemberID
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return
	}
	au.w.Append(line)
}

// auditCollector exports the audit writer's counts.
type auditCollector struct{ w *auditlog.Writer }

var auditLinesDesc = prometheus.NewDesc("regent_audit_lines_total",
	"Lines of the audit trail (audit_log) by result: written; failed (a write to the file failed, see the log); dropped (more than 64 MiB waiting for a disk that does not take them).",
	[]string{"result"}, nil)

func (c auditCollector) Describe(ch chan<- *prometheus.Desc) { ch <- auditLinesDesc }

func (c auditCollector) Collect(ch chan<- prometheus.Metric) {
	written, failed, dropped := c.w.Counts()
	for result, n := range map[string]uint64{"written": written, "failed": failed, "dropped": dropped} {
		ch <- prometheus.MustNewConstMetric(auditLinesDesc, prometheus.CounterValue, float64(n), result)
	}
}

// routeLabel is the route of r for metrics and the audit trail: its
// pattern without the method, "forwarded" for a request this node sent to
// the leader, "forward-failed" for one it could not (no leader, too large,
// the leader's answer lost), "unmatched" for a path no route has.
func routeLabel(r *http.Request, w *respWriter) string {
	route := r.Pattern
	if route == "" {
		switch {
		case w.Header().Get("X-Regent-Forwarded-To") != "":
			route = "forwarded"
		case w.forwarding:
			route = "forward-failed"
		default:
			route = "unmatched"
		}
	} else if i := strings.IndexByte(route, ' '); i >= 0 {
		route = route[i+1:]
	}
	return route
}
