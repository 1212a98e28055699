package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/api"
)

type ctl struct {
	t    *testing.T
	addr string
	tok  string
}

func start(t *testing.T) *ctl {
	t.Helper()
	s, tok := startNode(t, "")
	return &ctl{t: t, addr: s.URL(), tok: tok}
}

// startNode runs a single-node controller (DNS on dnsAddr; "" for none)
// until the test ends, and returns it with its root token.
func startNode(t *testing.T, dnsAddr string) (*server.Server, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := server.New(server.Config{
		NodeID: "node1", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DNSAddr: dnsAddr, Bootstrap: true, LogLevel: "off",
		HeartbeatTimeout: "50ms", ElectionTimeout: "50ms", LeaderLeaseTimeout: "50ms",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	if !s.WaitReady(ctx) {
		t.Fatal("controller not ready")
	}
	for ctx.Err() == nil {
		if b, err := os.ReadFile(filepath.Join(dir, server.RootTokenFile)); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return s, strings.TrimSpace(string(b))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no root token")
	return nil, ""
}

// run runs regentctl with the global flags first.
func (c *ctl) run(args ...string) (code int, stdout, stderr string) {
	return c.runIn(strings.NewReader(""), args...)
}

// runIn runs regentctl with stdin.
func (c *ctl) runIn(stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	code = run(ctx, append([]string{"-addr", c.addr, "-token", c.tok}, args...), stdin, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (c *ctl) ok(args ...string) string {
	c.t.Helper()
	code, out, errOut := c.run(args...)
	if code != 0 {
		c.t.Fatalf("regentctl %q: exit %d\n%s", args, code, errOut)
	}
	return out
}

func (c *ctl) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("regentctl %q: %v\n%s", args, err, out)
	}
}

func (c *ctl) fail(wantCode int, wantErr string, args ...string) {
	c.t.Helper()
	code, _, errOut := c.run(args...)
	if code != wantCode || !strings.Contains(errOut, wantErr) {
		c.t.Fatalf("regentctl %q: exit %d, stderr:\n%s\nwant exit %d and %q", args, code, errOut, wantCode, wantErr)
	}
}

// field returns the value of a FIELD VALUE table row.
func field(out, name string) string {
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			return strings.Join(f[1:], " ")
		}
	}
	return ""
}

func TestRegentctl(t *testing.T) {
	c := start(t)

	// Members.
	out := c.ok("member", "create", "-name", "Acme")
	if field(out, "NAME") != "Acme" || field(out, "ID") == "" || field(out, "SELF") != "MANAGED no" {
		t.Fatalf("member create:\n%s", out)
	}
	id := field(out, "ID")
	var m api.Member
	c.json(&m, "member", "get", id)
	if fmt.Sprint(m.ID) != id || m.Name != "Acme" {
		t.Fatalf("member get: %+v", m)
	}
	c.fail(1, "name: A member named \"Acme\" already exists. [membership_member_create_101]", "member", "create", "-name", "Acme")
	c.fail(1, "This field is required. [membership_member_create_101]", "member", "create")
	c.fail(1, "[membership_member_update_002, HTTP 409]", "member", "update", id, "-name", "Acme2", "-if-match", "1")
	c.json(&m, "member", "update", id, "-name", "Acme Ltd", "-if-match", fmt.Sprint(m.ModifiedIndex))
	if m.Name != "Acme Ltd" {
		t.Fatalf("member update: %+v", m)
	}
	var members api.List[api.Member]
	c.json(&members, "member", "list", "-search", "name__icontains=acme", "-order", "-name")
	if len(members.Content) != 1 || members.Content[0].Name != "Acme Ltd" || members.Metadata.Order != "-name" {
		t.Fatalf("member list: %+v", members)
	}
	// Global flags after the command, a warning for an unknown filter, and
	// the table.
	code, out, errOut := c.run("member", "list", "-search", "colour=red", "-limit", "1")
	if code != 0 || !strings.Contains(errOut, "warning: SearchFilterWarning") || !strings.Contains(errOut, "(page 0: 1 of 2 members") {
		t.Fatalf("member list with a bad filter: %d\n%s\n%s", code, out, errOut)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "CIX") {
		t.Fatalf("member list table:\n%s", out)
	}
	// The last page has no "for more" hint.
	code, out, errOut = c.run("member", "list", "-limit", "1", "-page", "1")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || strings.Contains(errOut, "for more") {
		t.Fatalf("member list, last page: %d\n%s\n%s", code, out, errOut)
	}
	c.json(&members, "member", "list", "-all", "-limit", "1")
	if len(members.Content) != 2 || members.Metadata.TotalRecords != 2 {
		t.Fatalf("member list -all: %+v", members)
	}
	// -all keeps the warnings: an ignored filter must not pass unnoticed
	// just because every page was asked for (it returns every object).
	code, out, errOut = c.run("member", "list", "-all", "-search", "colour=red")
	if code != 0 || !strings.Contains(errOut, "warning: SearchFilterWarning") {
		t.Fatalf("member list -all with a bad filter: %d\n%s\n%s", code, out, errOut)
	}
	c.json(&members, "member", "list", "-all", "-limit", "1", "-search", "colour=red")
	if len(members.Content) != 2 || len(members.Metadata.Warnings) != 1 || members.Metadata.Order != "id" {
		t.Fatalf("member list -all -o json with a bad filter: %+v", members)
	}

	// Users.
	var u api.User
	c.json(&u, "user", "create", "-username", "alice", "-member", id, "-email", "alice@example.com", "-first-name", "Alice", "-admin")
	if u.Username != "alice" || fmt.Sprint(u.MemberID) != id || !u.Administrator || u.Email != "alice@example.com" {
		t.Fatalf("user create: %+v", u)
	}
	uid := fmt.Sprint(u.ID)
	out = c.ok("user", "update", uid, "-surname", "Liddell", "-admin=false")
	if field(out, "NAME") != "Alice Liddell" || field(out, "ADMIN") != "no" || field(out, "EMAIL") != "alice@example.com" {
		t.Fatalf("user update:\n%s", out)
	}
	var users api.List[api.User]
	c.json(&users, "user", "list", "-search", "member_id="+id)
	if len(users.Content) != 1 || users.Content[0].ID != u.ID {
		t.Fatalf("user list: %+v", users)
	}
	c.fail(1, "username: Use letters, digits and @.+-_ only.", "user", "create", "-username", "bad name")

	// Tokens.
	var tok api.Token
	c.json(&tok, "token", "create", "-name", "ci", "-user", uid)
	if tok.Secret == "" || tok.UserID != u.ID || tok.Name != "ci" {
		t.Fatalf("token create: %+v", tok)
	}
	out = c.ok("token", "create", "-name", "table")
	if !strings.Contains(out, "SECRET  rgt_") {
		t.Fatalf("token create table:\n%s", out)
	}
	// alice's token works and sees only her member.
	alice := &ctl{t: t, addr: c.addr, tok: tok.Secret}
	alice.json(&members, "member", "list")
	if len(members.Content) != 1 || fmt.Sprint(members.Content[0].ID) != id {
		t.Fatalf("alice's members: %+v", members)
	}
	alice.fail(1, "[membership_member_create_201, HTTP 403]", "member", "create", "-name", "Other")
	var toks api.List[api.Token]
	c.json(&toks, "token", "list", "-search", "user_id="+uid)
	if len(toks.Content) != 1 || toks.Content[0].Secret != "" {
		t.Fatalf("token list: %+v", toks)
	}
	c.ok("token", "delete", fmt.Sprint(tok.ID))
	alice.fail(1, "[regent_auth_002, HTTP 401]", "member", "list")

	// Regions.
	var r api.Region
	c.json(&r, "region", "create", "-name", "eu-west-1", "-customers", id+",1")
	if len(r.Customers) != 2 {
		t.Fatalf("region create: %+v", r)
	}
	rid := fmt.Sprint(r.ID)
	out = c.ok("region", "update", rid, "-customers", "")
	if field(out, "CUSTOMERS") != "-" || field(out, "NAME") != "eu-west-1" {
		t.Fatalf("region update:\n%s", out)
	}
	c.fail(1, "customers: Member 999 does not exist.", "region", "update", rid, "-customers", "999")
	if out = c.ok("region", "delete", rid); out != "Deleted region "+rid+".\n" {
		t.Fatalf("region delete: %q", out)
	}
	c.fail(1, "[membership_region_read_001, HTTP 404]", "region", "get", rid)

	// Clean up in dependency order.
	c.fail(1, "membership_member_delete_102", "member", "delete", id)
	c.ok("user", "delete", uid)
	c.ok("member", "delete", id)
}

// TestRegentctlUsage: a mistake on the command line exits 2 with one line
// saying what is wrong and one saying where the usage is (the command's
// -h, 'iaas help' or regentctl -h), not the whole usage after it; the
// usage is printed when no resource is given.
func TestRegentctlUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		hint string // the line after it
	}{
		{[]string{"widget", "list"}, `unknown resource "widget"`, "Run 'regentctl -h' for usage."},
		{[]string{"-bogus", "member", "list"}, "flag provided but not defined: -bogus", "Run 'regentctl -h' for usage."},
		{[]string{"member"}, "member needs a command: list, get, create, update, delete", "Run 'regentctl -h' for usage."},
		{[]string{"token", "update", "1"}, `unknown command "update" for token (list, get, create, delete)`, "Run 'regentctl -h' for usage."},
		{[]string{"member", "get"}, "usage: regentctl member get ID", "Run 'regentctl member get -h' for usage."},
		{[]string{"member", "get", "x1"}, `member ID must be a positive integer, not "x1"`, "Run 'regentctl member get -h' for usage."},
		{[]string{"member", "update", "3"}, "nothing to change", "Run 'regentctl member update -h' for usage."},
		{[]string{"member", "list", "-search", "name"}, "expected FIELD[__OP]=VALUE", "Run 'regentctl member list -h' for usage."},
		{[]string{"member", "list", "-o", "yaml"}, "-o must be table or json", "Run 'regentctl member list -h' for usage."},
		{[]string{"member", "list", "-limit", "0"}, "-limit must be 1 to 100, not 0", "Run 'regentctl member list -h' for usage."},
		{[]string{"iaas", "subnet", "list", "-limit", "500"}, "-limit must be 1 to 100, not 500", "Run 'regentctl iaas subnet list -h' for usage."},
		{[]string{"user", "list", "-page", "-1"}, "-page counts from 0, not -1", "Run 'regentctl user list -h' for usage."},
		{[]string{"-o", "yaml", "member", "list"}, "-o must be table or json", "Run 'regentctl member list -h' for usage."},
		{[]string{"token", "create", "-server", "1"}, "-server needs -robot-region", "Run 'regentctl token create -h' for usage."},
		{[]string{"iaas", "subnet", "get", "abc"}, `subnet ID must be a positive integer, not "abc"`, "Run 'regentctl iaas subnet get -h' for usage."},
		{[]string{"iaas", "widget", "list"}, `unknown iaas service "widget"`, "Run 'regentctl iaas help' for usage."},
		{[]string{"iaas", "subnet", "frob"}, `unknown command "frob" for iaas subnet`, "Run 'regentctl iaas help' for usage."},
		// The flag parser's error names the command's -h itself.
		{[]string{"member", "update", "2", "-columns", "id"}, "flag provided but not defined: -columns (run 'regentctl member update -h' for its flags)", ""},
		{[]string{"member", "list", "-nope"}, "flag provided but not defined: -nope (run 'regentctl member list -h' for its flags)", ""},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"-addr", "http://127.0.0.1:1", "-token", "x"}, tc.args...), nil, &out, &errOut)
		lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
		want := []string{"regentctl: ..." + tc.want + "..."}
		if tc.hint != "" {
			want = append(want, tc.hint)
		}
		if code != 2 || out.Len() != 0 || len(lines) != len(want) || !strings.HasPrefix(lines[0], "regentctl: ") ||
			!strings.Contains(lines[0], tc.want) || tc.hint != "" && lines[1] != tc.hint {
			t.Errorf("regentctl %q: exit %d, stderr:\n%s\nwant exit 2 and\n%s", tc.args, code, errOut.String(), strings.Join(want, "\n"))
		}
	}
	// No resource: the whole usage.
	for _, args := range [][]string{nil, {"-addr", "http://127.0.0.1:1"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, nil, &out, &errOut); code != 2 ||
			!strings.HasPrefix(errOut.String(), "regentctl: no resource given\n\nUsage: regentctl [global flags] <resource> <command>") {
			t.Errorf("regentctl %q: exit %d, stderr:\n%s", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"user", "create", "-h"}, nil, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "Usage: regentctl user create -username NAME") || !strings.Contains(out.String(), "-first-name") {
		t.Fatalf("user create -h: %d\n%s%s", code, out.String(), errOut.String())
	}
	// The token is never shown as a flag default.
	out.Reset()
	run(context.Background(), []string{"-token", "rgt_secret", "member", "list", "-h"}, nil, &out, &errOut)
	if strings.Contains(out.String(), "rgt_secret") {
		t.Fatalf("-h shows the token:\n%s", out.String())
	}
	// A transport error exits 1 and names the address.
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"-addr", "http://127.0.0.1:1", "member", "list"}, nil, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "127.0.0.1:1") {
		t.Fatalf("unreachable: %d %s", code, errOut.String())
	}
}

