package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// obj runs an iaas command with -o json and returns the object it printed.
func (c *ctl) obj(args ...string) map[string]any {
	c.t.Helper()
	var v map[string]any
	c.json(&v, args...)
	return v
}

// id renders a JSON number field (ids, indexes) as an argument.
func id(v map[string]any, field string) string { return fmt.Sprint(v[field]) }

func TestRegentctlIAAS(t *testing.T) {
	c := start(t)

	// ASN → allocation → subnet → IP address, with every way of giving a body.
	asn := c.obj("iaas", "asn", "create", "member_id=1", "number=64512")
	if asn["number"] != float64(64512) || asn["is_pseudo"] != false {
		t.Fatalf("asn create: %v", asn)
	}
	body := filepath.Join(t.TempDir(), "allocation.json")
	if err := os.WriteFile(body, []byte(`{"asn_id": `+id(asn, "id")+`, "address_range": "10.0.0.0/16", "type": "private"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	alloc := c.obj("iaas", "allocation", "create", "-f", body, "name=lab")
	if alloc["address_range"] != "10.0.0.0/16" || alloc["name"] != "lab" || id(alloc, "asn_id") != id(asn, "id") {
		t.Fatalf("allocation create: %v", alloc)
	}
	// -d with a field set on top, as the table shows it.
	out := c.ok("iaas", "subnet", "create", "-d", `{"allocation_id": `+id(alloc, "id")+`, "address_range": "10.0.1.1/24", "name": "x"}`,
		"name=web", "vlan=100")
	if field(out, "ADDRESS_RANGE") != "10.0.1.1/24" || field(out, "NAME") != "web" || field(out, "VLAN") != "100" || field(out, "ID") == "" {
		t.Fatalf("subnet create:\n%s", out)
	}
	sub := field(out, "ID")
	// -f - reads stdin.
	code, out, errOut := c.runIn(strings.NewReader(`{"subnet_id": `+sub+`, "name": "gw"}`), "-o", "json", "iaas", "ip_address", "create", "-f", "-")
	var ip map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ip) != nil || ip["address"] != "10.0.1.2" || ip["name"] != "gw" {
		t.Fatalf("ip_address create from stdin: %d\n%s%s", code, out, errOut)
	}
	// KEY:=JSON for a string that reads as a number.
	ip2 := c.obj("iaas", "ip_address", "create", "subnet_id="+sub, "name:=\"007\"")
	if ip2["name"] != "007" || ip2["address"] != "10.0.1.3" {
		t.Fatalf("ip_address create with :=: %v", ip2)
	}
	c.obj("iaas", "ip_address", "create", "subnet_id="+sub, "name=db")

	// The default table: id, then the service's columns; -columns with a
	// nested field.
	out = c.ok("iaas", "subnet", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ID ADDRESS_RANGE NAME ALLOCATION_ID VLAN VXLAN" ||
		strings.Join(strings.Fields(lines[1]), " ") != sub+" 10.0.1.1/24 web "+id(alloc, "id")+" 100 0" {
		t.Fatalf("subnet list table:\n%s", out)
	}
	// A column no object has (a typo) is named on stderr, not left as a
	// silent "-"; a nested field under null (no public IP) is no typo.
	code, out, errOut = c.run("iaas", "subnet", "list", "-columns", "id,nmae")
	if code != 0 || !strings.Contains(errOut, `warning: no field "nmae" in the subnet answer`) {
		t.Fatalf("subnet list -columns with a typo: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = c.run("iaas", "subnet", "get", sub, "-columns", "name,vlan.x")
	if code != 0 || !strings.Contains(errOut, `warning: no field "vlan.x" in the subnet answer`) || strings.Contains(errOut, `"name"`) {
		t.Fatalf("subnet get -columns with a typo: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = c.run("iaas", "ip_address", "list", "-columns", "address,public_ip.address")
	if code != 0 || errOut != "" || !strings.Contains(out, "10.0.1.2") {
		t.Fatalf("ip_address list -columns public_ip.address: %d\n%s%s", code, out, errOut)
	}
	out = c.ok("iaas", "ip_address", "list", "-columns", "address,subnet.name", "-order", "-address")
	if lines = strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 || strings.Join(strings.Fields(lines[1]), " ") != "10.0.1.4 web" {
		t.Fatalf("ip_address list -columns:\n%s", out)
	}
	// JSON is the API's list; -search filters it.
	var ips api.List[map[string]any]
	c.json(&ips, "iaas", "ip_address", "list", "-search", "name__in=gw,db", "-search", "subnet_id="+sub)
	if len(ips.Content) != 2 || ips.Metadata.TotalRecords != 2 || ips.Content[0]["subnet"].(map[string]any)["name"] != "web" {
		t.Fatalf("ip_address list -search: %+v", ips)
	}
	// Paging: one page and its hint, then every page.
	code, out, errOut = c.run("iaas", "ip_address", "list", "-limit", "2", "-search", "colour=red")
	if code != 0 || len(strings.Split(strings.TrimSpace(out), "\n")) != 3 ||
		!strings.Contains(errOut, "(page 0: 2 of 3 ip_address objects") || !strings.Contains(errOut, "warning: SearchFilterWarning") {
		t.Fatalf("ip_address list -limit 2: %d\n%s%s", code, out, errOut)
	}
	c.json(&ips, "iaas", "ip_address", "list", "-all", "-limit", "2")
	if len(ips.Content) != 3 || ips.Metadata.TotalRecords != 3 {
		t.Fatalf("ip_address list -all: %+v", ips)
	}

	// A field error is shown with its code, and the command fails.
	c.fail(1, "allocation_id: Allocation with id = '999' doesn't exist [iaas_subnet_create_102]",
		"iaas", "subnet", "create", "allocation_id=999", "address_range=10.9.0.1/24")
	c.fail(1, "[HTTP 400]", "iaas", "subnet", "create")
	c.fail(1, "address_range: This field is required. [iaas_subnet_create_101]", "iaas", "subnet", "create")

	// Update: PATCH, compare-and-swap, PUT.
	s := c.obj("iaas", "subnet", "get", sub)
	c.fail(1, "HTTP 409]", "iaas", "subnet", "update", sub, "name=web2", "-if-match", "1")
	s = c.obj("iaas", "subnet", "update", sub, "name=web2", "-if-match", id(s, "modified_index"))
	if s["name"] != "web2" || s["vlan"] != float64(100) {
		t.Fatalf("subnet update: %v", s)
	}
	asn = c.obj("iaas", "asn", "update", id(asn, "id"), "-put", "-d", `{"member_id": 1, "number": 64513}`)
	if asn["number"] != float64(64513) {
		t.Fatalf("asn update -put: %v", asn)
	}
	out = c.ok("iaas", "ip_address", "get", id(ip, "id"), "-columns", "address,subnet.address_range")
	if field(out, "ADDRESS") != "10.0.1.2" || field(out, "SUBNET.ADDRESS_RANGE") != "10.0.1.1/24" {
		t.Fatalf("ip_address get -columns:\n%s", out)
	}

	// A utility with its own route and query parameters.
	var space []map[string]any
	c.json(&space, "iaas", "subnet_space", "get", id(alloc, "id"), "space_type=existing")
	if len(space) != 1 || space[0]["address_range"] != "10.0.1.1/24" {
		t.Fatalf("subnet_space: %v", space)
	}

	// A domain and its records.
	var del map[string]any
	dom := c.obj("iaas", "domain", "create", "name=example.com")
	rec := c.obj("iaas", "record", "create", "domain_id="+id(dom, "id"), "name=www.example.com", "type=A", "content=10.0.1.2", "ttl=300")
	if rec["ttl"] != float64(300) || rec["type"] != "A" {
		t.Fatalf("record create: %v", rec)
	}
	out = c.ok("iaas", "record", "list", "-search", "domain_id="+id(dom, "id"))
	if lines = strings.Split(strings.TrimSpace(out), "\n"); len(lines) < 2 ||
		!strings.Contains(out, "www") || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "CONTENT") {
		t.Fatalf("record list:\n%s", out)
	}
	rec = c.obj("iaas", "record", "update", id(rec, "id"), "ttl=600")
	if rec["ttl"] != float64(600) || rec["content"] != "10.0.1.2" {
		t.Fatalf("record update: %v", rec)
	}
	c.fail(1, "iaas_record_create_", "iaas", "record", "create", "domain_id="+id(dom, "id"), "name=bad", "type=A", "content=not-an-ip")
	if out = c.ok("iaas", "record", "delete", id(rec, "id")); out != "Deleted record "+id(rec, "id")+".\n" {
		t.Fatalf("record delete: %q", out)
	}
	c.json(&del, "iaas", "domain", "delete", id(dom, "id"))
	if del["deleted"] != "domain" || del["id"] != dom["id"] {
		t.Fatalf("domain delete: %v", del)
	}
	c.fail(1, "[iaas_record_read_001, HTTP 404]", "iaas", "record", "get", id(rec, "id"))

	// A CIX list entry is read and deleted by its CIDR.
	c.ok("iaas", "cix_blacklist", "create", "cidr=192.0.2.0/24", "comment=bad")
	if out = c.ok("iaas", "cix_blacklist", "get", "192.0.2.0/24"); field(out, "COMMENT") != "bad" {
		t.Fatalf("cix_blacklist get by CIDR:\n%s", out)
	}
	c.json(&del, "iaas", "cix_blacklist", "delete", "192.0.2.0/24")
	if del["deleted"] != "cix_blacklist" || del["id"] != "192.0.2.0/24" {
		t.Fatalf("cix_blacklist delete: %v", del)
	}

	// Clean up in dependency order.
	for _, ipID := range []string{id(ip, "id"), id(ip2, "id")} {
		c.ok("iaas", "ip_address", "delete", ipID)
	}
	c.ok("iaas", "ip_address", "delete", fmt.Sprint(ips.Content[2]["id"]))
	c.ok("iaas", "subnet", "delete", sub)
	c.ok("iaas", "allocation", "delete", id(alloc, "id"))
	c.ok("iaas", "asn", "delete", id(asn, "id"))
	c.json(&ips, "iaas", "ip_address", "list")
	if len(ips.Content) != 0 {
		t.Fatalf("left over: %+v", ips)
	}
}

// TestRegentctlIAASRoutes checks the service table against the
// controller's routes: a command is in the table exactly when its route
// exists, and every list the table claims answers through the CLI.
func TestRegentctlIAASRoutes(t *testing.T) {
	c := start(t)
	cl := client.New(c.addr, c.tok)
	ctx := context.Background()
	for _, s := range iaasServices {
		verbs := " " + s.verbs + " "
		if strings.Contains(verbs, " list ") {
			c.ok("iaas", s.name, "list")
		}
		item := s.path("999")
		if s.arg == "-" {
			item = s.path()
		}
		for _, r := range []struct{ verb, method, path, body string }{
			{"list", http.MethodGet, s.path(), ""},
			{"get", http.MethodGet, item, ""},
			{"create", http.MethodPost, s.path(), "{}"},
			{"update", http.MethodPatch, item, `{"name": "x"}`},
			{"delete", http.MethodDelete, item, ""},
		} {
			if s.arg != "" && r.verb != "get" {
				continue // a utility's list path is its get path
			}
			_, _, err := client.Raw(ctx, cl, r.method, r.path, nil, json.RawMessage(r.body), nil)
			var e *api.Error
			exists := !errors.As(err, &e) || (e.Status != http.StatusMethodNotAllowed && e.ErrorCode != api.CodeNotFoundRoute)
			if claimed := strings.Contains(verbs, " "+r.verb+" "); exists != claimed {
				t.Errorf("iaas %s %s: the table says %v, the route %s %s answers %v", s.name, r.verb, claimed, r.method, r.path, err)
			}
		}
	}
}

func TestRegentctlIAASUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"iaas"}, "iaas needs a service: asn, allocation, subnet, ip_address"},
		{[]string{"iaas", "widget", "list"}, `unknown iaas service "widget"; the services are asn, allocation`},
		{[]string{"iaas", "subnet"}, "iaas subnet needs a command: list, get, create, update, delete"},
		{[]string{"iaas", "domain", "update", "1", "name=x"}, `unknown command "update" for iaas domain (list, get, create, delete)`},
		{[]string{"iaas", "subnet", "get"}, "usage: regentctl iaas subnet get ID [KEY=VALUE ...]"},
		{[]string{"iaas", "subnet", "get", "x1"}, `subnet ID must be a positive integer, not "x1"`},
		{[]string{"iaas", "subnet", "delete", "1", "2"}, "usage: regentctl iaas subnet delete ID [flags]"},
		{[]string{"iaas", "subnet", "update", "3"}, "nothing to change"},
		{[]string{"iaas", "subnet", "create", "-d", "{"}, "the body from -d is not JSON"},
		{[]string{"iaas", "subnet", "create", "-d", "[1]", "name=x"}, "need the body from -d to be a JSON object"},
		{[]string{"iaas", "subnet", "create", "-d", "null", "name=x"}, "need the body from -d to be a JSON object"}, // null decoded to a nil map: a panic
		{[]string{"iaas", "subnet", "create", "-d", "{}", "-f", "x.json"}, "-d and -f exclude each other"},
		{[]string{"iaas", "subnet", "create", "name"}, `"name": expected KEY=VALUE or KEY:=JSON`},
		{[]string{"iaas", "subnet", "create", "rules:=[1,"}, "rules:=[1,: the value is not JSON"},
		{[]string{"iaas", "subnet", "list", "-search", "name"}, "expected FIELD[__OP]=VALUE"},
		{[]string{"iaas", "subnet_space", "get", "1", "space_type"}, "expected a query parameter KEY=VALUE"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"-addr", "http://127.0.0.1:1", "-token", "x"}, tc.args...), strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("regentctl %q: exit %d, stderr:\n%s\nwant exit 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
	for _, args := range [][]string{{"iaas", "help"}, {"iaas", "-h"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, nil, &out, &errOut); code != 0 ||
			!strings.Contains(out.String(), "subnet_space      get ALLOCATION_ID") || !strings.Contains(out.String(), "cix_blacklist     list get create delete") {
			t.Fatalf("regentctl %q: %d\n%s%s", args, code, out.String(), errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"iaas", "vm", "update", "-h"}, nil, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "Usage: regentctl iaas vm update ID [-d JSON | -f FILE]") || !strings.Contains(out.String(), "-if-match") {
		t.Fatalf("iaas vm update -h: %d\n%s%s", code, out.String(), errOut.String())
	}
}

func TestParsePair(t *testing.T) {
	for _, tc := range []struct{ in, key, val string }{
		{"name=web", "name", `"web"`},
		{"vlan=100", "vlan", `100`},
		{"ttl=-1.5e3", "ttl", `-1.5e3`},
		{"dns=null", "dns", `null`},
		{"public=true", "public", `true`},
		{"name=007", "name", `"007"`}, // not a JSON number
		{"name=", "name", `""`},
		{"comment=a=b", "comment", `"a=b"`},
		{"name:=\"100\"", "name", `"100"`},
		{"rules:=[{\"port\": 22}]", "rules", `[{"port": 22}]`},
	} {
		k, v, err := parsePair(tc.in)
		if err != nil || k != tc.key || string(v) != tc.val {
			t.Errorf("parsePair(%q) = %q, %s, %v; want %q, %s", tc.in, k, v, err, tc.key, tc.val)
		}
	}
}

func TestIAASTable(t *testing.T) {
	var out bytes.Buffer
	s := &iaasService{name: "vpn_history"}
	items := []json.RawMessage{
		json.RawMessage(`{"id": 7, "vpn_id": 3, "tags": ["a", "b"], "spec": {"x": 1}, "note": "two\nlines", "robot": true, "user_id": null, "a": 1, "b": 2, "c": 3}`),
	}
	if err := s.table(&out, io.Discard, items, nil); err != nil {
		t.Fatal(err)
	}
	// No name and no defaults: id and the first scalar fields.
	want := "ID  VPN_ID  NOTE        ROBOT  USER_ID  A\n7   3       two\\nlines  yes    -        1\n"
	if out.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	var warnings bytes.Buffer
	if err := s.table(&out, &warnings, items, []string{"tags", "spec", "spec.x", "missing", "user_id.name"}); err != nil {
		t.Fatal(err)
	}
	if w := warnings.String(); !strings.Contains(w, `no field "missing"`) || strings.Count(w, "warning:") != 1 {
		t.Fatalf("table -columns warnings:\n%s", w)
	}
	if want = "TAGS  SPEC     SPEC.X  MISSING  USER_ID.NAME\na,b   {\"x\":1}  1       -        -\n"; out.String() != want {
		t.Fatalf("table -columns:\n%s\nwant:\n%s", out.String(), want)
	}
}
