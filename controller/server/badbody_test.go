package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestBadBodiesOnEveryRoute takes the valid body of every write the auth
// matrix lets through (as the global user, or else the first caller it
// allows) and spoils it one field at a time: each
// field (also inside nested objects and lists) gets a value of every wrong
// JSON type, an absurd number or string, null, or goes missing; and the
// body as a whole is replaced by other JSON values or gets an unknown
// field. Whatever the server makes of each, it must never be a 5xx (the
// client also checks every answer against openapi.yaml), a 4xx must carry
// an error code, and a 4xx must change nothing in the state.
func TestBadBodiesOnEveryRoute(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	w := &stateWatch{n: n}
	sent, refused := 0, 0
	for _, row := range matrix {
		if row.method != http.MethodPost && row.method != http.MethodPut && row.method != http.MethodPatch {
			continue
		}
		// As the first caller the matrix lets through (the global user,
		// or for the agent protocol a robot).
		role := -1
		for i, st := range row.want {
			if st/100 == 2 {
				role = i
				break
			}
		}
		if role < 0 || row.route == "/v1/operator/snapshot" || row.route == "/v1/operator/join" {
			continue
		}
		as := apitest.AllRoles()[role]
		t.Run(row.method+" "+row.route, func(t *testing.T) {
			c := f.c.For(t)
			rq := row.req(f)
			var body any
			raw, err := json.Marshal(rq.body)
			if err != nil || rq.body == nil || json.Unmarshal(raw, &body) != nil {
				return // no JSON body to spoil (a restore)
			}
			// Spoilt bodies the server accepts change objects other rows
			// rely on: each row starts from the state it found.
			defer keepState(c, n)()
			for _, m := range spoil(body) {
				w.mark(t)
				resp := f.do(c, row.method, as, request{path: rq.path, body: m.body, header: rq.header})
				sent++
				if resp.Status >= 500 {
					t.Errorf("%s: %d\n%s", m.what, resp.Status, resp)
					continue
				}
				if resp.Status < 400 {
					continue
				}
				refused++
				if !hasErrorCode(resp.Body) {
					t.Errorf("%s: %d without an error code: %s", m.what, resp.Status, resp.Body)
				}
				if w.refusalChanged(t, func() *apitest.Response {
					return f.do(c, row.method, as, request{path: rq.path, body: m.body, header: rq.header})
				}) {
					t.Errorf("%s: refused with %d, but the state changed", m.what, resp.Status)
				}
			}
		})
	}
	t.Logf("%d spoilt bodies sent, %d refused with a 4xx", sent, refused)
}

type spoilt struct {
	what string
	body any
}

// spoil returns variants of body, each wrong in one way.
func spoil(body any) []spoilt {
	out := []spoilt{
		{"an empty body", ""},
		{"a JSON array", []any{}},
		{"a JSON string", "x"},
		{"a JSON number", 1},
		{"null", nil},
		{"malformed JSON", []byte(`{"a":`)},
	}
	if m, ok := body.(map[string]any); ok {
		withUnknown := clone(m).(map[string]any)
		withUnknown["no_such_field"] = 1
		out = append(out, spoilt{"an unknown field", withUnknown})
	}
	walk(body, "", func(path string, v any, set func(any), drop func()) {
		for _, bad := range wrongValues(v) {
			set(bad)
			out = append(out, spoilt{fmt.Sprintf("%s = %s", path, short(bad)), clone(body)})
		}
		set(v)
		if drop != nil {
			drop()
			out = append(out, spoilt{path + " missing", clone(body)})
			set(v)
		}
	})
	return out
}

// walk calls fn for every field and list element below v (depth first),
// with setters that change it in place.
func walk(v any, path string, fn func(path string, v any, set func(any), drop func())) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := x[k]
			p := strings.TrimPrefix(path+"."+k, ".")
			fn(p, child, func(nv any) { x[k] = nv }, func() { delete(x, k) })
			walk(child, p, fn)
		}
	case []any:
		for i := range x {
			p := fmt.Sprintf("%s[%d]", path, i)
			fn(p, x[i], func(nv any) { x[i] = nv }, nil)
			walk(x[i], p, fn)
		}
	}
}

