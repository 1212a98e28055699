package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	wire "github.com/regentcloud/regent/pkg/api"
)

// check fails the test with a message when ok is false.
func check(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
}

// TestOpenAPIDocument lints pkg/api/openapi.yaml beyond what kin-openapi
// validates: the conventions every operation must document.
func TestOpenAPIDocument(t *testing.T) {
	spec, err := apitest.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.OpenAPIJSON(); err != nil {
		t.Fatalf("the server cannot load the document: %v", err)
	}
	errSchema := spec.Doc.Components.Schemas["Error"].Value
	melangeErr := spec.Doc.Components.Schemas["MelangeError"].Value
	ids := map[string]string{}
	for _, op := range spec.Operations() {
		name := op.Method + " " + op.Path
		if op.Op.OperationID == "" {
			t.Errorf("%s: no operationId", name)
		} else if prev, dup := ids[op.Op.OperationID]; dup {
			t.Errorf("%s: operationId %s also used by %s", name, op.Op.OperationID, prev)
		}
		ids[op.Op.OperationID] = name
		if op.Op.Responses.Len() == 0 {
			t.Errorf("%s: no responses", name)
		}
		for code, ref := range op.Op.Responses.Map() {
			resp := ref.Value
			if resp.Headers["X-Regent-Index"] == nil {
				t.Errorf("%s %s: no X-Regent-Index header", name, code)
			}
			status, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s: response %q: only explicit status codes, so that undocumented ones fail", name, code)
				continue
			}
			if status < 400 || op.Method == http.MethodHead || op.Path == "/healthz" {
				continue
			}
			want, wantName := errSchema, "Error"
			if strings.HasPrefix(op.Path, "/v0.1/") {
				want, wantName = melangeErr, "MelangeError" // the Melange dialect's own error shape
			}
			mt := resp.Content.Get("application/json")
			if mt == nil || mt.Schema == nil || mt.Schema.Value != want {
				t.Errorf("%s %s: an error response must be application/json #/components/schemas/%s", name, code, wantName)
			}
		}
		public := op.Path == "/healthz" || op.Path == "/metrics" || op.Path == "/openapi.json" || op.Path == "/v1/operator/join"
		switch {
		case public && (op.Op.Security == nil || len(*op.Op.Security) != 0):
			t.Errorf("%s: a public route must say security: []", name)
		case !public && op.Op.Security != nil:
			t.Errorf("%s: an authenticated route uses the document's security", name)
		case !public && op.Op.Responses.Status(http.StatusUnauthorized) == nil:
			t.Errorf("%s: an authenticated route must document 401", name)
		}
	}
	// Objects are closed, so that a field the document does not know fails.
	var walk func(where string, s *openapi3.SchemaRef, seen map[*openapi3.Schema]bool)
	walk = func(where string, ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.Type.Is("object") && len(s.Properties) > 0 && (s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has) {
			t.Errorf("%s: object schema without additionalProperties: false", where)
		}
		for name, p := range s.Properties {
			walk(where+"."+name, p, seen)
		}
		walk(where+"[]", s.Items, seen)
		walk(where+"{}", s.AdditionalProperties.Schema, seen)
		for _, sub := range append(append(s.AllOf, s.OneOf...), s.AnyOf...) {
			walk(where, sub, seen)
		}
	}
	for name, s := range spec.Doc.Components.Schemas {
		walk(name, s, map[*openapi3.Schema]bool{})
	}
	// Every schema is used: one nothing references documents nothing (a
	// stale StateInput stayed after its fields moved into the update
	// inputs).
	for name := range spec.Doc.Components.Schemas {
		ref := "#/components/schemas/" + name
		if !bytes.Contains(wire.OpenAPIYAML, []byte(ref+"'")) && !bytes.Contains(wire.OpenAPIYAML, []byte(ref+"\"")) {
			t.Errorf("schema %s is not referenced anywhere", name)
		}
	}
}

