package apitest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCheckResponse makes sure the checker catches the drift it is for.
func TestCheckResponse(t *testing.T) {
	spec, err := LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	const member = `{"id":2,"created":"2026-01-02T03:04:05.123Z","updated":"2026-01-02T03:04:05Z","created_index":6,"modified_index":6,"name":"a","self_managed":false}`
	const token = `{"id":2,"created":"2026-01-02T03:04:05Z","updated":"2026-01-02T03:04:05Z","created_index":6,"modified_index":6,"user_id":1,"member_id":1,"name":"","kind":"user","prefix":"rgt_abcd"`
	const meta = `"_metadata":{"page":0,"limit":50,"order":"id","total_records":1,"warnings":[]}`
	json := http.Header{"Content-Type": {"application/json"}, "X-Regent-Index": {"6"}}
	xml := http.Header{"Content-Type": {"application/xml"}, "X-Regent-Index": {"6"}}
	item := http.Header{"Content-Type": {"application/json"}, "X-Regent-Index": {"6"}, "Etag": {`"6"`}}
	cases := []struct {
		name         string
		method, path string
		status       int
		header       http.Header
		body         string
		ok           bool
	}{
		{"item", "GET", "/membership/member/2/", 200, item, `{"content":` + member + `}`, true},
		{"item without slash", "GET", "/membership/member/2", 200, item, `{"content":` + member + `}`, true},
		{"item without ETag", "GET", "/membership/member/2/", 200, json, `{"content":` + member + `}`, false},
		{"list", "GET", "/membership/member/?search[name]=a&limit=3", 200, json, `{"content":[` + member + `],` + meta + `}`, true},
		{"list without slash", "GET", "/membership/member", 200, json, `{"content":[` + member + `],` + meta + `}`, true},
		{"extra field", "GET", "/membership/member/2/", 200, item, `{"content":` + strings.Replace(member, `"name"`, `"x":1,"name"`, 1) + `}`, false},
		{"missing field", "GET", "/membership/member/2/", 200, item, `{"content":` + strings.Replace(member, `"self_managed":false`, `"id2":1`, 1) + `}`, false},
		{"wrong type", "GET", "/membership/member/2/", 200, item, `{"content":` + strings.Replace(member, `"id":2`, `"id":"2"`, 1) + `}`, false},
		{"bad time", "GET", "/membership/member/2/", 200, item, `{"content":` + strings.Replace(member, `2026-01-02T03:04:05Z`, `yesterday`, 1) + `}`, false},
		{"no index header", "GET", "/membership/member/2/", 200, http.Header{"Content-Type": {"application/json"}, "Etag": {`"6"`}}, `{"content":` + member + `}`, false},
		{"undocumented status", "GET", "/membership/member/2/", 201, item, `{"content":` + member + `}`, false},
		{"token read", "GET", "/membership/token/2/", 200, item, `{"content":` + token + `}}`, true},
		{"token read leaks secret", "GET", "/membership/token/2/", 200, item, `{"content":` + token + `,"token":"rgt_abcdefgh"}}`, false},
		{"token create", "POST", "/membership/token/", 201, json, `{"content":` + token + `,"token":"rgt_abcdefgh"}}`, true},
		{"token create without secret", "POST", "/membership/token/", 201, json, `{"content":` + token + `}}`, false},
		{"single error", "GET", "/membership/member/9/", 404, json, `{"detail":"gone","error_code":"membership_member_read_001"}`, true},
		{"field errors", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","errors":{"name":{"detail":"x","error_code":"regent_request_004"}}}`, true},
		{"nested field errors", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","errors":{"vms":[null,{"name":{"detail":"x","error_code":"iaas_vm_create_128"},"storages":[null,{"detail":"x","error_code":"iaas_vm_create_113"}]}],"routes":[{"detail":"x","error_code":"iaas_vpn_create_124"}],"storages":{"detail":"x","error_code":"iaas_vm_create_112"}}}`, true},
		{"nested field errors, bad item", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","errors":{"vms":[null,{"detail":"x"}]}}`, false},
		{"nested field errors, string item", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","errors":{"vms":["x"]}}`, false},
		{"nested field errors, empty list", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","errors":{"vms":[]}}`, false},
		{"nested field errors, empty field map", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","errors":{"vms":[{}]}}`, false},
		{"nested field errors, list of lists", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","errors":{"vms":[[{"detail":"x","error_code":"iaas_vm_create_128"}]]}}`, false},
		{"nested field errors, deep bad code", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","errors":{"vms":[{"storages":[{"detail":"x","error_code":"nope"}]}]}}`, false},
		{"field error with null", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","errors":{"name":null}}`, false},
		{"error with both shapes", "POST", "/membership/member/", 400, json, `{"detail":"Bad request.","error_code":"regent_request_004","errors":{"name":{"detail":"x","error_code":"regent_request_004"}}}`, false},
		{"error without code", "POST", "/membership/member/", 400, json, `{"detail":"Bad request."}`, false},
		{"no such route", "GET", "/nope", 404, json, `{"detail":"No such route.","error_code":"regent_request_007"}`, true},
		{"no such route, bad shape", "GET", "/nope", 404, json, `{"message":"nope"}`, false},
		{"no such route, 200", "GET", "/membership/member/2/extra", 200, item, `{"content":` + member + `}`, false},
		{"operator path with a slash", "GET", "/v1/operator/members/", 404, json, `{"detail":"No such route.","error_code":"regent_request_007"}`, true},
		{"operator path with a slash, 200", "GET", "/v1/operator/members/", 200, json, `{"content":[]}`, false},
		{"method not allowed", "PUT", "/membership/token/2/", 405, json, `{"detail":"no","error_code":"regent_request_006"}`, true},
		{"empty id", "DELETE", "/membership/member/", 405, json, `{"detail":"no","error_code":"regent_request_006"}`, true},
		{"head", "HEAD", "/membership/member/2/", 200, item, ``, true},
		{"head on list", "HEAD", "/membership/member/", 200, json, ``, true},
		{"head with body", "HEAD", "/membership/member/2/", 200, item, `{}`, false},
		{"delete", "DELETE", "/membership/member/2/", 204, http.Header{"X-Regent-Index": {"7"}}, ``, true},
		{"metrics", "GET", "/metrics", 200, http.Header{"Content-Type": {"text/plain; version=0.0.4; charset=utf-8"}, "X-Regent-Index": {"7"}}, "# HELP x\n", true},
		{"snapshot", "GET", "/v1/operator/snapshot", 200, http.Header{"Content-Type": {"application/octet-stream"}, "X-Regent-Index": {"7"}}, "REGENT", true},
		// XML (Melange): status and headers checked, the body only for being
		// well-formed XML of a documented content type.
		{"melange xml", "GET", "/v0.1/ipam/tenants/1/ip_blocks.xml", 200, xml, `<?xml version="1.0"?><ip_blocks></ip_blocks>`, true},
		{"melange xml by Accept", "GET", "/v0.1/ipam/tenants/1/ip_blocks/2", 200, xml, `<ip_block id="2"/>`, true},
		{"melange xml error", "GET", "/v0.1/ipam/tenants/1/ip_blocks/2.xml", 404, xml, `<NotFound code="404" message="m" detail="d"/>`, true},
		{"melange xml, malformed", "GET", "/v0.1/ipam/tenants/1/ip_blocks.xml", 200, xml, `<ip_blocks>`, false},
		{"melange xml, two roots", "GET", "/v0.1/ipam/tenants/1/ip_blocks.xml", 200, xml, `<a/><b/>`, false},
		{"melange xml, undocumented status", "GET", "/v0.1/ipam/tenants/1/ip_blocks.xml", 201, xml, `<ip_blocks/>`, false},
		{"melange xml, no index header", "GET", "/v0.1/ipam/tenants/1/ip_blocks.xml", 200, http.Header{"Content-Type": {"application/xml"}}, `<ip_blocks/>`, false},
		{"xml where only json is documented", "GET", "/membership/member/2/", 200, http.Header{"Content-Type": {"application/xml"}, "X-Regent-Index": {"6"}, "Etag": {`"6"`}}, `<member/>`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			err := spec.CheckResponse(req, tc.status, tc.header, []byte(tc.body))
			if (err == nil) != tc.ok {
				t.Errorf("ok = %v, want %v (err: %v)", err == nil, tc.ok, err)
			}
		})
	}
}
