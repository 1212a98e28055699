package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/cluster"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/tlsfiles"
)

// respWriter records the status for metrics, adds X-Regent-Index to every
// response, and turns the mux's plain-text 404/405 into the JSON error shape.
type respWriter struct {
	http.ResponseWriter
	a       *API
	status  int
	swallow bool
	// blocking marks a blocking query (?index=N), whose latency is mostly
	// the wait: the request histogram keeps it apart (label blocking).
	blocking bool
	// forwarding: this node tried to send the request to the leader.
	forwarding bool
	// errorCode is the error_code of a 5xx answer's body, for the log.
	errorCode string
}

func (w *respWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	h := w.Header()
	if h.Get("X-Regent-Index") == "" {
		h.Set("X-Regent-Index", strconv.FormatUint(w.a.cluster.AppliedIndex(), 10))
	}
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		w.swallow = true
		h.Del("X-Content-Type-Options")
		e := &wire.Error{Status: code, ErrorCode: wire.CodeNotFoundRoute, Detail: "No such route."}
		if code == http.StatusMethodNotAllowed {
			e.ErrorCode, e.Detail = wire.CodeMethodNotAllowed, "Method not allowed on this route; allowed: "+h.Get("Allow")+"."
		}
		h.Set("Content-Type", "application/json")
		w.ResponseWriter.WriteHeader(code)
		body, _ := jsonMarshal(e)
		w.ResponseWriter.Write(body)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	if w.status >= 500 && w.errorCode == "" {
		var e struct {
			ErrorCode string `json:"error_code"`
		}
		if json.Unmarshal(b, &e) == nil {
			w.errorCode = e.ErrorCode
		}
	}
	return w.ResponseWriter.Write(b)
}

func (w *respWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type httpMetrics struct {
	dur       *prometheus.HistogramVec
	inflight  prometheus.Gauge
	unchanged prometheus.Counter
	broad     prometheus.Counter
	log       hclog.Logger // a line per request at debug; a 5xx at warn always
	audit     *auditor     // nil: no audit trail
}

func newHTTPMetrics(reg prometheus.Registerer, log hclog.Logger) *httpMetrics {
	m := &httpMetrics{log: log,
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "regent_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern, method and status code; blocking=\"true\" for blocking queries (?index=N&wait=D), whose latency is mostly the wait.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code", "blocking"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "regent_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
		unchanged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regent_http_blocking_unchanged_total",
			Help: "Wake-ups of blocking queries with a content hash (the agents' work, ?hash) that found the caller's answer unchanged and waited on.",
		}),
		broad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regent_http_blocking_broad_total",
			Help: "Of those wake-ups, the ones whose answer was read from more places than are watched (2,048) or by a scan that cannot be watched: they wait on every write to the answer's tables.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.dur, m.inflight, m.unchanged, m.broad)
	}
	return m
}

func (m *httpMetrics) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inflight.Inc()
		rw, ok := w.(*respWriter)
		if !ok {
			panic("api: metrics must wrap the forwarder")
		}
		r, slot := m.audit.begin(r)
		returned := false
		defer func() {
			m.inflight.Dec()
			route := routeLabel(r, rw)
			status := rw.status
			if status == 0 {
				status = http.StatusOK
				if !returned {
					// The handler panicked: the forwarder's recover,
					// further up, answers 500 (and logs the panic's own
					// stack, so it is not recovered here).
					status = http.StatusInternalServerError
				}
			}
			took := time.Since(start)
			m.dur.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(status), strconv.FormatBool(rw.blocking)).Observe(took.Seconds())
			// A request this node sent to the leader is the leader's to
			// record (also when a handler forwarded it, as the removal of
			// the leader itself does).
			if slot != nil && rw.Header().Get("X-Regent-Forwarded-To") == "" {
				m.audit.record(r, slot, rw, route, status, start, took)
			}
			// The path, never the query: it may carry filter values but no
			// secret, and the route keeps lines greppable.
			switch {
			// /healthz answers 503 by design (no leader, not a member,
			// the store failing: each logged where it happens); a load
			// balancer asks every few seconds.
			case status >= 500 && route != "/healthz":
				m.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "route", route, "status", status,
					"error_code", rw.errorCode, "took", took, "remote", r.RemoteAddr)
			case m.log.IsDebug():
				m.log.Debug("request", "method", r.Method, "path", r.URL.Path, "route", route, "status", status,
					"took", took, "remote", r.RemoteAddr)
			}
		}()
		next.ServeHTTP(w, r)
		returned = true
	})
}

