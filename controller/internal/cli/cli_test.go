package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

var testTool = Tool{Name: "prog", AddrHelp: "API `URL`", CACertHelp: "CA `file`"}

func TestRootTokenFile(t *testing.T) {
	if rootTokenFile != server.RootTokenFile {
		t.Fatalf("rootTokenFile %q, server.RootTokenFile %q", rootTokenFile, server.RootTokenFile)
	}
}

func TestParse(t *testing.T) {
	fs := testTool.NewFlagSet("thing do", "thing do ID [flags]")
	n := fs.Int("n", 0, "a `number`")
	var out bytes.Buffer
	pos, err := testTool.Parse(fs, []string{"a", "-n", "3", "b", "-n=4", "c"}, &out)
	if err != nil || *n != 4 || !slices.Equal(pos, []string{"a", "b", "c"}) || out.Len() != 0 {
		t.Fatalf("pos %q, n %d, err %v, out %q", pos, *n, err, out.String())
	}

	fs = testTool.NewFlagSet("thing do", "thing do ID [flags]")
	fs.Int("n", 0, "a `number`")
	if _, err := testTool.Parse(fs, []string{"x", "-h"}, &out); !errors.Is(err, ErrHelp) ||
		!strings.HasPrefix(out.String(), "Usage: prog thing do ID [flags]\n\nFlags:\n  -n number\n") {
		t.Fatalf("-h: %v\n%s", err, out.String())
	}

	out.Reset()
	fs = testTool.NewFlagSet("thing do", "thing do ID [flags]")
	_, err = testTool.Parse(fs, []string{"-bogus"}, &out)
	var ue UsageError
	if !errors.As(err, &ue) || err.Error() != "thing do: flag provided but not defined: -bogus (run 'prog thing do -h' for its flags)" || out.Len() != 0 {
		t.Fatalf("bad flag: %v, out %q", err, out.String())
	}
}

