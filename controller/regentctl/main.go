// Command regentctl is the tenant command-line client of the Regent API,
// built on the Go SDK (pkg/client). It prints tables, or JSON with -o json.
//
//	regentctl member list -search name__icontains=acme -order -created
//	regentctl user create -username alice -email alice@example.com -admin
//	regentctl -o json token create -name ci
//	regentctl iaas subnet create allocation_id=3 address_range=10.0.0.1/24 name=web
//	regentctl iaas subnet list -search name__icontains=web -columns id,address_range,vlan
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/regentcloud/regent/controller/internal/cli"
)

const usage = `Usage: regentctl [global flags] <resource> <command> [flags] [args]

Resources and commands:
  member  list | get ID | create -name NAME [-self-managed] | update ID [-name NAME -self-managed=B]
          | delete ID
  user    list | get ID | create -username NAME [-member ID -email E -first-name F -surname S -admin
          -global-active] | update ID [same flags but -member] | delete ID
  token   list | get ID | create [-name N -user ID -robot-region ID -server ID -expires TIME] | delete ID
  region  list | get ID | create -name NAME [-customers ID,ID] | update ID [-name N -customers ID,ID]
          | delete ID
          update of a member, user or region takes -if-match N too: it applies only if the
          object's modified_index is still N (else 409)
  iaas    SERVICE list | get ID | create [BODY] | update ID [BODY] | delete ID
          any CloudCIX /iaas/ service (asn, allocation, subnet, ip_address, domain, record,
          project, vm, ...); 'regentctl iaas help' lists them and what each accepts

Bodies of iaas create and update:
  -d JSON            the body, e.g. -d '{"name": "web", "vlan": 100}'
  -f FILE            the body from a file; -f - reads stdin
  KEY=VALUE          a field; VALUE is sent as a number, true, false or null when it reads
                     as one (JSON), else as a string: name=web vlan=100 dns=null
  KEY:=JSON          a field of any JSON: rules:='[{"port": 22}]' name:='"007"'
  Fields given as arguments are set on top of -d or -f. update sends a PATCH (only the
  fields given change); -put sends a PUT (replace); -if-match N updates only if the
  object's modified_index is still N (else 409).
  iaas get takes KEY=VALUE query parameters instead: iaas subnet_space get 3 space_type=free

Output of iaas commands:
  -o json            the API's content as it is (a list with its _metadata)
  -columns A,B,...   the table's columns (a.b for a nested field); the default is id and
                     a few fields of the service, or id and name

List flags:
  -search FIELD[__OP]=VALUE   keep matches (repeatable), e.g. -search name__icontains=acme
  -exclude FIELD[__OP]=VALUE  drop matches (repeatable)
  -limit N  -page N (from 0)  -order [-]FIELD  -all (every page)  -stale (any node answers)

Global flags (also accepted after the command):
  -addr URL       API address (default $REGENT_ADDR, else http://127.0.0.1:8080)
  -token TOKEN    API token (default: the contents of -token-file if given, else
                  $REGENT_TOKEN, else ./data/root.token if it exists, with a
                  note on stderr)
  -token-file F   file holding the API token
  -ca-cert F      PEM CA of the API's certificate for https ($REGENT_CACERT)
  -o FORMAT       table (default) or json
  -timeout D      give up on a request not done, its answer read in full, within D,
                  e.g. 30s (default: wait as long as it takes; a blocking get waits
                  up to its wait=)

Run 'regentctl <resource> -h' for the commands of a resource ('regentctl iaas
SERVICE -h' for a service's) and 'regentctl <resource> <command> -h' for the
flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// tool is regentctl as a client of the API.
var tool = cli.Tool{
	Name:       "regentctl",
	AddrHelp:   "API `URL`",
	CACertHelp: "PEM `file` of the CA of the API's certificate",
	// A leader election is over in seconds: a command run meanwhile
	// succeeds a moment later instead of failing with 503.
	Retry: 2,
}

// errNoResource: regentctl was run without a resource; the usage says
// what there is.
var errNoResource = cli.UsageError("no resource given")

// run runs one regentctl command and returns the exit status. stdin is read
// only by -f -.
//
// A mistake on the command line is one line and where to read more (the
// command's -h, 'iaas help' or regentctl -h), not the whole usage, which
// buried the line; the usage is printed for -h and when no resource is
// given.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	conn := tool.Conn()
	conn.Stderr = stderr
	help, err := dispatch(ctx, conn, args, stdin, stdout, stderr)
	var ue cli.UsageError
	switch {
	case err == nil, errors.Is(err, cli.ErrHelp):
		return 0
	case errors.Is(err, errNoResource):
		fmt.Fprintf(stderr, "regentctl: %v\n\n%s", err, usage)
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "regentctl: %v\n", err)
		if !strings.Contains(err.Error(), " -h'") { // Parse names the command's -h already
			fmt.Fprintf(stderr, "Run '%s' for usage.\n", help)
		}
		return 2
	case ctx.Err() != nil:
		// Ctrl-C or SIGTERM: the shell's status of a command ended by
		// SIGINT, not 1 and "context canceled" as if the API had failed.
		fmt.Fprintln(stderr, "regentctl: interrupted")
		return 130
	}
	fmt.Fprintf(stderr, "regentctl: %v\n", conn.Describe(err))
	return 1
}

// cmd is one invocation: the connection flags, the command's flag set and
// streams.
type cmd struct {
	ctx      context.Context
	conn     *cli.Conn
	fs       *flag.FlagSet
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	name     string // e.g. "member update"
	synopsis string // its arguments and flags, e.g. "ID [-name NAME] [flags]"
}

// dispatch runs the command of args. help is the command line that shows
// the usage fitting a mistake in args: the command's -h once the command
// is known, 'regentctl iaas help' for a mistake in an iaas service's name
// or command, else 'regentctl -h'.
func dispatch(ctx context.Context, conn *cli.Conn, args []string, stdin io.Reader, stdout, stderr io.Writer) (help string, err error) {
	help = "regentctl -h"
	// The connection flags go on the top flag set and on the command's, so
	// they may stand before or after the command.
	top := flag.NewFlagSet("regentctl", flag.ContinueOnError)
	conn.Register(top)
	top.SetOutput(io.Discard)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return help, cli.ErrHelp
		}
		return help, cli.UsageError(err.Error())
	}
	rest := top.Args()
	if len(rest) == 0 {
		return help, errNoResource
	}
	if rest[0] == "help" {
		fmt.Fprint(stdout, usage)
		return help, nil
	}
	var (
		name string
		v    verb
	)
	if rest[0] == "iaas" {
		help = "regentctl iaas help"
		name, v, rest, err = iaasCommand(rest[1:], stdout)
	} else {
		name, v, rest, err = resourceCommand(rest, stdout)
	}
	if err != nil {
		return help, err
	}
	help = "regentctl " + name + " -h"
	fs := tool.NewFlagSet(name, name+" "+v.synopsis)
	conn.Register(fs)
	return help, v.run(&cmd{ctx: ctx, conn: conn, fs: fs, stdin: stdin, stdout: stdout, stderr: stderr, name: name, synopsis: v.synopsis}, rest)
}

// resourceCommand finds the command of "RESOURCE VERB ARGS..." and returns
// its name, the verb and the arguments after it.
func resourceCommand(args []string, stdout io.Writer) (string, verb, []string, error) {
	res, ok := resources[args[0]]
	if !ok {
		return "", verb{}, nil, cli.UsageError(fmt.Sprintf("unknown resource %q (member, user, token, region or iaas)", args[0]))
	}
	if len(args) < 2 {
		return "", verb{}, nil, cli.UsageError(fmt.Sprintf("%s needs a command: %s", args[0], strings.Join(res.verbs(), ", ")))
	}
	if isHelp(args[1]) {
		fmt.Fprint(stdout, commandsUsage(args[0], res.verbs(), func(v string) string { return res[v].synopsis }))
		return "", verb{}, nil, cli.ErrHelp
	}
	v, ok := res[args[1]]
	if !ok {
		return "", verb{}, nil, cli.UsageError(fmt.Sprintf("unknown command %q for %s (%s)", args[1], args[0], strings.Join(res.verbs(), ", ")))
	}
	return args[0] + " " + args[1], v, args[2:], nil
}

// isHelp reports whether arg, where a command is expected, asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// commandsUsage is the usage of "regentctl NAME -h" (NAME is a resource
// such as "member", or "iaas SERVICE"): its commands with the synopsis of
// each.
func commandsUsage(name string, verbs []string, synopsis func(string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: regentctl %s COMMAND [flags] [args]\n\nCommands:\n", name)
	rows := make([][]string, len(verbs))
	for i, v := range verbs {
		rows[i] = []string{"  " + v, synopsis(v)}
	}
	cli.Table(&b, rows)
	fmt.Fprintf(&b, "\nRun 'regentctl %s COMMAND -h' for the flags of a command.\n", name)
	return b.String()
}

// verb is one command of a resource.
type verb struct {
	synopsis string // its arguments and flags, e.g. "ID [flags]"
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
func (c *cmd) parse(args []string, npos int) ([]string, error) {
	pos, err := tool.Parse(c.fs, args, c.stdout)
	if err != nil {
		return nil, err
	}
	if len(pos) != npos {
		return nil, cli.UsageError(fmt.Sprintf("usage: regentctl %s %s", c.name, c.synopsis))
	}
	return pos, nil
}

// set reports which flags were given on the command line.
func (c *cmd) set() map[string]bool {
	m := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}
