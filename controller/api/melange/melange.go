// Package melange serves the OpenStack Melange IPAM dialect under
// /v0.1/ipam (reference/melange-facts.md, melange-api-spec.rst): tenant
// ip_blocks and their subnets, the ip_addresses of a block with soft
// deallocation and restore, and policies with their unusable ip ranges
// and octets, and the provider's mac_address_ranges (global callers
// only, mac_range.go); interfaces with their MACs, networks and their
// ip_allocations, instance interfaces (interface.go); static routes and
// the allocated-address listings (ip_route.go); NAT and allowed IPs
// (nat.go). It reads and writes the one IPAM model of
// package state (docs/ipam-model.md): a Melange block is an IPBlock of the
// melange dialect, a subnet one with a parent.
//
// It reuses the request pipeline of package api (authentication, the
// permission table, replicated commands) but not the CloudCIX envelope:
// bodies are Melange's ({"ip_block": {...}}, {"ip_blocks": [...]}, with
// limit/marker paging and "<collection>_links"), and so are errors:
// {"<Name>": {"code", "message", "detail"}} (wire.MelangeFault).
//
// Tenants are members: {tenant_id} is a member id. A global caller may act
// for any tenant; anyone else only for their own member (another tenant's
// URL is 403), and inside it another tenant's objects are 404. Ids are the
// store's numeric ids, rendered as strings as Melange's uuids were.
//
// JSON is the default; XML is served when the path ends in .xml or, without
// a suffix, when Accept prefers application/xml (melange-facts §14; a .json
// or .xml suffix wins over the header). XML request bodies are read when
// Content-Type says XML (or, without a Content-Type, the path ends in .xml),
// nested objects and lists included (xml.go). /v0.1/extensions lists no
// extensions: Regent implements none.
// Both are done once, here and in xml.go, from the same views as JSON.
//
// Under /v0.1 a path no route serves, or a method a path does not take, is
// answered in Melange's shape too (404 NotFound, 405 MethodNotAllowed with
// Allow; registerFallback), not in Regent's.
package melange

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	wire "github.com/regentcloud/regent/pkg/api"
)

// App is the application name of the routes (error codes, permissions).
const App = "melange"

// Prefix is the path every route of the dialect starts with.
const Prefix = "/v0.1/ipam"

// Permission-table services of the dialect.
const (
	ServiceVersion   = "melange_version"
	ServiceIPBlock   = "melange_ip_block"
	ServiceSubnet    = "melange_subnet"
	ServiceIPAddress = "melange_ip_address"
	ServicePolicy    = "melange_policy"
	ServiceIPRange   = "melange_ip_range"
	ServiceIPOctet   = "melange_ip_octet"
	ServiceExtension = "melange_extension"
)

// DefaultLimit is the page size without ?limit (melange-facts §13).
const DefaultLimit = 200

// Options configure the dialect.
type Options struct {
	// DefaultCIDR, when set, is the CIDR of the private block created for a
	// tenant's unknown network by an interface or ip_allocations request
	// (Melange's default_cidr, melange-facts §4); unset, such a network is
	// 404 Network <id> not found.
	DefaultCIDR string
	// DNS1 and DNS2, when set, are the dns1 and dns2 of a block or subnet
	// created without them (Melange's configured DNS servers,
	// melange-facts §1); unset, such a block has none (null). The handler
	// fills them into the create command on the leader, so every node
	// applies the same block whatever its own configuration says.
	DNS1, DNS2 string
}

// Register adds the Melange routes to a.
func Register(a *api.API, opts Options) {
	routes := http.NewServeMux()
	tablesMu.Lock()
	tables[a] = routes
	tablesMu.Unlock()
	defer func() {
		tablesMu.Lock()
		delete(tables, a)
		tablesMu.Unlock()
	}()
	// The versions document: at / (melange-api-spec "List versions"), at
	// /v0.1, the href of its own self link, and at /v0.1/ipam.
	handleAt(a, "GET", "/", ServiceVersion, auth.Read, version)
	handleAt(a, "GET", "/v0.1", ServiceVersion, auth.Read, version)
	handle(a, "GET", "", ServiceVersion, auth.Read, version)
	handleAt(a, "GET", "/v0.1/extensions", ServiceExtension, auth.List, listExtensions)
	handleAt(a, "GET", "/v0.1/extensions/{alias}", ServiceExtension, auth.Read, readExtension)
	registerIPBlocks(a, opts)
	registerIPAddresses(a)
	registerPolicies(a)
	registerMACRanges(a)
	registerInterfaces(a, opts)
	registerIPRoutes(a)
	registerNAT(a)
	registerFallback(a, routes)
}