func TestConn(t *testing.T) {
	t.Setenv(client.EnvAddr, "")
	t.Setenv(client.EnvCACert, "")
	t.Setenv(client.EnvToken, "")
	t.Chdir(t.TempDir())

	c := testTool.Conn()
	if c.Addr != client.DefaultAddr || c.Output != "table" || c.JSON() {
		t.Fatalf("defaults: %+v", c)
	}
	fs := testTool.NewFlagSet("x", "x")
	c.Register(fs)
	var help bytes.Buffer
	if _, err := testTool.Parse(fs, []string{"-token", "rgt_secret", "-h"}, &help); !errors.Is(err, ErrHelp) ||
		strings.Contains(help.String(), "rgt_secret") || !strings.Contains(help.String(), "API URL ($REGENT_ADDR)") {
		t.Fatalf("-h: %v\n%s", err, help.String())
	}

	token := func() string {
		t.Helper()
		tok, err := c.resolveToken()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	c.Token = ""
	if tok := token(); tok != "" {
		t.Fatalf("no token anywhere: %q", tok)
	}
	os.Mkdir("data", 0o700)
	os.WriteFile(filepath.Join("data", "root.token"), []byte("root\n"), 0o600)
	if tok := token(); tok != "root" {
		t.Fatalf("./data/root.token: %q", tok)
	}
	t.Setenv(client.EnvToken, "env")
	if tok := token(); tok != "env" {
		t.Fatalf("$REGENT_TOKEN: %q", tok)
	}
	os.WriteFile("tok", []byte(" file \n"), 0o600)
	c.TokenFile = "tok"
	if tok := token(); tok != "file" {
		t.Fatalf("-token-file: %q", tok)
	}
	c.Token = "flag"
	if tok := token(); tok != "flag" {
		t.Fatalf("-token: %q", tok)
	}
	c.Token, c.TokenFile = "", "missing"
	if _, err := c.Client(); err == nil || !strings.HasPrefix(err.Error(), "token file: ") {
		t.Fatalf("missing -token-file: %v", err)
	}

	os.WriteFile("empty", []byte(" \n"), 0o600)
	c.TokenFile = "empty"
	if _, err := c.Client(); err == nil || err.Error() != "token file: empty is empty" {
		t.Fatalf("empty -token-file: %v", err)
	}

	c.TokenFile, c.CACert = "", "tok"
	if _, err := c.Client(); err == nil || err.Error() != "CA certificate: tok holds no PEM certificates" {
		t.Fatalf("bad -ca-cert: %v", err)
	}
	c.CACert, c.Output = "", "yaml"
	var ue UsageError
	if _, err := c.Client(); !errors.As(err, &ue) || err.Error() != `-o must be table or json, not "yaml"` {
		t.Fatalf("-o yaml: %v", err)
	}
	c.Output = "json"
	if cl, err := c.Client(); err != nil || cl.BaseURL() != client.DefaultAddr || !c.JSON() {
		t.Fatalf("client: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	Describe := testTool.Conn().Describe
	plain := errors.New("plain")
	if Describe(plain) != plain {
		t.Fatal("a plain error changed")
	}
	err := Describe(&api.Error{Status: 400, ErrorCode: "x_101", Detail: "Bad request.", Errors: map[string]api.FieldError{
		"zeta":  {Detail: "Z.", ErrorCode: "x_103"},
		"alpha": {Detail: "A.", ErrorCode: "x_102"},
	}})
	if want := "Bad request. [x_101, HTTP 400]\n  alpha: A. [x_102]\n  zeta: Z. [x_103]"; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	// An answer without an error code is not the API's: say where it came from.
	if err := Describe(&api.Error{Status: 502, Detail: "Bad gateway."}); !strings.HasPrefix(err.Error(), "Bad gateway. [HTTP 502]\n") ||
		!strings.Contains(err.Error(), "not the Regent API's") || !strings.Contains(err.Error(), "-addr") {
		t.Fatalf("no code: %q", err)
	}
	// Plain HTTP sent to a TLS listener: Go's server answers 400 so.
	if err := Describe(&api.Error{Status: 400, Detail: "Client sent an HTTP request to an HTTPS server."}); !strings.Contains(err.Error(), "speaks HTTPS: give its address as https://") ||
		!strings.Contains(err.Error(), "$REGENT_CACERT") || strings.Contains(err.Error(), "proxy") {
		t.Fatalf("http to an https node: %q", err)
	}
	// A field error answer has no top-level code and is the API's.
	if err := Describe(&api.Error{Status: 400, Detail: "Bad request.", Errors: map[string]api.FieldError{"a": {Detail: "A.", ErrorCode: "x_101"}}}); strings.Contains(err.Error(), "Regent API") {
		t.Fatalf("field errors: %q", err)
	}
	// What to do about a missing or wrong token, and an address where
	// nothing listens.
	if err := Describe(&api.Error{Status: 401, ErrorCode: api.CodeAuthMissing, Detail: "No token."}); !strings.Contains(err.Error(), "-token, -token-file or $REGENT_TOKEN") {
		t.Fatalf("no token: %q", err)
	}
	if err := Describe(&api.Error{Status: 401, ErrorCode: api.CodeAuthInvalid, Detail: "Bad token."}); !strings.Contains(err.Error(), "check the token") {
		t.Fatalf("bad token: %q", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = client.New("http://"+addr, "").Operator().Members(context.Background())
	if d := Describe(err); err == nil || !strings.Contains(d.Error(), addr) || !strings.Contains(d.Error(), "Point -addr or $REGENT_ADDR at one") {
		t.Fatalf("nothing listening: %v", d)
	}
}

// TestTokenSource: the hint of a refused token names where the token sent
// came from, and the ./data/root.token fallback is said on stderr each time
// it is used (once per connection), never when a token is given.
func TestTokenSource(t *testing.T) {
	t.Setenv(client.EnvAddr, "")
	t.Setenv(client.EnvCACert, "")
	t.Setenv(client.EnvToken, "")
	t.Chdir(t.TempDir())
	os.Mkdir("data", 0o700)
	os.WriteFile(filepath.Join("data", "root.token"), []byte("root\n"), 0o600)
	os.WriteFile("tok", []byte("file\n"), 0o600)
	refused := &api.Error{Status: 401, ErrorCode: api.CodeAuthInvalid, Detail: "The token is invalid, revoked or expired."}
	const note = "prog: using the root token in ./data/root.token (no -token, -token-file or $REGENT_TOKEN)\n"

	for _, tc := range []struct {
		name             string
		token, file, env string
		hint             string // in the answer to a refused token
		note             bool
	}{
		{name: "fallback", hint: "the token sent is the one in ./data/root.token, the fallback when no -token, -token-file or $REGENT_TOKEN is given", note: true},
		{name: "-token", token: "flag", hint: "check the token given with -token:"},
		{name: "-token-file", file: "tok", hint: "check the token in tok (-token-file):"},
		{name: "$REGENT_TOKEN", env: "env", hint: "check the token in $REGENT_TOKEN:"},
	} {
		t.Setenv(client.EnvToken, tc.env)
		var stderr bytes.Buffer
		c := testTool.Conn()
		c.Stderr = &stderr
		c.Token, c.TokenFile = tc.token, tc.file
		for range 2 { // the note once, however often the client is made
			if _, err := c.Client(); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		if got, want := stderr.String(), map[bool]string{true: note}[tc.note]; got != want {
			t.Errorf("%s: stderr %q, want %q", tc.name, got, want)
		}
		msg := c.Describe(refused).Error()
		if !strings.Contains(msg, tc.hint) {
			t.Errorf("%s: the hint does not say where the token came from:\n%s\nwant %q", tc.name, msg, tc.hint)
		}
		if tc.note && strings.Contains(msg, "check the token given with") {
			t.Errorf("%s: the hint blames flags that were not given:\n%s", tc.name, msg)
		}
	}
}

func TestOutput(t *testing.T) {
	var b bytes.Buffer
	Table(&b, [][]string{{"ID", "NAME", "OK"}, {"10", "a", YesNo(true)}, {"2", "bbbbbb", YesNo(false)}})
	if want := "ID  NAME    OK\n10  a       yes\n2   bbbbbb  no\n"; b.String() != want {
		t.Fatalf("table:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	PrintJSON(&b, map[string]int{"n": 1})
	if b.String() != "{\n  \"n\": 1\n}\n" {
		t.Fatalf("json: %q", b.String())
	}
}