// methodLabel bounds the method label: a client may send any token as its
// method, and each would be a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// forwarder sends requests that must be served by the leader to the leader.
// Local: /healthz, /metrics, /openapi.json and GET/HEAD with ?stale=true.
type forwarder struct {
	a         *API
	transport *http.Transport
}

func newForwarder(a *API) *forwarder {
	dialer := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	if a.cfg.ForwardTLS != nil {
		t.DialTLSContext = tlsfiles.DialTLS(dialer, a.cfg.ForwardTLS)
	}
	return &forwarder{a: a, transport: t}
}

func localOnly(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/metrics", "/openapi.json":
		return true
	}
	return staleRead(r)
}

// staleRead reports whether r is a ?stale read (GET or HEAD with
// stale=true or 1): the node it reached answers it from its local state,
// leader or not.
func staleRead(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	v := r.URL.Query().Get("stale")
	return v == "true" || v == "1"
}

// forwardedHeader lists the nodes a request was forwarded by, in order
// (comma-separated). A node that is not the leader passes a forwarded
// request on while the list is shorter than maxForwards, so a request sent
// to a leader that has just handed leadership over still reaches the new
// one, and stale views of who leads cannot bounce a request around for ever.
const forwardedHeader = "X-Regent-Forwarded-By"

const maxForwards = 2

// clientAddrHeader carries the client's address, as the first node that
// forwarded the request saw it, to the leader's audit line.
const clientAddrHeader = "X-Regent-Client-Addr"

// forwardProofHeader proves that forwardedHeader and clientAddrHeader were
// set by a node of the cluster: an HMAC-SHA256, keyed by the cluster token
// (which only the nodes hold), of the two values, the method and the
// request URI. A client can send those headers too: without the proof
// (dropUnprovenForwarding) the client address is dropped, so the node the
// request reached names the one it came from, and the names of the hops
// become "?": they still count towards maxForwards (a node whose cluster
// token differs, during a rotation, must not bounce a request around
// unchecked), but the leader's audit line shows what the nodes saw, not
// what a client said.
const forwardProofHeader = "X-Regent-Forward-Proof"

// forwardProof is the proof of via and client for r; "" without a cluster
// token (a node that has none has no peers to forward to or from).
func (a *API) forwardProof(r *http.Request, via, client string) string {
	tok := a.ClusterToken()
	if tok == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(tok))
	fmt.Fprintf(m, "%s\n%s\n%s\n%s", via, client, r.Method, r.URL.RequestURI())
	return hex.EncodeToString(m.Sum(nil))
}

// dropUnprovenForwarding keeps the forwarding headers of r only if a node
// of the cluster set them (forwardProofHeader), and drops the proof
// itself. Unproven, the client address goes and each hop's name becomes
// "?" (the count stays: maxForwards).
func (a *API) dropUnprovenForwarding(r *http.Request) {
	via, client, proof := r.Header.Get(forwardedHeader), r.Header.Get(clientAddrHeader), r.Header.Get(forwardProofHeader)
	r.Header.Del(forwardProofHeader)
	if via == "" && client == "" {
		return
	}
	if want := a.forwardProof(r, via, client); via != "" && want != "" && hmac.Equal([]byte(proof), []byte(want)) {
		return
	}
	r.Header.Del(clientAddrHeader)
	r.Header.Del(forwardedHeader)
	if via != "" {
		hops := min(strings.Count(via, ",")+1, maxForwards)
		r.Header.Set(forwardedHeader, strings.TrimSuffix(strings.Repeat("?,", hops), ","))
	}
}