// tables holds, while Register runs, the copy of the dialect's patterns
// each API's routes are also entered in (addRoute): the fallback
// (registerFallback) asks it which methods a path has.
var (
	tablesMu sync.Mutex
	tables   = map[*api.API]*http.ServeMux{}
)

// addRoute registers pattern on a (api.API.Handle, which adds P for a
// pattern P/{$} of more than one slash) and the same patterns in the
// dialect's own table.
func addRoute(a *api.API, pattern string, h http.HandlerFunc) {
	a.Handle(pattern, h)
	tablesMu.Lock()
	routes := tables[a]
	tablesMu.Unlock()
	if routes == nil {
		return
	}
	noop := func(http.ResponseWriter, *http.Request) {}
	routes.HandleFunc(pattern, noop)
	if base, ok := strings.CutSuffix(pattern, "/{$}"); ok && strings.Count(base, "/") > 1 {
		routes.HandleFunc(base, noop)
	}
}

// fallbackMethods are the methods the fallback tries on a path to answer
// 405 with Allow (HEAD follows from GET).
var fallbackMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch}

// registerFallback makes everything under /v0.1 that no route serves answer
// in Melange's shape rather than Regent's ({"detail", "error_code"}): a
// path no route has is 404 {"NotFound": {...}}, a path whose routes take
// other methods is 405 {"MethodNotAllowed": {...}} with Allow, in JSON or
// XML as asked (wantXML: a .xml suffix or Accept), before authentication,
// as for every other route of the API. The patterns are method-less, so the
// mux prefers every route of the dialect to them: "/v0.1/" (the subtree),
// "/v0.1" (also keeping the mux from redirecting it to /v0.1/), and
// "/v0.1.json", "/v0.1.xml".
func registerFallback(a *api.API, routes *http.ServeMux) {
	h := func(w http.ResponseWriter, r *http.Request) {
		asXML := wantXML(r)
		var allow []string
		for _, m := range fallbackMethods {
			r2 := r.Clone(r.Context())
			r2.Method = m
			if _, pattern := routes.Handler(r2); strings.HasPrefix(pattern, m+" ") {
				allow = append(allow, m)
				if m == http.MethodGet {
					allow = append(allow, http.MethodHead)
				}
			}
		}
		if len(allow) == 0 {
			writeError(w, asXML, fault(http.StatusNotFound, "No such route."))
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, asXML, fault(http.StatusMethodNotAllowed, "Method %s is not allowed on this route; allowed: %s.", r.Method, strings.Join(allow, ", ")))
	}
	for _, p := range []string{"/v0.1/", "/v0.1", "/v0.1.json", "/v0.1.xml"} {
		a.Handle(p, h)
	}
}

// request is one authenticated Melange request.
type request struct {
	*api.Request
	// tenant is the {tenant_id} of the URL, a member id (0 when the URL
	// has none or it is not a number).
	tenant uint64
	// xml is true when the response is to be XML (wantXML).
	xml bool
}

// scope is the tenant a request is confined to: the URL tenant when the
// caller is that tenant (not a global caller, who may act on any tenant's
// objects), else "" (state.Txn.ensureInterface).
func (q *request) scope() string {
	if q.P.Global() || q.tenant == 0 {
		return ""
	}
	return idString(q.tenant)
}

// forTenant refuses (403) a tenant's own token that names another member
// in a body's tenant_id: what it would make (a subnet, an interface, an
// address leased to that member) would belong to a member that did not ask
// for it, which could neither find it in its networks nor remove it, and
// could not be deleted while it held it. A global caller acts for anyone.
// An id that is not a number is left to the checks that follow (400).
func (q *request) forTenant(tenant, what string) error {
	n, err := strconv.ParseUint(tenant, 10, 64)
	if err != nil || n == q.tenant || q.P.Global() {
		return nil
	}
	return fault(http.StatusForbidden, "User with tenant id %d cannot create %s for tenant %d", q.P.MemberID, what, n)
}

