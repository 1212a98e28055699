package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/regentcloud/regent/controller/internal/cli"
	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/api"
)

// envClusterToken names the environment variable holding the cluster token
// for join (and for server, when no -cluster-token or cluster_token is given).
const envClusterToken = server.EnvClusterToken

// runOperator runs an operator subcommand against a running cluster.
func runOperator(cmd string, args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return operator(ctx, cmd, args, os.Stdout, os.Stderr)
}

// operator is runOperator with its streams, for tests. -h succeeds, and the
// usage errors of package cli are this command's usage errors.
func operator(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	err := dispatchOperator(ctx, cmd, args, stdout, stderr)
	var ue cli.UsageError
	var oe usageError
	switch {
	case errors.Is(err, cli.ErrHelp):
		return nil
	case errors.As(err, &ue):
		return usageError{msg: ue.Error(), cmd: helpName(cmd, args)}
	case errors.As(err, &oe) && oe.cmd == "":
		oe.cmd = helpName(cmd, args)
		return oe
	}
	return err
}

// helpName is the command whose -h helps with a mistake in "cmd args":
// "snapshot save", "members"; "" for an unknown command.
func helpName(cmd string, args []string) string {
	switch cmd {
	case "members", "join", "leave", "transfer-leader":
		return cmd
	case "snapshot", "token":
		if len(args) > 0 && (cmd == "snapshot" && (args[0] == "save" || args[0] == "restore") || cmd == "token" && args[0] == "create") {
			return cmd + " " + args[0]
		}
		return cmd
	}
	return ""
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

const snapshotUsage = `Usage: regent-controller snapshot save FILE [flags]
       regent-controller snapshot restore FILE [flags]

Run 'regent-controller snapshot save -h' or 'regent-controller snapshot restore -h' for the flags.
`

const tokenUsage = `Usage: regent-controller token create [flags]

Run 'regent-controller token create -h' for the flags.
`

func dispatchOperator(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	switch cmd {
	case "members":
		return opMembers(ctx, args, stdout, stderr)
	case "join":
		return opJoin(ctx, args, stdout, stderr)
	case "leave":
		return opLeave(ctx, args, stdout, stderr)
	case "transfer-leader":
		return opTransferLeader(ctx, args, stdout, stderr)
	case "snapshot":
		if len(args) == 0 {
			return usageError{msg: "snapshot needs a subcommand: save FILE or restore FILE"}
		}
		if isHelp(args[0]) {
			fmt.Fprint(stdout, snapshotUsage)
			return cli.ErrHelp
		}
		switch args[0] {
		case "save":
			return opSnapshotSave(ctx, args[1:], stdout, stderr)
		case "restore":
			return opSnapshotRestore(ctx, args[1:], stdout, stderr)
		}
		return usageError{msg: fmt.Sprintf("unknown snapshot subcommand %q: use save FILE or restore FILE", args[0])}
	case "token":
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprint(stdout, tokenUsage)
			return cli.ErrHelp
		}
		if len(args) == 0 || args[0] != "create" {
			return usageError{msg: "token needs the subcommand create"}
		}
		return opTokenCreate(ctx, args[1:], stdout, stderr)
	}
	return usageError{msg: fmt.Sprintf("unknown command %q", cmd)}
}

// tool is regent-controller as a client of the API.
var tool = cli.Tool{
	Name:       "regent-controller",
	AddrHelp:   "`URL` of any controller node",
	CACertHelp: "PEM `file` of the CA that signs the API's certificate",
}

// command makes a subcommand's flag set, synopsis its usage line, with the
// connection flags; notes about the connection go to stderr.
func command(name, synopsis string, stderr io.Writer) (*flag.FlagSet, *cli.Conn) {
	fs := tool.NewFlagSet(name, synopsis)
	c := tool.Conn()
	c.Stderr = stderr
	c.Register(fs)
	return fs, c
}

func opMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := command("members", "members [flags]", stderr)
	pos, err := tool.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{msg: fmt.Sprintf("members takes no arguments, got %q", pos)}
	}
	if err := c.Check(); err != nil {
		return err
	}
	cl, err := c.Client()
	if err != nil {
		return err
	}
	members, err := cl.Operator().Members(ctx)
	if err != nil {
		return c.Describe(err)
	}
	sortMembers(members)
	if c.JSON() {
		return cli.PrintJSON(stdout, members)
	}
	rows := [][]string{{"ID", "RAFT ADDR", "HTTP ADDR", "SUFFRAGE", "LEADER", "HEALTHY"}}
	for _, m := range members {
		rows = append(rows, []string{m.ID, m.RaftAddr, m.HTTPAddr, m.Suffrage, cli.YesNo(m.Leader), cli.YesNo(m.Healthy)})
	}
	return cli.Table(stdout, rows)
}

// sortMembers orders members by node id, numbers in ids by their value
// (c2 before c10), as operators number their nodes: the cluster answers
// in the order of its raft configuration, which is the order the nodes
// joined in (c1, c3, c2).
func sortMembers(members []api.ClusterMember) {
	slices.SortStableFunc(members, func(a, b api.ClusterMember) int { return compareNodeIDs(a.ID, b.ID) })
}

// compareNodeIDs compares a and b as text, except that runs of digits
// compare as numbers.
func compareNodeIDs(a, b string) int {
	x, y := a, b
	for x != "" && y != "" {
		dx, dy := digits(x), digits(y)
		if dx > 0 && dy > 0 {
			nx, ny := strings.TrimLeft(x[:dx], "0"), strings.TrimLeft(y[:dy], "0")
			if c := cmp.Compare(len(nx), len(ny)); c != 0 {
				return c
			}
			if c := strings.Compare(nx, ny); c != 0 {
				return c
			}
			x, y = x[dx:], y[dy:]
			continue
		}
		if x[0] != y[0] {
			return cmp.Compare(x[0], y[0])
		}
		x, y = x[1:], y[1:]
	}
	if c := cmp.Compare(len(x), len(y)); c != 0 {
		return c
	}
	return strings.Compare(a, b) // c01 and c1
}

// digits is the length of the run of ASCII digits s starts with.
func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

func opJoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var req api.JoinRequest
	var clusterToken string
	// join is authorised by the cluster token alone and goes to ADDR, so it
	// has no -addr, -token or -token-file.
	fs := tool.NewFlagSet("join", "join ADDR -node-id ID -raft-addr HOST:PORT -http-addr URL -cluster-token SECRET [flags]\n\n"+
		"Asks the cluster at ADDR (any member's HTTP address) to add a node as a voter. A node\n"+
		"started with 'server -join' does this itself.")
	c := tool.Conn()
	c.RegisterTransport(fs)
	fs.StringVar(&req.NodeID, "node-id", "", "`id` of the node to add")
	fs.StringVar(&req.RaftAddr, "raft-addr", "", "raft `address` (host:port) of the node to add")
	fs.StringVar(&req.HTTPAddr, "http-addr", "", "HTTP API base `URL` of the node to add, e.g. http://10.0.0.2:8080")
	fs.StringVar(&clusterToken, "cluster-token", "", "the cluster's join `secret` (default $"+envClusterToken+")")
	pos, err := tool.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{msg: "join needs exactly one ADDR: the HTTP address of a cluster member"}
	}
	if err := c.Check(); err != nil {
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
		return usageError{msg: "join needs " + strings.Join(missing, ", ")}
	}
	if clusterToken == "" {
		clusterToken = os.Getenv(envClusterToken)
	}
	if clusterToken == "" {
		return usageError{msg: "join needs the cluster token (the servers' cluster_token): -cluster-token or $" + envClusterToken}
	}
	c.Addr = pos[0]
	cl, err := c.Client()
	if err != nil {
		return err
	}
	joined, err := cl.Operator().Join(ctx, req, clusterToken)
	if err != nil {
		return c.Describe(err)
	}
	if c.JSON() {
		return cli.PrintJSON(stdout, joined)
	}
	fmt.Fprintf(stdout, "Node %s (raft %s, http %s) joined the cluster at %s.\n", joined.NodeID, joined.RaftAddr, joined.HTTPAddr, cl.BaseURL())
	return nil
}