func (f *forwarder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w0 http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			r.Body = newTimedBody(w0, r.Body, f.a.cfg.BodyTimeout)
		}
		f.a.dropUnprovenForwarding(r)
		w := &respWriter{ResponseWriter: w0, a: f.a}
		defer func() {
			// A bug must not take the connection down silently: log it with
			// its stack and answer in the error shape if nothing was sent.
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				f.a.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				if w.status == 0 {
					WriteError(w, nil)
				}
			}
		}()
		if localOnly(r) {
			if r.URL.Query().Get("stale") != "" {
				f.staleHeaders(w)
			}
			f.a.metrics.wrap(next).ServeHTTP(w, r)
			return
		}
		forward := f.a.metrics.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.forward(w.(*respWriter), r)
		}))
		done := func() {}
		if f.a.cluster.IsLeader() && f.gated(r) {
			// Writes pass the leader's gate: during a leadership hand-off
			// they wait, and go to the new leader afterwards.
			var err error
			if done, err = f.a.cluster.BeginWrite(r.Context()); err != nil {
				f.refuse(w, r, NoLeader("This node is shutting down; retry."))
				return
			}
			defer done()
			if !f.a.cluster.IsLeader() {
				done() // a forwarded write does not hold this node's gate
				forward.ServeHTTP(w, r)
				return
			}
		}
		if f.a.cluster.IsLeader() {
			switch elsewhere, refusal := f.leaderReady(r); {
			case refusal != nil:
				f.refuse(w, r, refusal)
			case elsewhere:
				done()
				forward.ServeHTTP(w, r)
			default:
				f.a.metrics.wrap(next).ServeHTTP(w, r)
			}
			return
		}
		forward.ServeHTTP(w, r)
	})
}

// leaderReady holds a request this node is to serve as the leader until it
// may: a new leader first applies every write committed before its term
// (its predecessor may have acknowledged writes this node has not applied
// yet: a read, or a write's checks, would miss them), and a
// ?consistent=true read has its leadership verified. elsewhere: another
// node leads now (forward); refusal: the 503 to answer.
func (f *forwarder) leaderReady(r *http.Request) (elsewhere bool, refusal *wire.Error) {
	if !f.a.cluster.ReadyForReads() {
		ctx, cancel := context.WithTimeout(r.Context(), f.a.cfg.ApplyTimeout)
		err := f.a.cluster.AwaitReadyForReads(ctx)
		cancel()
		if err != nil {
			if !f.a.cluster.IsLeader() {
				return true, nil
			}
			return false, NoLeader("This node has just become the leader and has not yet applied the writes committed before; retry.")
		}
	}
	if v := r.URL.Query().Get("consistent"); v == "true" || v == "1" {
		if err := f.a.cluster.VerifyLeader(r.Context()); err != nil {
			return false, NoLeader("Leadership could not be verified: " + err.Error())
		}
	}
	return false, nil
}

// refuse answers e to a request this node will not serve (it is shutting
// down, or cannot verify its leadership). The refusal is counted and
// audited like any answer, under the route the request would have taken.
func (f *forwarder) refuse(w *respWriter, r *http.Request, e *wire.Error) {
	_, r.Pattern = f.a.mux.Handler(r)
	f.a.metrics.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteError(w, e)
	})).ServeHTTP(w, r)
}

// gated says whether r is a write that passes the leader's gate
// (cluster.BeginWrite). Reads do not, and neither do the requests that hand
// leadership over (a transfer, and the removal of the leader itself, which
// hands over first): they would wait for themselves.
func (f *forwarder) gated(r *http.Request) bool {
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead, r.URL.Path == transferPath:
		return false
	case r.Method == http.MethodDelete && r.URL.Path == membersPath+f.a.cluster.NodeID():
		return false
	}
	return true
}

func (f *forwarder) staleHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Regent-Last-Contact", strconv.FormatInt(f.a.cluster.LastContact().Milliseconds(), 10))
	id, _ := f.a.cluster.Leader()
	h.Set("X-Regent-Known-Leader", strconv.FormatBool(id != ""))
}

// NoLeader is the 503 regent_cluster_001 (Retry-After 1) of a call this
// node cannot serve for want of a leader, or because it no longer leads.
func NoLeader(detail string) *wire.Error {
	return &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: wire.CodeNoLeader, Detail: detail, RetryAfter: 1}
}