// handle registers method Prefix+path: authenticate, check the permission
// table, then the tenant of the URL (melange-facts §15), then run fn. Any
// error is written in the Melange shape.
//
// Every route also answers with a ".json" and an ".xml" suffix
// (melange-facts §2): a route ending in a literal is registered three
// times, one ending in a wildcard strips the suffix from its value. And
// every route answers with a trailing slash, as the spec writes some of its
// URIs (".../networks/{network_id}/interfaces/", "/ipam/instances/
// {instance_id}/interfaces/"): P/ is P, its format chosen by Accept alone
// (the suffixed forms are P.json and P.xml, never P.json/ or P/.json; a
// wildcard value before the slash is taken as it is). The response format
// is chosen before anything else (wantXML), so that every error is in the
// format asked for.
func handle(a *api.API, method, path, service string, action auth.Action, fn func(*request) error) {
	handleAt(a, method, Prefix+path, service, action, fn)
}

// handleAt is handle for a full path, for the routes of the dialect that
// are not under /ipam: the versions document at / and /v0.1, and the
// extensions.
func handleAt(a *api.API, method, path, service string, action auth.Action, fn func(*request) error) {
	last := ""
	if i := strings.LastIndexByte(path, '/'); i >= 0 && strings.HasPrefix(path[i+1:], "{") {
		last = strings.Trim(path[i+1:], "{}")
	}
	tenantRoute := strings.Contains(path, "/tenants/{tenant_id}/")
	// The string ids of the path (pathIDs), checked by checkID.
	var wildcards []string
	for _, part := range strings.Split(path, "/") {
		if name := strings.Trim(part, "{}"); strings.HasPrefix(part, "{") && pathIDs[name] {
			wildcards = append(wildcards, name)
		}
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		asXML := wantXML(r)
		if last != "" && !strings.HasSuffix(r.URL.Path, "/") {
			r.SetPathValue(last, trimFormat(r.PathValue(last)))
		}
		err := func() error {
			p, err := a.Authenticate(r)
			if err != nil {
				return err
			}
			if err := a.Permissions().Check(p, App, service, action); err != nil {
				if !tenantRoute {
					// Melange's middleware: a URL without /tenants/{id}/
					// is for admins only, and anyone else is told so
					// (melange-facts §15).
					return fault(http.StatusForbidden, "User with tenant id %d cannot access this resource", p.MemberID)
				}
				return err
			}
			for _, name := range wildcards {
				if err := checkID(name, r.PathValue(name)); err != nil {
					return err
				}
				if err := checkLen(name, r.PathValue(name)); err != nil {
					return err
				}
			}
			q := &request{Request: &api.Request{Request: r, W: w, API: a, P: p, Txn: a.Store().Read(),
				App: App, Service: service, Action: action}, xml: asXML}
			if raw := r.PathValue("tenant_id"); raw != "" {
				t, perr := strconv.ParseUint(raw, 10, 64)
				if perr == nil {
					q.tenant = t
				}
				if !p.Global() && (perr != nil || t != p.MemberID) {
					return fault(http.StatusForbidden, "User with tenant id %d cannot access this resource", p.MemberID)
				}
			}
			return fn(q)
		}()
		if err != nil {
			var f *faultError
			if !errors.As(err, &f) {
				a.LogUnexpected(r, err)
			}
			writeError(w, asXML, err)
		}
	}
	if path == "/" {
		// The root: "/{$}" matches / alone ("/" would match every path).
		addRoute(a, method+" /{$}", h)
		addRoute(a, method+" /.json", h)
		addRoute(a, method+" /.xml", h)
		return
	}
	// a.Handle registers a pattern "P/{$}" and, when P holds more than one
	// slash, P itself too (api.API.Handle); P is registered here otherwise.
	addRoute(a, method+" "+path+"/{$}", h)
	if strings.Count(path, "/") <= 1 {
		addRoute(a, method+" "+path, h)
	}
	if last == "" {
		addRoute(a, method+" "+path+".json", h)
		addRoute(a, method+" "+path+".xml", h)
	}
}

// --- errors ---

// faultError is an error already in Melange terms.
type faultError struct {
	status int
	detail string
}

