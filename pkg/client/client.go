package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/regentcloud/regent/pkg/api"
)

// Environment variables and defaults the command-line tools share.
const (
	// EnvAddr names the environment variable holding the API base URL.
	EnvAddr = "REGENT_ADDR"
	// EnvToken names the environment variable holding the API token.
	EnvToken = "REGENT_TOKEN"
	// EnvCACert names the environment variable holding a PEM CA file that
	// verifies the API's certificate.
	EnvCACert = "REGENT_CACERT"
	// DefaultAddr is the API base URL when none is given.
	DefaultAddr = "http://127.0.0.1:8080"
)

// Response headers of the Regent API.
const (
	HeaderIndex        = "X-Regent-Index"
	HeaderContentHash  = "X-Regent-Content-Hash"
	HeaderLastContact  = "X-Regent-Last-Contact"
	HeaderKnownLeader  = "X-Regent-Known-Leader"
	HeaderForwardedTo  = "X-Regent-Forwarded-To"
	HeaderAuthToken    = "X-Auth-Token"
	HeaderClusterToken = "X-Regent-Cluster-Token"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 1 << 20

// Client talks to one Regent controller (any node: followers forward to the
// leader). It is safe for concurrent use.
type Client struct {
	base   string
	token  string
	hc     *http.Client
	ua     string
	header http.Header // sent with every request (WithHeader)
	retry  int         // WithRetry
}

// Option configures a Client.
type Option func(*options)

type options struct {
	hc     *http.Client
	tls    *tls.Config
	ua     string
	header http.Header
	retry  int
}

// WithHTTPClient makes the Client send its requests with hc. The default is
// a client with no overall timeout (blocking queries may legitimately wait
// minutes; bound calls with their context) over a copy of
// http.DefaultTransport.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithTLSConfig sets the TLS configuration used for https:// base URLs. It
// applies to a copy of the HTTP client's *http.Transport (a new one if it has
// none); a custom RoundTripper of another type is left alone.
func WithTLSConfig(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option { return func(o *options) { o.ua = ua } }

// WithRetry makes the Client send a request again, up to n more times, when
// the API answers that it did nothing and asks to be asked again: 503
// regent_cluster_001 (no leader yet, or the write was not submitted) and
// 429. Each retry waits the answer's Retry-After (1 s when it has none), or
// less if ctx ends first, in which case the last answer's error is
// returned. An answer asking for a wait longer than MaxRetryWait (a
// proxy's rate limit) is returned at once, its RetryAfter set. Other errors, 503 regent_cluster_002 (the outcome of a write
// is unknown: read before retrying) among them, are returned at once. A
// request with a streamed body (SnapshotRestore) is not retried. The
// default is 0: every answer is returned as it came.
func WithRetry(n int) Option { return func(o *options) { o.retry = max(n, 0) } }

// WithHeader adds a header sent with every request (for an agent,
// api.HeaderAgentID with its instance id). A later WithHeader of the same
// key replaces the earlier; an empty value sends none. The client's own
// headers (authentication, content type, user agent) are not overridden.
func WithHeader(key, value string) Option {
	return func(o *options) {
		if o.header == nil {
			o.header = http.Header{}
		}
		if value == "" {
			o.header.Del(key)
			return
		}
		o.header.Set(key, value)
	}
}

// New returns a client of the API at baseURL (for example
// "http://127.0.0.1:8080"; a bare host:port means http) that authenticates
// with token, sent as X-Auth-Token. An empty token sends none.
func New(baseURL, token string, opts ...Option) *Client {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	hc := o.hc
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if o.tls != nil {
		var tr *http.Transport
		switch t := hc.Transport.(type) {
		case nil:
			tr = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			tr = t.Clone()
		}
		if tr != nil {
			tr.TLSClientConfig = o.tls.Clone()
			c := *hc
			c.Transport = tr
			hc = &c
		}
	}
	if o.ua == "" {
		o.ua = "regent-go-client"
	}
	base := strings.TrimSpace(baseURL)
	if base == "" {
		base = DefaultAddr
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, hc: hc, ua: o.ua, header: o.header.Clone(), retry: o.retry}
}

// BaseURL returns the API base URL the client sends requests to.
func (c *Client) BaseURL() string { return c.base }

// Meta describes the response to a request. Calls return a non-nil *Meta
// whenever a response arrived, error responses included; it is nil only when
// the request failed before an answer (transport errors).
type Meta struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// LastIndex is X-Regent-Index: for a list the highest raft index of the
	// tables it reads, for a single object its modified_index, for a write
	// the raft index of the command. Pass it as Index of the next call to
	// make a blocking query.
	LastIndex uint64
	// ContentHash is X-Regent-Content-Hash, where an answer has one (the
	// agent work): pass it back to block until the content itself changes.
	ContentHash string
	// LastContact and KnownLeader are set on stale reads: how long ago the
	// serving node last heard from the leader, and whether it knows one.
	LastContact time.Duration
	KnownLeader bool
	// ForwardedTo is the leader's base URL when the node forwarded the request.
	ForwardedTo string
	// RequestTime is how long the request took, body included.
	RequestTime time.Duration
	// ListMetadata is the _metadata of a list answer (List; for ListAll the
	// first page's): its order, total and the warnings of filters the
	// server ignored. Nil for other answers.
	ListMetadata *api.ListMetadata
}

func parseMeta(resp *http.Response, start time.Time) *Meta {
	h := resp.Header
	m := &Meta{StatusCode: resp.StatusCode, ForwardedTo: h.Get(HeaderForwardedTo), ContentHash: h.Get(HeaderContentHash), RequestTime: time.Since(start)}
	m.LastIndex, _ = strconv.ParseUint(h.Get(HeaderIndex), 10, 64)
	if ms, err := strconv.ParseInt(h.Get(HeaderLastContact), 10, 64); err == nil {
		m.LastContact = time.Duration(ms) * time.Millisecond
	}
	m.KnownLeader, _ = strconv.ParseBool(h.Get(HeaderKnownLeader))
	return m
}

// request is one API call.
type request struct {
	method string
	path   string // absolute path, e.g. /membership/member/
	query  url.Values
	header http.Header
	body   any       // JSON-encoded when not nil
	raw    io.Reader // sent as is (snapshot upload)
	noAuth bool
	// anyStatus returns the response whatever its status.
	anyStatus bool
}

// send performs r and returns the response of a 2xx status; any other
// status is decoded into an *api.Error and the body is closed. The meta is
// returned whenever a response arrived. Answers that ask to be asked again
// are retried as WithRetry says.
func (c *Client) send(ctx context.Context, r *request) (*http.Response, *Meta, error) {
	var encoded []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, nil, fmt.Errorf("regent: encode %s %s: %w", r.method, r.path, err)
		}
		encoded = b
	}
	for attempt := 0; ; attempt++ {
		resp, meta, err := c.sendOnce(ctx, r, encoded)
		var e *api.Error
		if attempt >= c.retry || r.raw != nil || !errors.As(err, &e) || !retryable(e) {
			return resp, meta, err
		}
		wait := time.Second
		if e.RetryAfter > 0 {
			wait = time.Duration(e.RetryAfter) * time.Second
		}
		if wait > MaxRetryWait {
			return resp, meta, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, meta, err
		case <-t.C:
		}
	}
}