// TestOpenAPISchemasMatchWireTypes compares the document's schemas with the
// json tags of the Go types the server encodes: every field is a property,
// a field without omitempty is required, and there is nothing else.
// TestOpenAPISuffixRoutesMatchTheirBase checks that each Melange route with
// a .json or .xml suffix documents the same methods, parameters and statuses
// as the route without it: they are one handler.
func TestOpenAPISuffixRoutesMatchTheirBase(t *testing.T) {
	spec, err := apitest.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	shape := func(item *openapi3.PathItem) map[string]string {
		out := map[string]string{}
		for method, op := range item.Operations() {
			var params, codes []string
			for _, p := range op.Parameters {
				params = append(params, p.Ref+p.Value.Name)
			}
			for code := range op.Responses.Map() {
				codes = append(codes, code)
			}
			sort.Strings(codes)
			out[method] = fmt.Sprintf("parameters %v, statuses %v", params, codes)
		}
		return out
	}
	checked := 0
	for path, item := range spec.Doc.Paths.Map() {
		base, found := strings.CutSuffix(path, ".json")
		if !found {
			base, found = strings.CutSuffix(path, ".xml")
		}
		if !found || !strings.HasPrefix(path, "/v0.1/") {
			continue
		}
		b := spec.Doc.Paths.Value(base)
		if b == nil {
			t.Errorf("%s: no route %s", path, base)
			continue
		}
		want, got := shape(b), shape(item)
		for method, w := range want {
			if got[method] != w {
				t.Errorf("%s %s: %s; %s has %s", method, path, orNone(got[method]), base, w)
			}
		}
		for method := range got {
			if _, ok := want[method]; !ok {
				t.Errorf("%s %s: not on %s", method, path, base)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no suffix routes found")
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func TestOpenAPISchemasMatchWireTypes(t *testing.T) {
	spec, err := apitest.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	schemas := spec.Doc.Components.Schemas
	content := func(name string) *openapi3.Schema { return schemas[name].Value.Properties["content"].Value }
	cases := []struct {
		schema *openapi3.Schema
		name   string
		typ    reflect.Type
		drop   []string // fields of the type the schema leaves out on purpose
	}{
		{schemas["Member"].Value, "Member", reflect.TypeFor[wire.Member](), nil},
		{schemas["User"].Value, "User", reflect.TypeFor[wire.User](), nil},
		{schemas["Token"].Value, "Token", reflect.TypeFor[wire.Token](), []string{"token"}},
		{schemas["TokenCreated"].Value, "TokenCreated", reflect.TypeFor[wire.Token](), nil},
		{schemas["Region"].Value, "Region", reflect.TypeFor[wire.Region](), nil},
		{schemas["ListMetadata"].Value, "ListMetadata", reflect.TypeFor[wire.ListMetadata](), nil},
		{schemas["ClusterMember"].Value, "ClusterMember", reflect.TypeFor[wire.ClusterMember](), nil},
		{schemas["Leader"].Value, "Leader", reflect.TypeFor[wire.LeaderInfo](), nil},
		{schemas["Health"].Value, "Health", reflect.TypeFor[wire.Health](), nil},
		{schemas["Join"].Value, "Join", reflect.TypeFor[wire.JoinRequest](), []string{"cluster_token"}},
		{content("RestoreItem"), "RestoreItem.content", reflect.TypeFor[wire.SnapshotRestoreResult](), nil},
		{schemas["SingleError"].Value, "SingleError", reflect.TypeFor[wire.FieldError](), nil},
		{schemas["FieldError"].Value, "FieldError", reflect.TypeFor[wire.FieldError](), nil},
	}
	for _, tc := range cases {
		fields := jsonFields(tc.typ)
		for _, d := range tc.drop {
			delete(fields, d)
		}
		for name, omitempty := range fields {
			if tc.schema.Properties[name] == nil {
				t.Errorf("%s: %s.%s is not a property", tc.name, tc.typ.Name(), name)
				continue
			}
			if required := slices.Contains(tc.schema.Required, name); required == omitempty && tc.name != "TokenCreated" {
				t.Errorf("%s.%s: required is %v, but the field is omitempty=%v", tc.name, name, required, omitempty)
			}
		}
		for name := range tc.schema.Properties {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s.%s: no such field in %s", tc.name, name, tc.typ.Name())
			}
		}
	}
	// Request bodies: the same fields, none required by the type.
	for name, typ := range map[string]reflect.Type{"MemberInput": reflect.TypeFor[wire.MemberInput](), "UserInput": reflect.TypeFor[wire.UserInput](),
		"TokenInput": reflect.TypeFor[wire.TokenInput](), "RegionInput": reflect.TypeFor[wire.RegionInput](), "JoinRequest": reflect.TypeFor[wire.JoinRequest]()} {
		s := schemas[name].Value
		fields := jsonFields(typ)
		for f := range fields {
			if s.Properties[f] == nil {
				t.Errorf("%s: field %s is not a property", name, f)
			}
		}
		for f := range s.Properties {
			if _, ok := fields[f]; !ok {
				t.Errorf("%s.%s: no such field in %s", name, f, typ.Name())
			}
		}
	}
}

// TestOpenAPISchemasMatchSDKTypes: the SDK's types of the compute and DNS
// services (pkg/api, what pkg/client's typed services send and decode)
// have the properties of the document's schemas, no more and no fewer. The
// SDK's update bodies lacked the VM's gpu, the virtual router's subnets and
// a snapshot's name. ProjectUpdateInput's state is client.SetProjectState.
// The DNS bodies came with the SDK's Domains, Records and PTRRecords, the
// IPAM types with ASNs, Allocations, Subnets and IPAddresses.
func TestOpenAPISchemasMatchSDKTypes(t *testing.T) {
	spec, err := apitest.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	schemas := spec.Doc.Components.Schemas
	for name, typ := range map[string]reflect.Type{
		"Project": reflect.TypeFor[wire.ProjectView](), "VirtualRouter": reflect.TypeFor[wire.VRView](), "VM": reflect.TypeFor[wire.VMView](),
		"Storage": reflect.TypeFor[wire.Storage](), "StorageType": reflect.TypeFor[wire.StorageType](), "Image": reflect.TypeFor[wire.Image](),
		"RegionImage": reflect.TypeFor[wire.RegionImage](), "Server": reflect.TypeFor[wire.ServerView](), "Interface": reflect.TypeFor[wire.ServerInterface](),
		"Router": reflect.TypeFor[wire.RouterView](), "VPN": reflect.TypeFor[wire.VPN](), "Snapshot": reflect.TypeFor[wire.Snapshot](),
		"Backup": reflect.TypeFor[wire.Backup](), "Cloud": reflect.TypeFor[wire.CloudView](), "CapacityEntry": reflect.TypeFor[wire.CapacityEntry](),
		"Metrics": reflect.TypeFor[wire.Metrics](), "VPNStatus": reflect.TypeFor[wire.VPNStatus](), "Domain": reflect.TypeFor[wire.Domain](),
		"Record": reflect.TypeFor[wire.Record](), "ServerType": reflect.TypeFor[wire.ServerType](), "FirewallRule": reflect.TypeFor[wire.FirewallRule](),
		"SubnetRef": reflect.TypeFor[wire.SubnetRef](), "VMIPAddress": reflect.TypeFor[wire.IPView](), "PublicIPRef": reflect.TypeFor[wire.PubRef](),
		"VMHistory": reflect.TypeFor[wire.VMHistory](), "StateCount": reflect.TypeFor[wire.StateCount](), "ServerUsage": reflect.TypeFor[wire.ServerUsage](),
		// Request bodies.
		"ProjectInput": reflect.TypeFor[wire.ProjectInput](), "VMInput": reflect.TypeFor[wire.VMInput](), "StorageCreateInput": reflect.TypeFor[wire.StorageCreateInput](),
		"ImageInput": reflect.TypeFor[wire.ImageInput](), "RegionImageInput": reflect.TypeFor[wire.RegionImageInput](), "ServerInput": reflect.TypeFor[wire.ServerInput](),
		"InterfaceInput": reflect.TypeFor[wire.InterfaceInput](), "RouterInput": reflect.TypeFor[wire.RouterInput](), "VPNInput": reflect.TypeFor[wire.VPNInput](),
		"VPNRouteInput": reflect.TypeFor[wire.RouteInput](), "SnapshotInput": reflect.TypeFor[wire.SnapshotInput](), "CloudInput": reflect.TypeFor[wire.CloudInput](),
		"StorageTypeInput": reflect.TypeFor[wire.NameInput](), "FirewallRuleInput": reflect.TypeFor[wire.RuleInput](), "StorageInput": reflect.TypeFor[wire.StorageInput](),
		"IPInput": reflect.TypeFor[wire.IPInput](), "SubnetSpecInput": reflect.TypeFor[wire.SubnetSpecInput](),
		// IPAM.
		"ASN": reflect.TypeFor[wire.ASNView](), "ASNInput": reflect.TypeFor[wire.ASNInput](), "Allocation": reflect.TypeFor[wire.AllocationView](),
		"AllocationInput": reflect.TypeFor[wire.AllocationInput](), "Subnet": reflect.TypeFor[wire.SubnetView](), "SubnetInput": reflect.TypeFor[wire.SubnetInput](),
		"IPAddress": reflect.TypeFor[wire.IPAddressView](), "IPAddressInput": reflect.TypeFor[wire.IPAddressInput](),
	} {
		checkProperties(t, schemas, name, typ, nil)
	}
	// The update bodies: one SDK type serves several services, each of
	// which takes some of its fields (the API refuses the others).
	state := []string{"state", "expected_state", "observed_generation", "error_code", "error_detail"}
	checkProperties(t, schemas, "VMUpdateInput", reflect.TypeFor[wire.VMChangeInput](), append(state, "cpu", "ram", "gpu", "name", "dns", "storages"))
	checkProperties(t, schemas, "VirtualRouterUpdateInput", reflect.TypeFor[wire.StateChangeInput](), append(state, "subnets"))
	checkProperties(t, schemas, "SnapshotUpdateInput", reflect.TypeFor[wire.StateChangeInput](), append(state, "remove_subtree", "name"))
	// DNS bodies, but for the alias time_to_live and the ignored georegion.
	checkProperties(t, schemas, "DomainInput", reflect.TypeFor[wire.NameInput](), nil)
	for name, typ := range map[string]reflect.Type{"RecordInput": reflect.TypeFor[wire.RecordInput](), "PTRRecordInput": reflect.TypeFor[wire.PTRRecordInput]()} {
		fields := jsonFields(typ)
		for f := range fields {
			if schemas[name].Value.Properties[f] == nil {
				t.Errorf("%s: %s.%s is not a property", name, typ, f)
			}
		}
		for f := range schemas[name].Value.Properties {
			if _, ok := fields[f]; !ok && f != "time_to_live" && f != "georegion" {
				t.Errorf("%s.%s: no such field in %s", name, f, typ)
			}
		}
	}
}

// checkProperties checks that the schema name and the type typ have the
// same properties, or, with only, that the schema's are only and typ has
// them all.
func checkProperties(t *testing.T, schemas openapi3.Schemas, name string, typ reflect.Type, only []string) {
	t.Helper()
	if schemas[name] == nil {
		t.Errorf("no schema %s", name)
		return
	}
	props := schemas[name].Value.Properties
	fields := jsonFields(typ)
	for f := range props {
		if _, ok := fields[f]; !ok {
			t.Errorf("%s.%s: no such field in %s", name, f, typ)
		}
	}
	if only != nil {
		for _, f := range only {
			if props[f] == nil {
				t.Errorf("%s: no property %s", name, f)
			}
		}
		if len(props) != len(only) {
			t.Errorf("%s has %d properties, want %v", name, len(props), only)
		}
		return
	}
	for f := range fields {
		if props[f] == nil {
			t.Errorf("%s: %s.%s is not a property", name, typ, f)
		}
	}
}

// jsonFields maps the json names of a struct's fields (embedded structs
// flattened) to whether they are omitempty.
func jsonFields(t reflect.Type) map[string]bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = strings.Contains(opts, "omitempty")
	}
	return out
}

func TestBuiltinRoutes(t *testing.T) {
	n := apitest.Start(t, apitest.Options{NodeID: "builtin"})
	c := n.Client(t)

	h := c.Do("GET", "/healthz", nil, "").Expect(200).Map()
	if h["status"] != "ok" || h["is_leader"] != true || h["node_id"] != "builtin" || h["leader"] != "builtin" {
		t.Errorf("/healthz: %v", h)
	}
	// A write and a read, so that the route and command labels appear.
	id := c.CreateMember(n.RootToken, "metrics-member")
	c.Do("GET", apitest.Path("/membership/member/", id), nil, n.RootToken).Expect(200)
	// A blocking query that waits it out is kept apart in the histogram.
	c.Do("GET", "/membership/user/?index=1000000&wait=20ms", nil, n.RootToken).Expect(200)
	metrics := string(c.Do("GET", "/metrics", nil, "").Expect(200).Body)
	for _, want := range []string{"regent_http_request_duration_seconds_bucket{", "regent_raft_leader 1",
		`regent_http_request_duration_seconds_count{blocking="true",code="200",method="GET",route="/membership/user/{$}"} 1`,
		`regent_http_request_duration_seconds_count{blocking="false",code="200",method="GET",route="/membership/member/{id}/{$}"} 1`, "regent_raft_applied_index ", "regent_cluster_dead_servers_removed_total 0",
		// HTTP latency by route pattern (not by path: ids do not make series).
		`route="/membership/member/{id}/{$}"`,
		// FSM apply duration by command type.
		`regent_fsm_apply_duration_seconds_count{type="member_create"}`,
		// The robots' work queue by kind and state (0 when empty).
		`regent_work_queue_objects{kind="vm",state="requested"} 0`,
		`regent_work_queue_objects{kind="backup",state="scrub"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	if strings.Contains(metrics, fmt.Sprintf("/membership/member/%d/", id)) {
		t.Error("/metrics labels a series with a path holding an id")
	}
	var served map[string]any
	c.Do("GET", "/openapi.json", nil, "").Expect(200).JSON(&served)
	spec, _ := apitest.LoadSpec()
	var paths []string
	for p := range served["paths"].(map[string]any) {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if want := spec.Doc.Paths.InMatchingOrder(); len(paths) != len(want) {
		t.Errorf("/openapi.json serves paths %v, openapi.yaml has %d", paths, len(want))
	}
	if served["openapi"] != "3.0.3" {
		t.Errorf("/openapi.json: openapi %v", served["openapi"])
	}

	root := n.RootToken
	members := c.Do("GET", "/v1/operator/members", nil, root).Expect(200).Map()["content"].([]any)
	if len(members) != 1 {
		t.Fatalf("/v1/operator/members: %v", members)
	}
	m := members[0].(map[string]any)
	if m["id"] != "builtin" || m["leader"] != true || m["healthy"] != true || m["suffrage"] != "voter" || m["http_addr"] != n.URL {
		t.Errorf("/v1/operator/members: %v", m)
	}
	l := c.Do("GET", "/v1/operator/leader", nil, root).Expect(200).Content()
	if l["id"] != "builtin" || l["http_addr"] != n.URL || l["raft_addr"] != m["raft_addr"] {
		t.Errorf("/v1/operator/leader: %v", l)
	}
	if code := c.Do("DELETE", "/v1/operator/members/nobody", nil, root).Expect(404).ErrorCode(); code != "regent_operator_delete_001" {
		t.Errorf("remove an unknown node: %s", code)
	}
	// The last voter cannot go, and the refusal changes nothing: the node
	// keeps its address record (it used to be deleted before raft refused,
	// with a retryable 503).
	if code := c.Do("DELETE", "/v1/operator/members/builtin", nil, root).Expect(409).ErrorCode(); code != "regent_operator_delete_102" {
		t.Errorf("remove the last voter: %s", code)
	}
	after := c.Do("GET", "/v1/operator/members", nil, root).Expect(200).Map()["content"].([]any)
	if len(after) != 1 || after[0].(map[string]any)["http_addr"] != n.URL {
		t.Errorf("members after a refused removal: %v", after)
	}

	// Leadership transfer: a single node has nobody to hand over to, a
	// target must be a voter, the body is checked like any other; none of
	// it moves leadership. Naming the leader itself is a no-op.
	const transfer = "/v1/operator/leader/transfer"
	if code := c.Do("POST", transfer, nil, root).Expect(409).ErrorCode(); code != "regent_operator_transfer_101" {
		t.Errorf("transfer on a single node: %s", code)
	}
	if code := c.Do("POST", transfer, map[string]any{"id": "nobody"}, root).Expect(400).FieldCode("id"); code != "regent_operator_transfer_102" {
		t.Errorf("transfer to an unknown node: %s", code)
	}
	if code := c.Do("POST", transfer, map[string]any{"to": "builtin"}, root).Expect(400).FieldCode("to"); code != "regent_request_003" {
		t.Errorf("transfer with an unknown field: %s", code)
	}
	if code := c.Do("POST", transfer, map[string]any{"id": 7}, root).Expect(400).FieldCode("id"); code != "regent_request_004" {
		t.Errorf("transfer with a wrong type: %s", code)
	}
	if code := c.Do("POST", transfer, []byte("{"), root).Expect(400).ErrorCode(); code != "regent_request_002" {
		t.Errorf("transfer with malformed JSON: %s", code)
	}
	if got := c.Do("POST", transfer, map[string]any{"id": "builtin"}, root).Expect(200).Content(); got["id"] != "builtin" || got["http_addr"] != n.URL {
		t.Errorf("transfer to the leader itself: %v", got)
	}
	if l := c.Do("GET", "/v1/operator/leader", nil, root).Expect(200).Content(); l["id"] != "builtin" {
		t.Errorf("leader after refused transfers: %v", l)
	}
}

func TestJoinRequest(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	good := map[string]any{"node_id": "n2", "raft_addr": "127.0.0.1:1", "http_addr": "http://127.0.0.1:1"}
	withToken := func(tok string) http.Header { return http.Header{"X-Regent-Cluster-Token": {tok}} }
	for _, tc := range []struct {
		name   string
		body   any
		header http.Header
		code   string
	}{
		{"no cluster token", good, nil, "regent_operator_join_201"},
		{"wrong header token", good, withToken("wrong"), "regent_operator_join_201"},
		{"wrong body token", map[string]any{"node_id": "n2", "raft_addr": "127.0.0.1:1", "http_addr": "http://127.0.0.1:1", "cluster_token": "wrong"}, nil, "regent_operator_join_201"},
		{"a user token is no cluster token", good, http.Header{"X-Auth-Token": {n.RootToken}}, "regent_operator_join_201"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := c.For(t).DoHeader("POST", "/v1/operator/join", tc.body, tc.header).Expect(403).ErrorCode(); code != tc.code {
				t.Errorf("error_code %s, want %s", code, tc.code)
			}
		})
	}
	t.Run("a node without a cluster token says so", func(t *testing.T) {
		bare := apitest.Start(t, apitest.Options{Configure: func(cfg *server.Config) { cfg.ClusterToken = "" }})
		e := bare.Client(t).DoHeader("POST", "/v1/operator/join", good, withToken("anything")).Expect(403).Err()
		if e.ErrorCode != "regent_operator_join_203" || !strings.Contains(e.Detail, "no cluster token") {
			t.Errorf("join at a node without a cluster token: %+v", e)
		}
	})
	t.Run("validation", func(t *testing.T) {
		bad := map[string]any{"node_id": "", "raft_addr": "0.0.0.0:1", "http_addr": "127.0.0.1:1"}
		e := c.For(t).DoHeader("POST", "/v1/operator/join", bad, withToken(n.ClusterToken)).Expect(400).Err()
		for _, f := range []string{"node_id", "raft_addr", "http_addr"} {
			if e.Errors[f].ErrorCode == "" {
				t.Errorf("no error for %s: %+v", f, e)
			}
		}
	})
	t.Run("a node that does not answer is a 400 on raft_addr", func(t *testing.T) {
		e := c.For(t).DoHeader("POST", "/v1/operator/join", good, withToken(n.ClusterToken)).Expect(400).Err()
		if e.Errors["raft_addr"].ErrorCode != "regent_operator_join_104" {
			t.Errorf("join with an unreachable raft address: %+v", e)
		}
	})
	t.Run("another server's raft address is a 409", func(t *testing.T) {
		self := c.For(t).Do("GET", "/v1/operator/leader", nil, n.RootToken).Expect(200).Content()
		taken := map[string]any{"node_id": "n3", "raft_addr": self["raft_addr"], "http_addr": "http://127.0.0.1:1"}
		if code := c.For(t).DoHeader("POST", "/v1/operator/join", taken, withToken(n.ClusterToken)).Expect(409).ErrorCode(); code != "regent_operator_join_105" {
			t.Errorf("join at the leader's raft address: %s", code)
		}
		members := c.For(t).Do("GET", "/v1/operator/members", nil, n.RootToken).Expect(200).Map()["content"].([]any)
		if len(members) != 1 {
			t.Errorf("a refused join left members %v", members)
		}
	})
	t.Run("refused before the body is looked at", func(t *testing.T) {
		resp := c.For(t).DoHeader("POST", "/v1/operator/join", `{"bogus":`, withToken("wrong"))
		check(t, resp.Status == 403, "a join with a wrong cluster token must be refused before its body is read\n%s", resp)
	})
}

// TestTrailingSlash: the CloudCIX services are documented with their
// trailing slash; items are served without it too.
func TestTrailingSlash(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	for _, svc := range []string{"member", "user", "token", "region"} {
		base := "/membership/" + svc + "/"
		id := "1"
		if svc == "region" {
			id = strconv.FormatUint(c.CreateRegion(root, "slash"), 10)
		}
		with := c.Do("GET", base+id+"/", nil, root).Expect(200)
		without := c.Do("GET", base+id, nil, root).Expect(200)
		if string(with.Body) != string(without.Body) {
			t.Errorf("%s%s/ and %s%s differ", base, id, base, id)
		}
		c.Do("GET", base, nil, root).Expect(200)
		// Collections are served without the slash too, never redirected.
		c.Do("GET", strings.TrimSuffix(base, "/"), nil, root).Expect(200)
	}
	t.Run("nothing below an item", func(t *testing.T) {
		r := c.For(t).Unchecked().Do("GET", "/membership/member/1/anything/else/", nil, root)
		check(t, r.Status == 404, "a path below an item must not be served as the item\n%s", r)
	})
}

func TestUnknownRoutes(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/nope", 404, "regent_request_007"},
		{"GET", "/membership/", 404, "regent_request_007"},
		{"GET", "/v1/operator/members/", 404, "regent_request_007"},
		{"PUT", "/healthz", 405, "regent_request_006"},
		{"POST", "/v1/operator/leader", 405, "regent_request_006"},
		{"PATCH", "/membership/token/1/", 405, "regent_request_006"},
		{"DELETE", "/membership/region/", 405, "regent_request_006"},
	} {
		r := c.Do(tc.method, tc.path, nil, n.RootToken)
		if r.Status != tc.status || r.ErrorCode() != tc.code {
			t.Errorf("%s: want %d %s", r, tc.status, tc.code)
		}
		if tc.status == 405 && r.Header.Get("Allow") == "" {
			t.Errorf("%s: no Allow header", r)
		}
	}
}

func TestTokenSecretShownOnce(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	created := c.Do("POST", "/membership/token/", map[string]any{"name": "once", "expires": "2099-01-02T03:04:05+01:00"}, root).Expect(201).Content()
	secret, _ := created["token"].(string)
	if !strings.HasPrefix(secret, "rgt_") || !strings.HasPrefix(secret, created["prefix"].(string)) {
		t.Fatalf("create: token %q, prefix %v", secret, created["prefix"])
	}
	if created["expires"] != "2099-01-02T02:04:05Z" {
		t.Errorf("expires %v, want it in UTC", created["expires"])
	}
	id := uint64(created["id"].(float64))
	// The schema of read and list has no "token": the harness fails the
	// test if the secret shows up.
	read := c.Do("GET", apitest.Path("/membership/token/", id), nil, root).Expect(200)
	list := c.Do("GET", "/membership/token/?limit=100", nil, root).Expect(200)
	snap := c.Do("GET", "/v1/operator/snapshot", nil, root).Expect(200)
	for _, r := range []*apitest.Response{read, list, snap} {
		if strings.Contains(string(r.Body), secret) {
			t.Errorf("%s %s shows the secret", r.Method, r.Path)
		}
	}
	if got := c.Do("GET", "/membership/member/1/", nil, secret).Expect(200).ID(); got != 1 {
		t.Errorf("the new token reads member %d", got)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	keep := c.CreateMember(root, "Kept")
	snap := c.Do("GET", "/v1/operator/snapshot", nil, root).Expect(200)
	if snap.Header.Get("Content-Type") != "application/octet-stream" || len(snap.Body) == 0 {
		t.Fatalf("snapshot: %s, %d bytes", snap.Header.Get("Content-Type"), len(snap.Body))
	}
	gone := c.CreateMember(root, "Gone")
	before := stateOf(t, c, root)

	octet := http.Header{"X-Auth-Token": {root}, "Content-Type": {"application/octet-stream"}}
	t.Run("garbage is refused and changes nothing", func(t *testing.T) {
		for _, body := range []string{"", "not a snapshot", string(snap.Body[:len(snap.Body)/2])} {
			r := c.For(t).DoHeader("PUT", "/v1/operator/snapshot", body, octet)
			if r.Status != 400 || r.ErrorCode() != "regent_operator_snapshot_101" {
				t.Errorf("%s: want 400 regent_operator_snapshot_101", r)
			}
			if d := r.Err().Detail; strings.Count(d, "invalid snapshot") > 0 || strings.Contains(d, "cluster:") {
				t.Errorf("the refusal repeats its layers: %q", d)
			}
			if after := stateOf(t, c, root); after != before {
				t.Fatalf("a refused snapshot (%d bytes) changed the state", len(body))
			}
		}
	})

	var restored map[string]any
	c.DoHeader("PUT", "/v1/operator/snapshot", snap.Body, octet).Expect(200).JSON(&restored)
	if content, _ := restored["content"].(map[string]any); content["restored"] != true {
		t.Errorf("restore: %v", restored)
	}
	c.Do("GET", apitest.Path("/membership/member/", keep), nil, root).Expect(200)
	c.Do("GET", apitest.Path("/membership/member/", gone), nil, root).Expect(404)
	// The cluster goes on: writes work and ids are not reused in a way that
	// breaks reads.
	id := c.CreateMember(root, "After restore")
	if got := c.Do("GET", apitest.Path("/membership/member/", id), nil, root).Expect(200).Content()["name"]; got != "After restore" {
		t.Errorf("member %d after restore: %v", id, got)
	}
	var h map[string]any
	_ = json.Unmarshal(c.Do("GET", "/healthz", nil, "").Expect(200).Body, &h)
	if h["is_leader"] != true {
		t.Errorf("after restore: %v", h)
	}
}
