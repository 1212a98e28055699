// Command regentctl is the tenant command-line client of the Regent API,
// built on the Go SDK (pkg/client). It prints tables, or JSON with -o json.
//
//	regentctl member list -search name__icontains=acme -order -created
//	regentctl user create -username alice -email alice@example.com -admin
//	regentctl -o json token create -name ci
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

const usage = `Usage: regentctl [global flags] <resource> <command> [flags] [args]

Resources and commands:
  member  list | get ID | create -name NAME | update ID [-name NAME] | delete ID
  user    list | get ID | create -username NAME [-member ID -email E -first-name F -surname S -admin]
          | update ID [same flags] | delete ID
  token   list | get ID | create [-name N -user ID -robot-region ID -server ID -expires TIME] | delete ID
  region  list | get ID | create -name NAME [-customers ID,ID] | update ID [-name N -customers ID,ID]
          | delete ID

List flags:
  -search FIELD[__OP]=VALUE   keep matches (repeatable), e.g. -search name__icontains=acme
  -exclude FIELD[__OP]=VALUE  drop matches (repeatable)
  -limit N  -page N (from 0)  -order [-]FIELD  -all (every page)  -stale (any node answers)

Global flags (also accepted after the command):
  -addr URL       API address (default $REGENT_ADDR, else http://127.0.0.1:8080)
  -token TOKEN    API token (default: the contents of -token-file if given, else
                  $REGENT_TOKEN, else ./data/root.token if it exists)
  -token-file F   file holding the API token
  -ca-cert F      PEM CA of the API's certificate for https ($REGENT_CACERT)
  -o FORMAT       table (default) or json

Run 'regentctl <resource> <command> -h' for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// errHelp reports that -h was handled.
var errHelp = errors.New("help shown")

// run runs one regentctl command and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdout, stderr)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "regentctl: %v\n\n%s", err, usage)
		return 2
	}
	fmt.Fprintf(stderr, "regentctl: %v\n", describe(err))
	return 1
}

// globals are the flags every command accepts.
type globals struct {
	addr, token, tokenFile, caCert, output string
}

// register adds the global flags to fs. Registering on the command's flag
// set too lets them follow the command; both write the same variables.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", g.addr, "API `URL` ($"+client.EnvAddr+")")
	fs.Var(secret{&g.token}, "token", "API `token` (default: the contents of -token-file if given, else $"+client.EnvToken+", else ./data/root.token if it exists)")
	fs.StringVar(&g.tokenFile, "token-file", g.tokenFile, "`file` holding the API token")
	fs.StringVar(&g.caCert, "ca-cert", g.caCert, "PEM `file` of the CA of the API's certificate ($"+client.EnvCACert+")")
	fs.StringVar(&g.output, "o", g.output, "output `format`: table or json")
}

// secret is a string flag whose value the usage text never shows.
type secret struct{ p *string }

func (s secret) String() string { return "" }
func (s secret) Set(v string) error {
	*s.p = v
	return nil
}

// client builds the SDK client: the token is -token, an explicit
// -token-file, $REGENT_TOKEN, or ./data/root.token if it exists.
func (g *globals) client() (*client.Client, error) {
	if g.output != "table" && g.output != "json" {
		return nil, usageError{fmt.Sprintf("-o must be table or json, not %q", g.output)}
	}
	token := g.token
	if token == "" && g.tokenFile != "" {
		b, err := os.ReadFile(g.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		token = os.Getenv(client.EnvToken)
	}
	if token == "" {
		b, err := os.ReadFile(filepath.Join("data", "root.token"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	opts := []client.Option{client.WithUserAgent("regentctl")}
	if g.caCert != "" {
		pem, err := os.ReadFile(g.caCert)
		if err != nil {
			return nil, fmt.Errorf("CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate: %s holds no PEM certificates", g.caCert)
		}
		opts = append(opts, client.WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	return client.New(g.addr, token, opts...), nil
}

// cmd is one invocation: the globals, the command's flag set and streams.
type cmd struct {
	ctx    context.Context
	g      *globals
	fs     *flag.FlagSet
	stdout io.Writer
	stderr io.Writer
	name   string // e.g. "member update"
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{addr: os.Getenv(client.EnvAddr), caCert: os.Getenv(client.EnvCACert), output: "table"}
	if g.addr == "" {
		g.addr = client.DefaultAddr
	}
	top := flag.NewFlagSet("regentctl", flag.ContinueOnError)
	g.register(top)
	top.SetOutput(io.Discard)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return errHelp
		}
		return usageError{err.Error()}
	}
	rest := top.Args()
	if len(rest) == 0 {
		return usageError{"no resource given"}
	}
	if rest[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	res, ok := resources[rest[0]]
	if !ok {
		return usageError{fmt.Sprintf("unknown resource %q (member, user, token or region)", rest[0])}
	}
	if len(rest) < 2 {
		return usageError{fmt.Sprintf("%s needs a command: %s", rest[0], strings.Join(res.verbs(), ", "))}
	}
	run, ok := res[rest[1]]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q for %s (%s)", rest[1], rest[0], strings.Join(res.verbs(), ", "))}
	}
	name := rest[0] + " " + rest[1]
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	g.register(fs)
	return run.run(&cmd{ctx: ctx, g: g, fs: fs, stdout: stdout, stderr: stderr, name: name}, rest[2:])
}

// verb is one command of a resource.
type verb struct {
	synopsis string
	run      func(c *cmd, args []string) error
}

type resource map[string]verb

func (r resource) verbs() []string {
	out := make([]string, 0, len(r))
	for v := range r {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return verbOrder(out[i]) < verbOrder(out[j]) })
	return out
}

func verbOrder(v string) int {
	return strings.Index("list get create update delete", v)
}

var resources = map[string]resource{}

// parse parses the command's flags and positional arguments, in any order,
// and checks the number of positional arguments.
func (c *cmd) parse(args []string, synopsis string, npos int) ([]string, error) {
	var buf bytes.Buffer
	c.fs.SetOutput(&buf)
	c.fs.Usage = func() {
		fmt.Fprintf(c.fs.Output(), "Usage: regentctl %s %s\n\nFlags:\n", c.name, synopsis)
		c.fs.PrintDefaults()
	}
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.stdout.Write(buf.Bytes())
				return nil, errHelp
			}
			return nil, usageError{fmt.Sprintf("%s: %v (run 'regentctl %s -h' for its flags)", c.name, err, c.name)}
		}
		if c.fs.NArg() == 0 {
			break
		}
		pos = append(pos, c.fs.Arg(0))
		args = c.fs.Args()[1:]
	}
	if len(pos) != npos {
		return nil, usageError{fmt.Sprintf("usage: regentctl %s %s", c.name, synopsis)}
	}
	return pos, nil
}

// set reports which flags were given on the command line.
func (c *cmd) set() map[string]bool {
	m := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}

// describe renders an API error with its error code and field errors.
func describe(err error) error {
	var e *api.Error
	if !errors.As(err, &e) {
		return err
	}
	var b strings.Builder
	b.WriteString(e.Detail)
	switch {
	case e.ErrorCode != "":
		fmt.Fprintf(&b, " [%s, HTTP %d]", e.ErrorCode, e.Status)
	case e.Status != 0:
		fmt.Fprintf(&b, " [HTTP %d]", e.Status)
	}
	fields := make([]string, 0, len(e.Errors))
	for f := range e.Errors {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		fmt.Fprintf(&b, "\n  %s: %s [%s]", f, e.Errors[f].Detail, e.Errors[f].ErrorCode)
	}
	return errors.New(b.String())
}
