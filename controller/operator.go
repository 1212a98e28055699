package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// envClusterToken names the environment variable holding the cluster token
// for join.
const envClusterToken = "REGENT_CLUSTER_TOKEN"

// runOperator runs an operator subcommand against a running cluster.
func runOperator(cmd string, args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return operator(ctx, cmd, args, os.Stdout, os.Stderr)
}

// operator is runOperator with its streams, for tests.
func operator(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	switch cmd {
	case "members":
		return opMembers(ctx, args, stdout)
	case "join":
		return opJoin(ctx, args, stdout)
	case "leave":
		return opLeave(ctx, args, stdout)
	case "snapshot":
		if len(args) == 0 {
			return usageError{"snapshot needs a subcommand: save FILE or restore FILE"}
		}
		switch args[0] {
		case "save":
			return opSnapshotSave(ctx, args[1:], stdout)
		case "restore":
			return opSnapshotRestore(ctx, args[1:], stdout)
		}
		return usageError{fmt.Sprintf("unknown snapshot subcommand %q: use save FILE or restore FILE", args[0])}
	case "token":
		if len(args) == 0 || args[0] != "create" {
			return usageError{"token needs the subcommand create"}
		}
		return opTokenCreate(ctx, args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

// conn holds the flags every operator subcommand shares.
type conn struct {
	addr, token, tokenFile, caCert, output string
}

func (c *conn) register(fs *flag.FlagSet) {
	addr := os.Getenv(client.EnvAddr)
	if addr == "" {
		addr = client.DefaultAddr
	}
	fs.StringVar(&c.addr, "addr", addr, "`URL` of any controller node ($"+client.EnvAddr+")")
	fs.StringVar(&c.token, "token", "", "API `token` (default: the contents of -token-file if given, else $"+client.EnvToken+", else ./data/"+server.RootTokenFile+" if it exists)")
	fs.StringVar(&c.tokenFile, "token-file", "", "`file` holding the API token")
	fs.StringVar(&c.caCert, "ca-cert", os.Getenv(client.EnvCACert), "PEM `file` of the CA that signs the API's certificate ($"+client.EnvCACert+")")
	fs.StringVar(&c.output, "o", "table", "output `format`: table or json")
}

// check validates the shared flags after parsing.
func (c *conn) check() error {
	if c.output != "table" && c.output != "json" {
		return usageError{fmt.Sprintf("-o must be table or json, not %q", c.output)}
	}
	return nil
}

// resolveToken picks the token: -token, then an explicit -token-file, then
// $REGENT_TOKEN, then ./data/root.token if it exists.
func (c *conn) resolveToken() (string, error) {
	if c.token != "" {
		return c.token, nil
	}
	if c.tokenFile != "" {
		return readTokenFile(c.tokenFile)
	}
	if t := os.Getenv(client.EnvToken); t != "" {
		return t, nil
	}
	t, err := readTokenFile(filepath.Join("data", server.RootTokenFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return t, err
}

func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// client builds the SDK client for addr (the -addr flag unless overridden).
func (c *conn) client(addr string) (*client.Client, error) {
	token, err := c.resolveToken()
	if err != nil {
		return nil, err
	}
	var opts []client.Option
	if c.caCert != "" {
		pem, err := os.ReadFile(c.caCert)
		if err != nil {
			return nil, fmt.Errorf("CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate: %s holds no PEM certificates", c.caCert)
		}
		opts = append(opts, client.WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	if addr == "" {
		addr = c.addr
	}
	return client.New(addr, token, append(opts, client.WithUserAgent("regent-controller"))...), nil
}

// newFlags makes a subcommand's flag set; synopsis is its usage line.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: regent-controller %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// errHelp reports that -h was handled; the command then succeeds.
var errHelp = errors.New("help shown")

// parse parses args with flags and positional arguments in any order and
// returns the positional ones. -h prints the usage to stdout and returns
// errHelp; other mistakes are usage errors.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				stdout.Write(buf.Bytes())
				return nil, errHelp
			}
			return nil, usageError{fmt.Sprintf("%s: %v (run 'regent-controller %s -h' for its flags)", fs.Name(), err, fs.Name())}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// helpOK turns errHelp into success.
func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
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

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func opMembers(ctx context.Context, args []string, stdout io.Writer) error {
	var c conn
	fs := newFlags("members", "members [flags]")
	c.register(fs)
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("members takes no arguments, got %q", pos)}
	}
	if err := c.check(); err != nil {
		return err
	}
	cl, err := c.client("")
	if err != nil {
		return err
	}
	members, err := cl.Operator().Members(ctx)
	if err != nil {
		return describe(err)
	}
	if c.output == "json" {
		return printJSON(stdout, members)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAFT ADDR\tHTTP ADDR\tSUFFRAGE\tLEADER\tHEALTHY")
	for _, m := range members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.RaftAddr, m.HTTPAddr, m.Suffrage, yesNo(m.Leader), yesNo(m.Healthy))
	}
	return tw.Flush()
}

func opJoin(ctx context.Context, args []string, stdout io.Writer) error {
	var c conn
	var req api.JoinRequest
	var clusterToken string
	fs := newFlags("join", "join ADDR -node-id ID -raft-addr HOST:PORT -http-addr URL [flags]\n\n"+
		"Asks the cluster at ADDR (any member's HTTP address) to add a node as a voter. A node\n"+
		"started with 'server -join' does this itself.")
	c.register(fs)
	fs.StringVar(&req.NodeID, "node-id", "", "`id` of the node to add")
	fs.StringVar(&req.RaftAddr, "raft-addr", "", "raft `address` (host:port) of the node to add")
	fs.StringVar(&req.HTTPAddr, "http-addr", "", "HTTP API base `URL` of the node to add, e.g. http://10.0.0.2:8080")
	fs.StringVar(&clusterToken, "cluster-token", "", "the cluster's join `secret` (default $"+envClusterToken+")")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 1 {
		return usageError{"join needs exactly one ADDR: the HTTP address of a cluster member"}
	}
	if err := c.check(); err != nil {
		return err
	}
	var missing []string
	for name, v := range map[string]string{"-node-id": req.NodeID, "-raft-addr": req.RaftAddr, "-http-addr": req.HTTPAddr} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return usageError{"join needs " + strings.Join(missing, ", ")}
	}
	if clusterToken == "" {
		clusterToken = os.Getenv(envClusterToken)
	}
	cl, err := c.client(pos[0])
	if err != nil {
		return err
	}
	joined, err := cl.Operator().Join(ctx, req, clusterToken)
	if err != nil {
		return describe(err)
	}
	if c.output == "json" {
		return printJSON(stdout, joined)
	}
	fmt.Fprintf(stdout, "Node %s (raft %s, http %s) joined the cluster at %s.\n", joined.NodeID, joined.RaftAddr, joined.HTTPAddr, cl.BaseURL())
	return nil
}

func opLeave(ctx context.Context, args []string, stdout io.Writer) error {
	var c conn
	fs := newFlags("leave", "leave [NODE_ID] [flags]\n\n"+
		"Removes NODE_ID from the cluster; without it, the node at -addr.")
	c.register(fs)
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 1 {
		return usageError{fmt.Sprintf("leave takes at most one NODE_ID, got %q", pos)}
	}
	if err := c.check(); err != nil {
		return err
	}
	cl, err := c.client("")
	if err != nil {
		return err
	}
	var id string
	if len(pos) == 1 {
		id = pos[0]
	} else {
		h, err := cl.Health(ctx)
		if h == nil {
			return fmt.Errorf("asking %s for its node id: %w", cl.BaseURL(), describe(err))
		}
		id = h.NodeID
	}
	if err := cl.Operator().RemoveMember(ctx, id); err != nil {
		return describe(err)
	}
	if c.output == "json" {
		return printJSON(stdout, map[string]any{"removed": id})
	}
	fmt.Fprintf(stdout, "Node %s was removed from the cluster.\n", id)
	return nil
}

func opSnapshotSave(ctx context.Context, args []string, stdout io.Writer) error {
	var c conn
	fs := newFlags("snapshot save", "snapshot save FILE [flags]\n\n"+
		"Downloads a snapshot of the whole state into FILE (mode 0600), replacing it only once\n"+
		"the snapshot is complete.")
	c.register(fs)
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 1 {
		return usageError{"snapshot save needs exactly one FILE"}
	}
	if err := c.check(); err != nil {
		return err
	}
	cl, err := c.client("")
	if err != nil {
		return err
	}
	file := pos[0]
	n, err := saveAtomic(file, func(w io.Writer) (int64, error) { return cl.Operator().SnapshotSave(ctx, w) })
	if err != nil {
		return describe(err)
	}
	if c.output == "json" {
		return printJSON(stdout, map[string]any{"file": file, "bytes": n})
	}
	fmt.Fprintf(stdout, "Saved snapshot to %s (%d bytes).\n", file, n)
	return nil
}

// saveAtomic writes file through a temporary file in the same directory
// (mode 0600) that is synced and renamed over file only when write succeeds.
func saveAtomic(file string, write func(io.Writer) (int64, error)) (n int64, err error) {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return 0, err
	}
	if n, err = write(tmp); err != nil {
		return n, err
	}
	if err = tmp.Sync(); err != nil {
		return n, err
	}
	if err = tmp.Close(); err != nil {
		return n, err
	}
	if err = os.Rename(tmp.Name(), file); err != nil {
		return n, err
	}
	if d, derr := os.Open(dir); derr == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return n, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func opSnapshotRestore(ctx context.Context, args []string, stdout io.Writer) error {
	var c conn
	fs := newFlags("snapshot restore", "snapshot restore FILE [flags]\n\n"+
		"Replaces the whole state of the cluster with the snapshot in FILE. A snapshot the\n"+
		"cluster cannot read is refused and nothing changes.")
	c.register(fs)
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 1 {
		return usageError{"snapshot restore needs exactly one FILE"}
	}
	if err := c.check(); err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	cl, err := c.client("")
	if err != nil {
		return err
	}
	body := &countingReader{r: f}
	res, err := cl.Operator().SnapshotRestore(ctx, body)
	if err != nil {
		return describe(err)
	}
	if c.output == "json" {
		return printJSON(stdout, map[string]any{"file": pos[0], "bytes": body.n, "restored": res.Restored, "index": res.Index})
	}
	fmt.Fprintf(stdout, "Restored snapshot %s (%d bytes); the leader's applied index is now %d.\n", pos[0], body.n, res.Index)
	return nil
}

func opTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c conn
	var name, expires string
	var user, region, srv uint64
	fs := newFlags("token create", "token create [-name NAME] [-user ID] [-robot-region ID [-server ID]] [-expires TIME] [flags]\n\n"+
		"Creates an API token and prints its secret, which is shown only this once.")
	c.register(fs)
	fs.StringVar(&name, "name", "", "a `name` to tell the token apart")
	fs.Uint64Var(&user, "user", 0, "user `id` the token acts as (default: the caller)")
	fs.Uint64Var(&region, "robot-region", 0, "make a robot (agent) token bound to this region `id`")
	fs.Uint64Var(&srv, "server", 0, "bind the robot token to this server `id` too")
	fs.StringVar(&expires, "expires", "", "expiry `time` in RFC 3339, e.g. 2030-01-02T15:04:05Z (default: never)")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("token create takes no arguments, got %q", pos)}
	}
	if err := c.check(); err != nil {
		return err
	}
	if srv != 0 && region == 0 {
		return usageError{"-server needs -robot-region: only robot tokens are bound to a server"}
	}
	if expires != "" {
		if _, err := time.Parse(time.RFC3339, expires); err != nil {
			return usageError{fmt.Sprintf("-expires %q is not an RFC 3339 time such as 2030-01-02T15:04:05Z", expires)}
		}
	}
	in := &api.TokenInput{}
	if name != "" {
		in.Name = &name
	}
	if user != 0 {
		in.UserID = &user
	}
	if region != 0 {
		in.Kind, in.RegionID = new(api.TokenKindRobot), &region
		if srv != 0 {
			in.ServerID = &srv
		}
	}
	if expires != "" {
		in.Expires = &expires
	}
	cl, err := c.client("")
	if err != nil {
		return err
	}
	tok, _, err := cl.Tokens().Create(ctx, in)
	if err != nil {
		return describe(err)
	}
	if c.output == "json" {
		return printJSON(stdout, tok)
	}
	bound := ""
	if tok.Kind == api.TokenKindRobot {
		bound = ", bound to region " + strconv.FormatUint(tok.RegionID, 10)
		if tok.ServerID != 0 {
			bound += " and server " + strconv.FormatUint(tok.ServerID, 10)
		}
	}
	exp := "never expires"
	if tok.Expires != "" {
		exp = "expires " + tok.Expires
	}
	fmt.Fprintf(stderr, "Created %s token %d %q for user %d (member %d)%s; it %s.\nThe secret is shown only this once:\n",
		tok.Kind, tok.ID, tok.Name, tok.UserID, tok.MemberID, bound, exp)
	fmt.Fprintln(stdout, tok.Secret)
	return nil
}