func opLeave(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := command("leave", "leave [NODE_ID] [flags]\n\n"+
		"Removes NODE_ID from the cluster; without it, the node at -addr.", stderr)
	pos, err := tool.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{msg: fmt.Sprintf("leave takes at most one NODE_ID, got %q", pos)}
	}
	if err := c.Check(); err != nil {
		return err
	}
	cl, err := c.Client()
	if err != nil {
		return err
	}
	var id string
	if len(pos) == 1 {
		id = pos[0]
	} else {
		h, err := cl.Health(ctx)
		if h == nil {
			return fmt.Errorf("asking %s for its node id: %w", cl.BaseURL(), c.Describe(err))
		}
		id = h.NodeID
	}
	// Check first, to say what is wrong: the cluster's answer for an unknown
	// node is a bare 404, and removing the last voter cannot succeed.
	members, err := cl.Operator().Members(ctx)
	if err != nil {
		return c.Describe(err)
	}
	sortMembers(members)
	var ids []string
	found, voter, voters, leads := false, false, 0, false
	for _, m := range members {
		ids = append(ids, m.ID)
		found = found || m.ID == id
		leads = leads || m.ID == id && m.Leader
		if m.Suffrage == "voter" {
			voters++
			voter = voter || m.ID == id
		}
	}
	switch {
	case !found:
		return fmt.Errorf("node %q is not a member of the cluster (members: %s; see 'regent-controller members')", id, strings.Join(ids, ", "))
	case voter && voters == 1:
		return fmt.Errorf("node %q is the cluster's only voter and cannot leave it: stop the node instead, or add others first", id)
	}
	// A leader hands leadership over first, so the cluster does not wait
	// out an election once it is gone. If that fails, the removal still
	// goes ahead, and the others elect a leader.
	moved := ""
	if leads {
		if l, err := cl.Operator().TransferLeader(ctx, ""); err == nil {
			moved = l.ID
		}
	}
	if err := cl.Operator().RemoveMember(ctx, id); err != nil {
		return c.Describe(err)
	}
	if c.JSON() {
		return cli.PrintJSON(stdout, map[string]any{"removed": id})
	}
	if moved != "" {
		fmt.Fprintf(stdout, "Leadership moved from %s to %s first.\n", id, moved)
	}
	fmt.Fprintf(stdout, "Node %s was removed from the cluster.\n", id)
	return nil
}

func opTransferLeader(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := command("transfer-leader", "transfer-leader [-to NODE_ID] [flags]\n\n"+
		"Hands leadership to NODE_ID, or to the most up-to-date other voter, before\n"+
		"maintenance of the leader. Writes sent meanwhile wait for the new leader.", stderr)
	to := fs.String("to", "", "`id` of the voter to take over (default: the most up-to-date one)")
	pos, err := tool.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{msg: fmt.Sprintf("transfer-leader takes no arguments (use -to NODE_ID), got %q", pos)}
	}
	if err := c.Check(); err != nil {
		return err
	}
	cl, err := c.Client()
	if err != nil {
		return err
	}
	before, err := cl.Operator().Leader(ctx)
	if err != nil {
		return c.Describe(err)
	}
	start := time.Now()
	after, err := cl.Operator().TransferLeader(ctx, *to)
	if err != nil {
		return c.Describe(err)
	}
	if c.JSON() {
		return cli.PrintJSON(stdout, after)
	}
	if after.ID == before.ID {
		fmt.Fprintf(stdout, "Node %s already leads.\n", after.ID)
		return nil
	}
	fmt.Fprintf(stdout, "Leadership moved from %s to %s (%s) in %s.\n", before.ID, after.ID, after.HTTPAddr, time.Since(start).Round(time.Millisecond))
	return nil
}