func (e *faultError) Error() string { return fmt.Sprintf("%d %s", e.status, e.detail) }

func fault(status int, format string, args ...any) error {
	return &faultError{status: status, detail: fmt.Sprintf(format, args...)}
}

// invalid is Melange's 400 for a failing model (melange-facts §3).
func invalid(field, msg string) error {
	return fault(http.StatusBadRequest, "The following values are invalid: {'%s': ['%s']}", field, msg)
}

// checkID refuses an id with a control character in it (NUL included:
// go-memdb looks ids up as key prefixes ended by NUL, state.exactly):
// Melange's 400 naming field.
func checkID(field, v string) error {
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return invalid(field, field+" should not contain control characters")
	}
	return nil
}

// maxString is the most characters a string field of a body, or an id
// of a path, may have (400 beyond): Melange kept them in String(255)
// columns. Unbounded, one tenant's ids and names of up to a body's 1 MiB
// would be stored, replicated and sent in every list that shows them.
const maxString = 255

// checkLen refuses a value longer than maxString: Melange's 400 naming
// field.
func checkLen(field, v string) error {
	if utf8.RuneCountInString(v) > maxString {
		return invalid(field, fmt.Sprintf("%s should be at most %d characters", field, maxString))
	}
	return nil
}

// pathIDs are the path wildcards that are string ids (the others are
// numbers or addresses, parsed by their handlers): checkID.
var pathIDs = map[string]bool{"vif": true, "device_id": true, "network_id": true, "tenant_id": true}

// idFields are the body fields holding ids (of interfaces, devices,
// networks, tenants): checkID.
var idFields = map[string]bool{"id": true, "interface_id": true, "virtual_interface_id": true, "device_id": true,
	"used_by_device": true, "network_id": true, "tenant_id": true, "used_by_tenant": true}

// fieldNames maps state's field names to Melange's.
var fieldNames = map[string]string{"member_id": "tenant_id", "block_id": "ip_block_id", "used_by_tenant": "tenant_id"}

// writeError writes err as a Melange error, in XML when asXML. Regent's
// own errors (auth, state, the cluster) keep their status and become the
// detail.
func writeError(w http.ResponseWriter, asXML bool, err error) {
	status, detail := http.StatusInternalServerError, "Internal error."
	var f *faultError
	var e *wire.Error
	switch {
	case errors.As(err, &f):
		status, detail = f.status, f.detail
	case errors.As(err, &e):
		status, detail = e.Status, e.Detail
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
		}
		switch {
		case paramsMissing(e.Errors) != "":
			detail = paramsMissing(e.Errors)
		case len(e.Errors) > 0:
			detail = "The following values are invalid: " + pyDict(e.Errors)
		case status == http.StatusNotFound && strings.HasPrefix(e.ErrorCode, "ipam_block"):
			detail = "IpBlock Not Found"
		case status == http.StatusNotFound && strings.HasPrefix(e.ErrorCode, "ipam_ip_address"):
			detail = "IpAddress Not Found"
		case status == http.StatusNotFound && strings.HasPrefix(e.ErrorCode, "ipam_policy"):
			detail = "Policy Not Found"
		case status == http.StatusNotFound && strings.HasPrefix(e.ErrorCode, "ipam_ip_route"):
			detail = "IpRoute Not Found"
		}
	}
	render(w, asXML, status, wire.NewMelangeError(status, detail))
}

// paramsMissing is the detail of a field error that is Melange's
// ParamsMissing rather than an invalid model (melange-facts §15): its text
// alone ("Required params are missing: mac_address"), as Melange shows it.
// "" when errs holds none.
func paramsMissing(errs map[string]wire.FieldError) string {
	for _, fe := range errs {
		if strings.HasPrefix(fe.Detail, "Required params are missing:") {
			return fe.Detail
		}
	}
	return ""
}