// wrongValues are values of every other JSON type than v's, and absurd
// values of its own.
func wrongValues(v any) []any {
	long := strings.Repeat("x", 10000)
	switch v.(type) {
	case string:
		return []any{12345, true, []any{"x"}, map[string]any{"x": 1}, nil, "", long, "\x00", "😀"}
	case float64:
		return []any{"12", true, []any{1}, map[string]any{}, nil, -1, 0, 1e300, 3.5, 18446744073709551616.0}
	case bool:
		return []any{"true", 1, []any{}, nil}
	case []any:
		return []any{"x", 1, map[string]any{}, nil, []any{nil}, []any{map[string]any{"x": 1}}}
	case map[string]any:
		return []any{"x", 1, []any{}, nil}
	case nil:
		return []any{"x", 1, true, []any{}, map[string]any{}}
	}
	return nil
}

func clone(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	return out
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 24 {
		return string(b[:24]) + "…"
	}
	return string(b)
}

// hasErrorCode says whether an error body names an error code, in the
// CloudCIX shape ({"error_code"} or {"errors":{field:{"error_code"}}}) or
// Melange's ({"<kind>":{"message","code"}}, or its XML).
func hasErrorCode(body []byte) bool {
	return bytes.Contains(body, []byte(`"error_code"`)) || bytes.Contains(body, []byte(`"code"`)) || bytes.Contains(body, []byte(`code=`))
}

// keepState saves a snapshot of the node's state and returns what restores
// it: the sweeps' accepted requests change objects other rows rely on.
func keepState(c *apitest.Client, n *apitest.Node) (restore func()) {
	snap := c.Do(http.MethodGet, "/v1/operator/snapshot", nil, n.RootToken).Expect(http.StatusOK).Body
	return func() {
		c.DoHeader(http.MethodPut, "/v1/operator/snapshot", snap, http.Header{
			"X-Auth-Token": {n.RootToken}, "Content-Type": {"application/octet-stream"}}).Expect(http.StatusOK)
	}
}

// stateWatch tells whether a refused request changed the node's state. The
// state changes only through raft, and raft counts an entry as applied
// before the FSM applies it, so while the applied index stands still
// nothing changed; when it moved, a hash of the whole state decides. (Hashing
// on every request made these sweeps three times slower under -race.)
type stateWatch struct {
	n      *apitest.Node
	index  uint64
	digest [32]byte
}

// mark records the state before a request.
func (w *stateWatch) mark(t *testing.T) {
	if i := w.n.Server.Cluster().AppliedIndex(); i != w.index || i == 0 {
		w.index, w.digest = i, stateDigest(t, w.n)
	}
}

// refusalChanged reports whether a request that was refused changed the
// state since the last mark. A background duty of the leader may write
// meanwhile, so a change is confirmed by sending the request once more: a
// refusal changes nothing the second time either.
func (w *stateWatch) refusalChanged(t *testing.T, send func() *apitest.Response) bool {
	if !w.changed(t) {
		return false
	}
	w.mark(t)
	again := send()
	return again.Status >= 400 && w.changed(t)
}

// changed reports whether the state differs from the last mark.
func (w *stateWatch) changed(t *testing.T) bool {
	if w.n.Server.Cluster().AppliedIndex() == w.index {
		return false
	}
	return stateDigest(t, w.n) != w.digest
}

// stateDigest is a hash of the node's whole state.
func stateDigest(t *testing.T, n *apitest.Node) [32]byte {
	t.Helper()
	var buf bytes.Buffer
	if err := n.Server.Store().Read().Persist(&buf); err != nil {
		t.Fatalf("persist: %v", err)
	}
	return sha256.Sum256(buf.Bytes())
}

