// Package cli holds what the two command-line clients of the Regent API
// share: the operator subcommands of regent-controller and the tenant CLI
// regentctl. It parses a command's flags and arguments, builds the SDK client
// from the connection flags (-addr, -token, -token-file, -ca-cert, -o and
// their environment variables), and renders results and API errors.
package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// Tool is one command-line program.
type Tool struct {
	// Name is the program's name, as in its usage lines; it is also the
	// User-Agent of its requests.
	Name string
	// AddrHelp and CACertHelp are the help of -addr and -ca-cert; the
	// environment variable each defaults to is appended.
	AddrHelp, CACertHelp string
	// Retry is the SDK's WithRetry: how many more times a request is sent
	// when the API answers that it did nothing and asks again (no leader).
	Retry int
}

// UsageError is a mistake on the command line: the program prints its usage
// and exits with status 2.
type UsageError string

func (u UsageError) Error() string { return string(u) }

// ErrHelp reports that -h printed a command's usage; the command then
// succeeds.
var ErrHelp = errors.New("help shown")

// NewFlagSet makes the flag set of the command name; -h prints
// "Usage: TOOL SYNOPSIS" and the flags.
func (t Tool) NewFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s %s\n\nFlags:\n", t.Name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args, flags and positional arguments in any order, and
// returns the positional ones. -h prints the usage to stdout and returns
// ErrHelp; other mistakes are usage errors.
func (t Tool) Parse(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				stdout.Write(buf.Bytes())
				return nil, ErrHelp
			}
			return nil, UsageError(fmt.Sprintf("%s: %v (run '%s %s -h' for its flags)", fs.Name(), err, t.Name, fs.Name()))
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// Describe renders an API error of c's client with its error code and field
// errors; other errors are returned as they are.
//
// Two mistakes get a hint at what to do: a controller that cannot be
// reached (connection refused, unknown host) and a missing or rejected
// token, whose hint names where the token sent came from (-token,
// -token-file, $REGENT_TOKEN or ./data/root.token).
func (c *Conn) Describe(err error) error {
	var e *api.Error
	if !errors.As(err, &e) {
		var op *net.OpError
		var dns *net.DNSError
		if errors.As(err, &dns) || errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w\n  (is a controller running at that address? Point -addr or $%s at one)", err, client.EnvAddr)
		}
		var to interface{ Timeout() bool }
		if c.Timeout > 0 && errors.As(err, &to) && to.Timeout() {
			return fmt.Errorf("%w\n  (no answer within -timeout %s: the controller is slow or stuck, or the request waits longer by design, as a blocking get does)", err, c.Timeout)
		}
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
	switch e.ErrorCode {
	case "":
		switch {
		case len(e.Errors) != 0: // the API's field errors
		case e.Status == http.StatusBadRequest && strings.Contains(e.Detail, "HTTP request to an HTTPS server"):
			// Go's TLS server answers a plain request so.
			fmt.Fprintf(&b, "\n  (the controller at -addr ($%s) speaks HTTPS: give its address as https://…, with -ca-cert or $%s if its certificate is not from a CA the system trusts)", client.EnvAddr, client.EnvCACert)
		default: // every answer of the API has a code
			fmt.Fprintf(&b, "\n  (this answer is not the Regent API's: it came from another server or a proxy at -addr ($%s))", client.EnvAddr)
		}
	case api.CodeAuthMissing:
		fmt.Fprintf(&b, "\n  (give a token with -token, -token-file or $%s)", client.EnvToken)
	case api.CodeAuthInvalid:
		fmt.Fprintf(&b, "\n  (%s)", c.tokenHint())
	}
	return errors.New(b.String())
}

// PrintJSON writes v as indented JSON and a newline.
func PrintJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Table writes rows as columns aligned with spaces.
func Table(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// YesNo renders a boolean table cell.
func YesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