// pyDict renders field errors as Melange's message does (a Python dict).
func pyDict(errs map[string]wire.FieldError) string {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		name := k
		if n, ok := fieldNames[k]; ok {
			name = n
		}
		parts = append(parts, fmt.Sprintf("'%s': ['%s']", name, errs[k].Detail))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// --- bodies ---

// Bounds on the lists of a body. Melange read them without bound; here a
// list longer than its bound is 400 (invalid, naming the field and the
// bound) before anything is applied, so that one request cannot turn into
// a command that allocates or links thousands of objects (issue 3, "Bad
// input": 10,000-element bodies). The bounds are far above what a real
// caller sends.
const (
	// maxAddresses bounds the addresses one request names: the
	// network.addresses of an interface or an allocation, and all of those
	// of an instance PUT together. A network allocation gives one address
	// per family and a caller naming addresses names a handful; 256 is a
	// whole /24 in one request.
	maxAddresses = 256
	// maxInstanceInterfaces bounds instance.interfaces: the NICs of one
	// instance, a few in practice (a QEMU PCI bus has 32 slots; cloud
	// instance types stop at a few dozen interfaces).
	maxInstanceInterfaces = 64
	// maxNATEntries bounds the ip_addresses of a NAT request: the addresses
	// linked to one address at once (floating IPs, a handful).
	maxNATEntries = 256
)

// tooMany is the 400 for a list of field longer than max.
func tooMany(field string, max int) error {
	return invalid(field, fmt.Sprintf("%s should have at most %d entries", field, max))
}

// body is a decoded request body: the object under its key. Melange
// ignores fields it does not know inside it, and so do we.
type body map[string]json.RawMessage

// decode reads {"<key>": {...}}, or <key .../> when the body is XML
// (xmlBody). An empty body, {} or {"<key>": null} is an empty object (every
// field of such a route is optional: POST ip_addresses allocates the next
// free address); other keys beside key are ignored. A body with keys but
// not key (the fields sent without their wrapper: {"address": "10.0.0.9"}),
// or an XML body whose root is not key, is a 400 saying what the body
// should be (wrapped): read as an empty object, it was answered as if the
// fields had not been sent at all (the next free address instead of the
// one asked for; "cidr is invalid" for a block that gave one). Anything
// else that is not a JSON object is a 400.
func decode(q *request, key string) (body, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, q.Body, api.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fault(http.StatusRequestEntityTooLarge, "The request body is larger than %d bytes.", api.MaxBodyBytes)
		}
		return nil, fault(http.StatusBadRequest, "The request body could not be read.")
	}
	if strings.TrimSpace(string(raw)) == "" {
		return body{}, nil
	}
	if xmlBody(q.Request.Request) {
		return decodeXML(raw, key)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(raw, &outer); err != nil {
		return nil, fault(http.StatusBadRequest, "Malformed request body: %v", err)
	}
	inner, ok := outer[key]
	if !ok && len(outer) > 0 {
		return nil, unwrapped(key)
	}
	if !ok || string(inner) == "null" {
		return body{}, nil
	}
	var b body
	if err := json.Unmarshal(inner, &b); err != nil {
		return nil, fault(http.StatusBadRequest, "Malformed request body: %s should be an object", key)
	}
	return b, nil
}

// unwrapped is the 400 for a body that does not hold its fields under key.
func unwrapped(key string) error {
	return fault(http.StatusBadRequest, `The request body should be {"%s": {...}} (in XML <%s .../>): the fields go inside "%s", and a body without it is not read.`, key, key, key)
}

// str returns field as a string: JSON strings as they are, numbers as
// their text. present is false when the field is absent; null is present
// and "".
func (b body) str(field string) (v string, present bool, err error) {
	raw, ok := b[field]
	if !ok {
		return "", false, nil
	}
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return "", true, invalid(field, field+" is invalid")
	}
	switch t := x.(type) {
	case nil:
		return "", true, nil
	case string:
		if err := checkLen(field, t); err != nil {
			return "", true, err
		}
		if idFields[field] {
			if err := checkID(field, t); err != nil {
				return "", true, err
			}
		}
		return strings.TrimSpace(t), true, nil
	case float64:
		// The number's text as sent: 1.000…01 decodes as 1, so its
		// length is checked as a string's.
		v := strings.TrimSpace(string(raw))
		if err := checkLen(field, v); err != nil {
			return "", true, err
		}
		return v, true, nil
	}
	return "", true, invalid(field, field+" is invalid")
}

func idString(id uint64) string { return strconv.FormatUint(id, 10) }

// optional is a nullable string in a view.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optionalID(id uint64) *string {
	if id == 0 {
		return nil
	}
	s := idString(id)
	return &s
}

// --- replies ---