// TestBadPathIDsOnEveryRoute replaces each number in the path of every
// route of the auth matrix with ids that are not ids, or name nothing: the
// answer is a 4xx with an error code, never a 5xx, and changes nothing.
func TestBadPathIDsOnEveryRoute(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	bad := []string{"abc", "-1", "0", "99999999999999999999", "1.5", "1e3", "%20", "0x10", "18446744073709551615"}
	w := &stateWatch{n: n}
	sent := 0
	for _, row := range matrix {
		if !strings.Contains(row.route, "{") {
			continue
		}
		t.Run(row.method+" "+row.route, func(t *testing.T) {
			c := f.c.For(t)
			rq := row.req(f)
			segs := strings.Split(rq.path, "/")
			for i, seg := range segs {
				if seg == "" || strings.Trim(seg, "0123456789") != "" {
					continue
				}
				for _, b := range bad {
					spoilt := append([]string(nil), segs...)
					spoilt[i] = b
					path := strings.Join(spoilt, "/")
					w.mark(t)
					send := func() *apitest.Response {
						return f.do(c, row.method, apitest.Global, request{path: path, body: rq.body, header: rq.header})
					}
					resp := send()
					sent++
					switch {
					case resp.Status >= 500:
						t.Errorf("%s %s: %d\n%s", row.method, path, resp.Status, resp)
					case resp.Status < 400 && opaqueTenant(segs, i, row.method):
					case resp.Status < 400:
						t.Errorf("%s %s: %d, want a 4xx", row.method, path, resp.Status)
					case row.method != http.MethodHead && !hasErrorCode(resp.Body):
						t.Errorf("%s %s: %d without an error code: %s", row.method, path, resp.Status, resp.Body)
					case w.refusalChanged(t, send):
						t.Errorf("%s %s: refused with %d, but the state changed", row.method, path, resp.Status)
					}
				}
			}
		})
	}
	t.Logf("%d requests with bad ids in the path", sent)
}

// opaqueTenant says whether segs[i] is the tenant of a Melange read: as in
// Melange, a tenant is a name, and one that owns nothing has empty lists.
func opaqueTenant(segs []string, i int, method string) bool {
	return i > 0 && segs[i-1] == "tenants" && (method == http.MethodGet || method == http.MethodHead)
}

// TestBadQueriesOnEveryRoute sends every GET route of the auth matrix with
// query parameters that are wrong: never a 5xx, and a 4xx has an error code.
func TestBadQueriesOnEveryRoute(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	queries := []string{
		"limit=-1", "limit=abc", "limit=100000", "page=-1", "page=abc", "page=99999999999999999999",
		"page=9223372036854775807", "page=4611686018427387904", "page=184467440737095517&limit=100", // in range, overflowing page*limit
		"order=nope", "order=-", "order=", "marker=abc", "marker=-1",
		"search[nope]=1", "search[id__nope]=1", "search[id]=abc", "search[id__in]=a,b", "search[id__range]=1",
		"search[created__gt]=yesterday", "search[name__regex]=(", "exclude[id]=x", "search%5Bid=1",
		"index=abc", "index=1&wait=forever", "index=1&wait=-1s", "stale=maybe", "consistent=maybe",
		"used_by_device=%00", "type=nope", "force=maybe", "region_id=abc",
	}
	sent := 0
	for _, row := range matrix {
		if row.method != http.MethodGet || row.want[0] != http.StatusOK {
			continue
		}
		t.Run(row.route, func(t *testing.T) {
			c := f.c.For(t)
			rq := row.req(f)
			for _, q := range queries {
				sep := "?"
				if strings.Contains(rq.path, "?") {
					sep = "&"
				}
				path := rq.path + sep + q
				resp := f.do(c, row.method, apitest.Global, request{path: path, header: rq.header})
				sent++
				switch {
				case resp.Status >= 500:
					t.Errorf("GET %s: %d\n%s", path, resp.Status, resp)
				case resp.Status >= 400 && !hasErrorCode(resp.Body):
					t.Errorf("GET %s: %d without an error code: %s", path, resp.Status, resp.Body)
				}
			}
		})
	}
	t.Logf("%d requests with bad queries", sent)
}