// TestRegentctlRootTokenFallback: run where ./data/root.token exists and no
// token is given, regentctl acts as that root and says so on stderr, stdout
// staying the JSON a script reads; when the cluster refuses that token, the
// hint names the file, not flags that were not given.
func TestRegentctlRootTokenFallback(t *testing.T) {
	c := start(t)
	t.Setenv("REGENT_TOKEN", "")
	t.Chdir(t.TempDir())
	os.Mkdir("data", 0o700)
	runHere := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		code := run(ctx, append([]string{"-addr", c.addr}, args...), nil, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	const note = "regentctl: using the root token in ./data/root.token (no -token, -token-file or $REGENT_TOKEN)\n"

	os.WriteFile(filepath.Join("data", server.RootTokenFile), []byte(c.tok+"\n"), 0o600)
	code, out, errOut := runHere("-o", "json", "token", "list")
	var list struct{ Content []api.Token }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Content) == 0 || errOut != note {
		t.Fatalf("fallback: exit %d\nstdout:\n%s\nstderr:\n%q\nwant the JSON list on stdout and %q on stderr", code, out, errOut, note)
	}
	// A token given: no note.
	if code, _, errOut := runHere("-token", c.tok, "token", "list"); code != 0 || errOut != "" {
		t.Fatalf("-token: exit %d, stderr %q", code, errOut)
	}

	// Another cluster's data dir.
	os.WriteFile(filepath.Join("data", server.RootTokenFile), []byte("rgt_anotherclusterstokenxxxxxxxxxxxx\n"), 0o600)
	code, out, errOut = runHere("token", "list")
	if code != 1 || out != "" || !strings.HasPrefix(errOut, note) || !strings.Contains(errOut, "[regent_auth_002, HTTP 401]") ||
		!strings.Contains(errOut, "the token sent is the one in ./data/root.token") || strings.Contains(errOut, "check the token given with") {
		t.Fatalf("another cluster's root token: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// TestRegentctlCommandHelp: 'regentctl RESOURCE -h' (or help, --help) and
// 'regentctl iaas SERVICE -h' list the commands with their arguments and
// exit 0; they were an unknown command "-h", exit 2.
func TestRegentctlCommandHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"member", "-h"}, []string{"Usage: regentctl member COMMAND", "  create  -name NAME [-self-managed] [flags]", "  delete  ID [flags]", "'regentctl member COMMAND -h'"}},
		{[]string{"token", "help"}, []string{"Usage: regentctl token COMMAND", "  create  [-name NAME] [-user ID]"}},
		{[]string{"region", "--help"}, []string{"Usage: regentctl region COMMAND", "  update  ID"}},
		{[]string{"iaas", "subnet", "-h"}, []string{"Usage: regentctl iaas subnet COMMAND", "  update  ID [-d JSON | -f FILE]", "  delete  ID [flags]"}},
		{[]string{"iaas", "capacity", "help"}, []string{"  get  REGION_ID [KEY=VALUE ...]"}},
		// The overview names every flag of the commands (-global-active and -if-match were missing).
		{[]string{"-h"}, []string{"-surname S -admin\n          -global-active]", "update of a member, user or region takes -if-match N"}},
		// Every operator of the API's filters (exact, the CIDR and date ones were missing).
		{[]string{"member", "list", "-h"}, []string{"OP is exact (the default),", "contains\n", "and within on addresses", "week_day"}},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, nil, &out, &errOut)
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("regentctl %q: no %q in\n%s", tc.args, w, out.String())
			}
		}
		if code != 0 || errOut.Len() != 0 {
			t.Errorf("regentctl %q: exit %d, stderr:\n%s", tc.args, code, errOut.String())
		}
	}
}