func opSnapshotSave(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := command("snapshot save", "snapshot save FILE [flags]\n\n"+
		"Downloads a snapshot of the whole state into FILE (mode 0600), replacing it only once\n"+
		"the snapshot is complete.", stderr)
	pos, err := tool.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{msg: "snapshot save needs exactly one FILE"}
	}
	if err := c.Check(); err != nil {
		return err
	}
	cl, err := c.Client()
	if err != nil {
		return err
	}
	file := pos[0]
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		return fmt.Errorf("snapshot save: %s is a directory; give the snapshot's file name", file)
	}
	n, err := saveAtomic(file, func(w io.Writer) (int64, error) { return cl.Operator().SnapshotSave(ctx, w) })
	if err != nil {
		return c.Describe(err)
	}
	if c.JSON() {
		return cli.PrintJSON(stdout, map[string]any{"file": file, "bytes": n})
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
		// Name the file asked for, not the temporary one.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return 0, fmt.Errorf("cannot write %s in %s: %w", filepath.Base(file), dir, err)
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

func opSnapshotRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := command("snapshot restore", "snapshot restore FILE [flags]\n\n"+
		"Replaces the whole state of the cluster with the snapshot in FILE. A snapshot the\n"+
		"cluster cannot read is refused and nothing changes.", stderr)
	pos, err := tool.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{msg: "snapshot restore needs exactly one FILE"}
	}
	if err := c.Check(); err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("snapshot restore: %s is not a snapshot file (a directory or a device)", pos[0])
	}
	cl, err := c.Client()
	if err != nil {
		return err
	}
	body := &countingReader{r: f}
	res, err := cl.Operator().SnapshotRestore(ctx, body)
	if err != nil {
		return c.Describe(err)
	}
	if c.JSON() {
		return cli.PrintJSON(stdout, map[string]any{"file": pos[0], "bytes": body.n, "restored": res.Restored, "index": res.Index})
	}
	fmt.Fprintf(stdout, "Restored snapshot %s (%d bytes); the leader's applied index is now %d.\n", pos[0], body.n, res.Index)
	return nil
}

func opTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var name, expires string
	var user, region, srv uint64
	fs, c := command("token create", "token create [-name NAME] [-user ID] [-robot-region ID [-server ID]] [-expires TIME] [flags]\n\n"+
		"Creates an API token and prints its secret, which is shown only this once.", stderr)
	fs.StringVar(&name, "name", "", "a `name` to tell the token apart")
	fs.Uint64Var(&user, "user", 0, "user `id` the token acts as (default: the caller)")
	fs.Uint64Var(&region, "robot-region", 0, "make a robot (agent) token bound to this region `id`")
	fs.Uint64Var(&srv, "server", 0, "bind the robot token to this server `id` too")
	fs.StringVar(&expires, "expires", "", "expiry `time` in RFC 3339, e.g. 2030-01-02T15:04:05Z (default: never)")
	pos, err := tool.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{msg: fmt.Sprintf("token create takes no arguments, got %q", pos)}
	}
	if err := c.Check(); err != nil {
		return err
	}
	if srv != 0 && region == 0 {
		return usageError{msg: "-server needs -robot-region: only robot tokens are bound to a server"}
	}
	if expires != "" {
		if _, err := time.Parse(time.RFC3339, expires); err != nil {
			return usageError{msg: fmt.Sprintf("-expires %q is not an RFC 3339 time such as 2030-01-02T15:04:05Z", expires)}
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
	cl, err := c.Client()
	if err != nil {
		return err
	}
	tok, _, err := cl.Tokens().Create(ctx, in)
	if err != nil {
		return c.Describe(err)
	}
	if c.JSON() {
		return cli.PrintJSON(stdout, tok)
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