// leaderURL waits (bounded by ctx) for a leader other than this node and
// returns its HTTP base URL; "" with nil error means this node is the leader.
func (f *forwarder) leaderURL(ctx context.Context, avoid string) (string, error) {
	for {
		id, raftAddr := f.a.cluster.Leader()
		if id == f.a.cluster.NodeID() {
			return "", nil
		}
		if id != "" && id != avoid {
			// The record must describe the leader raft knows: a node table
			// from another cluster (say, restored from its snapshot) must
			// never send writes elsewhere.
			if n, ok := f.a.store.Read().Node(id); ok && n.HTTPAddr != "" && n.RaftAddr == raftAddr {
				return n.HTTPAddr, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", NoLeader("No leader is available: the cluster is electing one or has lost quorum. Retry shortly.")
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// forward sends r to the leader and relays its answer (at most maxForwards
// hops in all, see forwardedHeader).
func (f *forwarder) forward(w *respWriter, r *http.Request) {
	w.forwarding = true
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		w.blocking = r.URL.Query().Get("index") != ""
	}
	if w.blocking {
		// A relayed long poll ends when this node stops (API.Drain).
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(f.a.drain, cancel)()
		r = r.WithContext(ctx)
	}
	if bodyLimit(r) > MaxBodyBytes {
		// A body larger than a request body (a snapshot restore) goes to
		// disk before it is forwarded: only for a caller this node
		// authenticates as allowed to send it, or anyone could fill the
		// disk of a follower. (A token made a moment ago may not have
		// reached this node yet: retry, or send to the leader.)
		if err := f.a.mayUpload(r); err != nil {
			WriteError(w, err)
			return
		}
		allowLongBody(r.Body)
	}
	body, err := forwardBody(r)
	if err != nil {
		WriteError(w, err)
		return
	}
	defer body.Close()
	// The deadline bounds the wait for a leader only, not the request itself
	// (a blocking query may legitimately take minutes).
	deadline := time.Now().Add(f.a.cfg.ApplyTimeout)
	avoid := ""
	for {
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		base, err := f.leaderURL(ctx, avoid)
		cancel()
		if err != nil {
			WriteError(w, err)
			return
		}
		if base == "" { // we became the leader while waiting
			elsewhere, refusal := f.leaderReady(r)
			if elsewhere {
				continue
			}
			if refusal != nil {
				WriteError(w, refusal)
				return
			}
			r.Body = io.NopCloser(body.reader())
			f.a.mux.ServeHTTP(w, r)
			return
		}
		if via := r.Header.Get(forwardedHeader); via != "" && len(strings.Split(via, ",")) >= maxForwards {
			WriteError(w, NoLeader("Leadership is changing; retry shortly."))
			return
		}
		resp, err := f.roundTrip(r, base, body)
		if err != nil {
			if isDialError(err) && time.Now().Before(deadline) {
				// Nothing was sent: safe to try the next leader.
				id, _ := f.a.cluster.Leader()
				avoid = id
				continue
			}
			if w.blocking && f.a.drain.Err() != nil {
				WriteError(w, NoLeader("This node is shutting down; retry."))
				return
			}
			f.a.log.Warn("forward to leader failed", "leader", base, "error", err)
			WriteError(w, &wire.Error{Status: http.StatusServiceUnavailable, ErrorCode: wire.CodeForwardFailed,
				Detail: "The request could not be completed by the leader; its outcome is unknown. Check, then retry.", RetryAfter: 1})
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.Header().Set("X-Regent-Forwarded-To", base)
		w.WriteHeader(resp.StatusCode)
		body := &readErr{r: resp.Body}
		if _, err := io.Copy(w, bufio.NewReader(body)); err != nil {
			// The leader's answer broke off, or the client left: cut this
			// answer too, so that a client cannot take a part for the
			// whole (a snapshot download, a long list).
			if body.err != nil {
				f.a.log.Warn("the leader's answer broke off; the forwarded answer is cut", "leader", base, "error", body.err)
			}
			panic(http.ErrAbortHandler)
		}
		return
	}
}

// readErr remembers the error of its reader other than io.EOF.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

func (f *forwarder) roundTrip(r *http.Request, base string, body *spooled) (*http.Response, error) {
	out, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimSuffix(base, "/")+r.URL.RequestURI(), body.reader())
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		out.Header[k] = vs
	}
	out.Host = r.Host // links the leader builds must name the host the client used
	via := f.a.cluster.NodeID()
	if prev := r.Header.Get(forwardedHeader); prev != "" {
		via = prev + "," + via
	}
	out.Header.Set(forwardedHeader, via)
	client := r.Header.Get(clientAddrHeader)
	if client == "" {
		// The first hop names the client (for the leader's audit line);
		// a later one passes that on. (wrap has dropped a client address
		// no node proved: this node names the one it came from.)
		client = r.RemoteAddr
	}
	out.Header.Set(clientAddrHeader, client)
	if proof := f.a.forwardProof(r, via, client); proof != "" {
		out.Header.Set(forwardProofHeader, proof)
	}
	out.ContentLength = body.size
	return f.transport.RoundTrip(out)
}

// spooled is a request body read once, so that it can be sent again to
// another leader: in memory, or in a temporary file (forwardBody).
type spooled struct {
	mem  []byte
	file *os.File
	size int64
}

// forwardBody reads r's body within the limit of its route (bodyLimit):
// in memory up to MaxBodyBytes, into a temporary file above (a snapshot
// restore is forwarded like any write, and a real cluster's snapshot is
// far larger than a request body).
func forwardBody(r *http.Request) (*spooled, error) {
	limit := bodyLimit(r)
	tooLarge := func() error {
		return wire.Errorf(http.StatusRequestEntityTooLarge, wire.CodeBodyTooLarge, "The request body is larger than %d bytes.", limit)
	}
	if limit <= MaxBodyBytes {
		b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
		if err != nil {
			return nil, tooLarge()
		}
		return &spooled{mem: b, size: int64(len(b))}, nil
	}
	tmp, err := os.CreateTemp("", "regent-forward-*")
	if err != nil {
		return nil, err
	}
	os.Remove(tmp.Name()) // gone with the last descriptor
	n, err := io.Copy(tmp, http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		tmp.Close()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, wire.Errorf(http.StatusBadRequest, wire.CodeMalformedJSON, "The request body could not be read: %v.", err)
	}
	return &spooled{file: tmp, size: n}, nil
}

// reader reads the body from its start.
func (s *spooled) reader() io.Reader {
	if s.file == nil {
		return bytes.NewReader(s.mem)
	}
	return io.NewSectionReader(s.file, 0, s.size)
}

func (s *spooled) Close() error {
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// isNotLeader reports raft errors meaning the command was never submitted.
func isNotLeader(err error) bool {
	var nl *cluster.ErrNotLeader
	return errors.As(err, &nl)
}

// timedBody is a request body that must arrive within a time limit: the
// server has no ReadTimeout (it would end blocking queries too, whose
// context the server cancels when a read of the connection fails), so
// without this a client that trickles its body (a byte now and then, with
// or without a token) holds its connection and goroutine for as long as
// it likes. The limit is the connection's read deadline, set when the
// request reaches the API and cleared when the body has been read (the
// server then reads the connection again to notice a client going away,
// and that read must not fail). A body the handler does not read is still
// read by the server afterwards (up to 256 KiB) under the deadline.
type timedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	// moving: an authorised long upload (allowLongBody) only has to keep
	// moving, each read pushing the deadline timeout further.
	moving, done bool
}

func newTimedBody(w http.ResponseWriter, body io.ReadCloser, timeout time.Duration) io.ReadCloser {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(timeout)) != nil {
		return body // not supported by this connection (never on HTTP/1.1)
	}
	return &timedBody{ReadCloser: body, rc: rc, timeout: timeout}
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case b.done:
	case err == io.EOF:
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	case err != nil:
		// The deadline stays: the server reads what is left of the body
		// (to reuse the connection) under it, or closes the connection.
		b.done = true
	case n > 0 && b.moving:
		b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	return n, err
}

// allowLongBody lets body (a timedBody) take longer than the timeout as
// long as it keeps moving: for a large upload (a snapshot restore) by a
// caller already authorised to make it.
func allowLongBody(body io.Reader) {
	if b, ok := body.(*timedBody); ok && !b.done {
		b.moving = true
		b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
}