// MaxRetryWait is the longest Retry-After WithRetry waits out. The API
// asks for 1 s or 5 s; an answer asking for more (a proxy's 429 may say an
// hour) is the caller's to decide on, not a pause to sit through silently.
const MaxRetryWait = 30 * time.Second

// retryable reports whether the API answered e having done nothing, and
// asks to be asked again.
func retryable(e *api.Error) bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable && e.ErrorCode == api.CodeNoLeader
}

// sendOnce is one attempt of send; encoded is r.body as JSON.
func (c *Client) sendOnce(ctx context.Context, r *request, encoded []byte) (*http.Response, *Meta, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	body := r.raw
	if encoded != nil {
		body = bytes.NewReader(encoded)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, nil, fmt.Errorf("regent: %s %s: %w", r.method, r.path, err)
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	} else if r.raw != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" && !r.noAuth {
		req.Header.Set(HeaderAuthToken, c.token)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("regent: %w", err) // a *url.Error: names the method and URL
	}
	meta := parseMeta(resp, start)
	if !r.anyStatus && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		defer resp.Body.Close()
		return nil, meta, decodeError(resp)
	}
	return resp, meta, nil
}

// do performs r and decodes a JSON response body into out (unless out is
// nil, when the body is discarded).
func (c *Client) do(ctx context.Context, r *request, out any) (*Meta, error) {
	start := time.Now()
	resp, meta, err := c.send(ctx, r)
	if err != nil {
		return meta, err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, err = io.Copy(io.Discard, resp.Body)
	} else if err = json.NewDecoder(resp.Body).Decode(out); err == io.EOF {
		err = nil // an empty body (a run_robot acknowledgement): no content
	}
	meta.RequestTime = time.Since(start)
	if err != nil {
		return meta, fmt.Errorf("regent: %s %s: reading the response: %w", r.method, r.path, err)
	}
	return meta, nil
}

// decodeError turns a non-2xx response into an *api.Error with Status set.
// A body that is not the API's JSON error shape becomes the Detail.
func decodeError(resp *http.Response) *api.Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &api.Error{}
	if err := json.Unmarshal(body, e); err != nil || (e.Detail == "" && e.ErrorCode == "" && len(e.Errors) == 0) {
		e = &api.Error{Detail: foreignDetail(resp, body)}
	}
	e.Status = resp.StatusCode
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = s
	}
	return e
}

// maxForeignDetail bounds the detail kept of an error body that is not the
// API's (a proxy's or another server's text).
const maxForeignDetail = 200

// foreignDetail is the detail of an error answer that is not the API's JSON:
// a short text as it is (one line), an HTML page (another web server or a
// proxy's error page at the address) named by its title rather than dumped.
func foreignDetail(resp *http.Response, body []byte) string {
	text := strings.TrimSpace(string(body))
	status := http.StatusText(resp.StatusCode)
	if status == "" {
		status = "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	if text == "" {
		return status
	}
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	if strings.HasPrefix(ct, "text/html") || strings.HasPrefix(text, "<") {
		title := ""
		lower := strings.ToLower(text)
		if i := strings.Index(lower, "<title>"); i >= 0 {
			if j := strings.Index(lower[i:], "</title>"); j >= 0 {
				title = strings.Join(strings.Fields(text[i+len("<title>"):i+j]), " ")
			}
		}
		if title != "" && len(title) <= maxForeignDetail {
			return fmt.Sprintf("%s (an HTML page titled %q)", status, title)
		}
		return status + " (an HTML page)"
	}
	text = strings.Join(strings.Fields(text), " ")
	if len(text) > maxForeignDetail {
		cut := maxForeignDetail
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = strings.TrimSpace(text[:cut]) + " …"
	}
	return text
}

// StatusCode returns the HTTP status of an error returned by the API, or 0
// when err is not an *api.Error (a transport error, for example).
func StatusCode(err error) int {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is the API's 404: the object does not
// exist or the caller may not see it.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409, such as a failed compare-and-swap
// (If-Match) update.
func IsConflict(err error) bool { return StatusCode(err) == http.StatusConflict }