// reply writes v in the format of q (render).
func reply(q *request, status int, index uint64, v any) {
	if index != 0 {
		q.W.Header().Set("X-Regent-Index", strconv.FormatUint(index, 10))
	}
	render(q.W, q.xml, status, v)
}

// empty is Melange's 200 with an empty body (delete, restore).
func empty(w http.ResponseWriter, index uint64) {
	if index != 0 {
		w.Header().Set("X-Regent-Index", strconv.FormatUint(index, 10))
	}
	w.WriteHeader(http.StatusOK)
}

// apply replicates a command built by q.
func apply(q *request, t fsm.MessageType, payload any, expect uint64) (any, uint64, error) {
	cmd, err := q.Command(t, payload)
	if err != nil {
		return nil, 0, err
	}
	cmd.Expect = expect
	return q.API.Apply(q.Request, cmd)
}

// stale reports the compare-and-swap failure of an update.
func stale(err error) bool {
	var e *wire.Error
	return errors.As(err, &e) && e.Status == http.StatusConflict && strings.HasSuffix(e.ErrorCode, "_update_002")
}

// --- paging (melange-facts §13) ---

// page returns the items (sorted by id) after ?marker, at most ?limit of
// them, as {key: [...]} plus key_links with a next link when more remain.
// A query string that cannot be decoded is 400 (api.Request.ParseQuery).
func page[T any](q *request, key string, items []T, id func(T) uint64, view func(T) any) (map[string]any, error) {
	qs, err := q.ParseQuery()
	if err != nil {
		return nil, err
	}
	limit := DefaultLimit
	if raw := qs.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n <= 0 {
			return nil, fault(http.StatusBadRequest, "limit should be a positive integer")
		}
		limit = n
	}
	var marker uint64
	if raw := qs.Get("marker"); raw != "" {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return nil, fault(http.StatusBadRequest, "marker should be the id of an object")
		}
		marker = n
	}
	sort.Slice(items, func(i, j int) bool { return id(items[i]) < id(items[j]) })
	start := sort.Search(len(items), func(i int) bool { return id(items[i]) > marker })
	items = items[start:]
	more := len(items) > limit
	if more {
		items = items[:limit]
	}
	out := make([]any, 0, len(items))
	for _, v := range items {
		out = append(out, view(v))
	}
	res := map[string]any{key: out}
	if more {
		qs.Set("marker", idString(id(items[len(items)-1])))
		res[key+"_links"] = []link{{Rel: "next", Href: requestURL(q.Request.Request, qs)}}
	}
	return res, nil
}

type link struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

// requestURL is the absolute URL of r with query qs.
func requestURL(r *http.Request, qs url.Values) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// RawPath keeps an escaped "/" inside a path value (a network id may
	// be any string) escaped in the link.
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: qs.Encode()}
	return u.String()
}

// --- discovery ---

// version lists the API version (melange-api-spec "List versions"); the
// self link is http://<host>/v0.1 wherever the document is served.
func version(q *request) error {
	r := q.Request.Request
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	self := (&url.URL{Scheme: scheme, Host: r.Host, Path: "/v0.1"}).String()
	reply(q, http.StatusOK, 0, map[string]any{"versions": []map[string]any{{
		"name": "v0.1", "status": "CURRENT", "links": []link{{Rel: "self", Href: self}},
	}}})
	return nil
}

// listExtensions lists the API extensions (melange-api-spec "Extensions"):
// Regent implements none, so the list is empty: {"extensions": []}, or
// <extensions/> in XML.
func listExtensions(q *request) error {
	reply(q, http.StatusOK, 0, map[string]any{"extensions": []any{}})
	return nil
}

// readExtension shows one extension by alias: there are none, so every
// alias is 404 in Melange's error shape.
func readExtension(q *request) error {
	return fault(http.StatusNotFound, "Extension %s not found", q.PathValue("alias"))
}

// deleteObject is Melange's delete of a whole object: look it up (404 if it
// is not there or not the caller's), apply the delete command, answer 200
// with an empty body.
func deleteObject(q *request, t fsm.MessageType, lookup func() (wire.Object, error)) error {
	cur, err := lookup()
	if err != nil {
		return err
	}
	_, index, err := apply(q, t, fsm.IDPayload{ID: cur.GetMeta().ID}, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}