// TestRegentctlTimeout: -timeout bounds a request to a controller that
// accepts the connection and never answers (regentctl waited forever); the
// error names the timeout. A negative one is a usage error.
func TestRegentctlTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // accepted and never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"-addr", "http://" + ln.Addr().String(), "-token", "x", "-timeout", "300ms", "member", "list"}, nil, &out, &errOut)
	if code != 1 || time.Since(start) > 5*time.Second || !strings.Contains(errOut.String(), "no answer within -timeout 300ms") {
		t.Fatalf("exit %d after %s, stderr:\n%s", code, time.Since(start), errOut.String())
	}
	// The help says that the answer's body counts, as http.Client.Timeout
	// does (a snapshot save is cut short by a -timeout shorter than it).
	out.Reset()
	if run(ctx, []string{"member", "list", "-h"}, nil, &out, &errOut); !strings.Contains(out.String(), "its answer read in full") {
		t.Fatalf("-timeout's help:\n%s", out.String())
	}
	// Interrupted (Ctrl-C cancels run's context) while waiting: 130, as a
	// shell reports a command ended by SIGINT, and one line saying so.
	ictx, icancel := context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, icancel)
	errOut.Reset()
	if code := run(ictx, []string{"-addr", "http://" + ln.Addr().String(), "-token", "x", "member", "list"}, nil, &out, &errOut); code != 130 ||
		errOut.String() != "regentctl: interrupted\n" {
		t.Fatalf("interrupted: exit %d, stderr:\n%s", code, errOut.String())
	}
	errOut.Reset()
	if code := run(ctx, []string{"-addr", "http://" + ln.Addr().String(), "member", "list", "-timeout", "-1s"}, nil, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "-timeout must not be negative") {
		t.Fatalf("-timeout -1s: exit %d, stderr:\n%s", code, errOut.String())
	}
}

// TestRegentctlRetriesNoLeader: a command answered 503 regent_cluster_001
// (no leader yet: nothing done) is sent again after Retry-After and
// succeeds once a leader answers; it failed at once.
func TestRegentctlRetriesNoLeader(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"detail": "No leader.", "error_code": "regent_cluster_001"}`)
			return
		}
		io.WriteString(w, `{"content": {"id": 7, "name": "acme"}}`)
	}))
	defer ts.Close()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-addr", ts.URL, "-token", "x", "-o", "json", "member", "get", "7"}, nil, &out, &errOut); code != 0 ||
		calls.Load() != 2 || !strings.Contains(out.String(), `"acme"`) {
		t.Fatalf("exit %d after %d calls, stdout:\n%s\nstderr:\n%s", code, calls.Load(), out.String(), errOut.String())
	}
}