// TestBadHeadersOnEveryRoute sends every route of the auth matrix with
// headers that are wrong: If-Match values that are not a modified_index,
// tokens that are not tokens, odd Accept and Content-Type. Never a 5xx, a
// 4xx has an error code and changes nothing.
func TestBadHeadersOnEveryRoute(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	type headers struct {
		what string
		h    http.Header
	}
	variants := []headers{
		{"If-Match abc", http.Header{"If-Match": {"abc"}}},
		{"If-Match -1", http.Header{"If-Match": {"-1"}}},
		{"If-Match 2^64", http.Header{"If-Match": {"18446744073709551616"}}},
		{"If-Match quoted", http.Header{"If-Match": {`"1"`}}},
		{"If-Match weak", http.Header{"If-Match": {`W/"1"`}}},
		{"If-Match *", http.Header{"If-Match": {"*"}}},
		{"If-Match 0", http.Header{"If-Match": {"0"}}},
		{"If-Match 1", http.Header{"If-Match": {"1"}}},
		{"Accept image/png", http.Header{"Accept": {"image/png"}}},
		{"Content-Type text/xml", http.Header{"Content-Type": {"text/xml"}}},
		{"Content-Type garbage", http.Header{"Content-Type": {";;;"}}},
	}
	tokens := []headers{
		{"a token that is not one", http.Header{"X-Auth-Token": {"rgt_nope"}}},
		{"an empty Bearer", http.Header{"Authorization": {"Bearer "}}},
		{"Basic auth", http.Header{"Authorization": {"Basic cm9vdDpyb290"}}},
		{"a 100 KiB token", http.Header{"X-Auth-Token": {strings.Repeat("a", 100<<10)}}},
		{"a token that is not UTF-8", http.Header{"X-Auth-Token": {"rgt_\xff\xfe"}}},
	}
	w := &stateWatch{n: n}
	sent := 0
	for _, row := range matrix {
		if row.route == "/v1/operator/join" || row.route == "/v1/operator/snapshot" || row.route == "/v1/operator/leader/transfer" {
			continue // their own tests; a transfer would move leadership
		}
		t.Run(row.method+" "+row.route, func(t *testing.T) {
			c := f.c.For(t)
			check := func(what string, rq request, send func() *apitest.Response) {
				resp := send()
				sent++
				switch {
				case resp.Status >= 500:
					t.Errorf("%s %s with %s: %d\n%s", row.method, rq.path, what, resp.Status, resp)
				case resp.Status >= 400 && row.method != http.MethodHead && !hasErrorCode(resp.Body):
					t.Errorf("%s %s with %s: %d without an error code: %s", row.method, rq.path, what, resp.Status, resp.Body)
				case resp.Status >= 400 && w.refusalChanged(t, send):
					t.Errorf("%s %s with %s: refused with %d, but the state changed", row.method, rq.path, what, resp.Status)
				}
			}
			if row.want[0]/100 == 2 && row.method != http.MethodDelete {
				// The fixture makes its objects on first use: before the
				// snapshot, so that the restore keeps them.
				row.req(f)
				defer keepState(c, n)()
				for _, v := range variants {
					rq := row.req(f)
					h := http.Header{}
					for k, vs := range rq.header {
						h[k] = vs
					}
					for k, vs := range v.h {
						h[k] = vs
					}
					rq.header = h
					w.mark(t)
					check(v.what, rq, func() *apitest.Response { return f.do(c, row.method, apitest.Global, rq) })
				}
			}
			for _, tok := range tokens {
				rq := row.req(f)
				w.mark(t)
				var status int
				check(tok.what, rq, func() *apitest.Response {
					resp := c.Unchecked().DoHeader(row.method, rq.path, rq.body, tok.h)
					status = resp.Status
					return resp
				})
				if row.want[6] == http.StatusUnauthorized && status != http.StatusUnauthorized {
					t.Errorf("%s %s with %s: %d, want 401", row.method, rq.path, tok.what, status)
				}
			}
		})
	}
	t.Logf("%d requests with bad headers", sent)
}
