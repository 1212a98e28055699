package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	wire "github.com/regentcloud/regent/pkg/api"
)

// Client makes requests to a Node and checks every response against the
// OpenAPI document; a mismatch, or a 500, fails the test (t.Errorf: the test
// goes on). Transport errors end the test (t.Fatalf), so use a Client from
// the test's own goroutine.
type Client struct {
	t         testing.TB
	n         *Node
	unchecked bool
}

// For returns a client reporting on another t (a subtest).
func (c *Client) For(t testing.TB) *Client { return &Client{t: t, n: c.n, unchecked: c.unchecked} }

// Unchecked returns a client that does not check responses against the
// document, to probe behaviour known to be wrong without failing on it.
func (c *Client) Unchecked() *Client { return &Client{t: c.t, n: c.n, unchecked: true} }

// Node returns the node the client talks to.
func (c *Client) Node() *Node { return c.n }

// Response is a complete response.
type Response struct {
	t      testing.TB
	Method string
	Path   string
	Status int
	Header http.Header
	Body   []byte
}

// Do sends a request. body is nil (no body), []byte or string (sent as is),
// an io.Reader (streamed) or anything else (sent as JSON). token, if not
// empty, goes in X-Auth-Token.
func (c *Client) Do(method, path string, body any, token string) *Response {
	c.t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("X-Auth-Token", token)
	}
	return c.DoHeader(method, path, body, h)
}

// DoHeader is Do with arbitrary request headers.
func (c *Client) DoHeader(method, path string, body any, h http.Header) *Response {
	c.t.Helper()
	var rd io.Reader
	isJSON := false
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatalf("apitest: encode body: %v", err)
		}
		rd, isJSON = bytes.NewReader(data), true
	}
	req, err := http.NewRequest(method, c.n.URL+path, rd)
	if err != nil {
		c.t.Fatalf("apitest: %s %s: %v", method, path, err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if isJSON && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.n.hc.Do(req)
	if err != nil {
		c.t.Fatalf("apitest: %s %s: %v", method, path, err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("apitest: %s %s: read body: %v", method, path, err)
	}
	r := &Response{t: c.t, Method: method, Path: path, Status: resp.StatusCode, Header: resp.Header, Body: data}
	if c.unchecked {
		return r
	}
	spec, err := LoadSpec()
	if err != nil {
		c.t.Fatalf("apitest: %v", err)
	}
	if err := spec.CheckResponse(req, resp.StatusCode, resp.Header, data); err != nil {
		c.t.Errorf("apitest: %s %s -> %d does not match openapi.yaml: %v\nbody: %s", method, path, resp.StatusCode, err, clip(data))
	}
	if resp.StatusCode == http.StatusInternalServerError {
		c.t.Errorf("apitest: %s %s -> 500: %s", method, path, clip(data))
	}
	return r
}

func clip(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

func (r *Response) String() string {
	return fmt.Sprintf("%s %s -> %d %s", r.Method, r.Path, r.Status, clip(r.Body))
}

// Expect fails the test now unless the status is one of want.
func (r *Response) Expect(want ...int) *Response {
	r.t.Helper()
	for _, w := range want {
		if r.Status == w {
			return r
		}
	}
	r.t.Fatalf("%s: want status %v", r, want)
	return r
}

// Check reports (t.Errorf) unless the status is want, and says whether it was.
func (r *Response) Check(want int) bool {
	r.t.Helper()
	if r.Status != want {
		r.t.Errorf("%s: want status %d", r, want)
		return false
	}
	return true
}

// JSON decodes the body into v, failing the test if it cannot.
func (r *Response) JSON(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		r.t.Fatalf("%s: decode: %v", r, err)
	}
}

// Map is the body as a JSON object.
func (r *Response) Map() map[string]any {
	r.t.Helper()
	var m map[string]any
	r.JSON(&m)
	return m
}

// Content is the "content" of an item response.
func (r *Response) Content() map[string]any {
	r.t.Helper()
	var env struct {
		Content map[string]any `json:"content"`
	}
	r.JSON(&env)
	return env.Content
}

// ID is content.id of an item response.
func (r *Response) ID() uint64 {
	r.t.Helper()
	var env struct {
		Content struct {
			ID uint64 `json:"id"`
		} `json:"content"`
	}
	r.JSON(&env)
	return env.Content.ID
}

// List is a decoded list response.
type List struct {
	Content  []map[string]any  `json:"content"`
	Metadata wire.ListMetadata `json:"_metadata"`
}

// IDs are the ids of the content, in order.
func (l List) IDs() []uint64 {
	out := make([]uint64, len(l.Content))
	for i, m := range l.Content {
		f, _ := m["id"].(float64)
		out[i] = uint64(f)
	}
	return out
}

// Strings is one string field of every item, in order.
func (l List) Strings(field string) []string {
	out := make([]string, len(l.Content))
	for i, m := range l.Content {
		out[i], _ = m[field].(string)
	}
	return out
}

// List decodes a list response.
func (r *Response) List() List {
	r.t.Helper()
	var l List
	r.JSON(&l)
	return l
}

// Err decodes an error response. The errors of array items, which the
// server nests ("vms": [null, {"name": {...}}]), are flattened back into
// path keys ("vms[1].name"): see wire.FlattenFieldErrors.
func (r *Response) Err() *wire.Error {
	r.t.Helper()
	e := &wire.Error{Status: r.Status}
	r.JSON(e)
	return e
}

// ErrorCode is the top-level error_code of an error response.
func (r *Response) ErrorCode() string {
	r.t.Helper()
	return r.Err().ErrorCode
}

// FieldCode is the error_code of the validation error of field, "" if the
// field has no error. field is a path: "name", "vms[0].id" (errors.vms[0].id
// in the body), "routes[1]" (errors.routes[1], the item as a whole).
func (r *Response) FieldCode(field string) string {
	r.t.Helper()
	return r.Err().Errors[field].ErrorCode
}

// FieldErrors is the raw "errors" member of a validation error, decoded
// into any: nested lists stay lists.
func (r *Response) FieldErrors() map[string]any {
	r.t.Helper()
	var body struct {
		Errors map[string]any `json:"errors"`
	}
	r.JSON(&body)
	return body.Errors
}
