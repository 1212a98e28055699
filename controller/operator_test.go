package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/api"
)

// node starts a controller for one test; bootstrap makes it a new cluster's
// first node, and its root token is returned.
func node(t *testing.T, id string, bootstrap bool, clusterToken string) (*server.Server, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := server.New(server.Config{
		NodeID: id, DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", Bootstrap: bootstrap,
		ClusterToken: clusterToken, LogLevel: "off",
		HeartbeatTimeout: "50ms", ElectionTimeout: "50ms", LeaderLeaseTimeout: "50ms",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	if !bootstrap {
		return s, ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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

// op runs an operator command and returns its stdout and stderr.
func op(t *testing.T, cmd string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := operator(ctx, cmd, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func mustOp(t *testing.T, cmd string, args ...string) string {
	t.Helper()
	out, _, err := op(t, cmd, args...)
	if err != nil {
		t.Fatalf("%s %q: %v", cmd, args, err)
	}
	return out
}

func TestOperatorCommands(t *testing.T) {
	s1, tok := node(t, "node1", true, "join-secret-16-bytes")
	auth := []string{"-addr", s1.URL(), "-token", tok}

	out := mustOp(t, "members", auth...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ID RAFT ADDR HTTP ADDR SUFFRAGE LEADER HEALTHY" {
		t.Fatalf("members table:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "node1" || f[2] != s1.URL() || f[3] != "voter" || f[4] != "yes" || f[5] != "yes" {
		t.Fatalf("members row: %q", lines[1])
	}

	// A second node, started without -bootstrap or -join, is added by join
	// and taken out by leave (its id found through -addr).
	s2, _ := node(t, "node2", false, "join-secret-16-bytes")
	_, _, err := op(t, "join", s1.URL(), "-node-id", "node2", "-raft-addr", s2.Cluster().Addr(), "-http-addr", s2.URL(), "-cluster-token", "wrong")
	if err == nil || !strings.Contains(err.Error(), "regent_operator_join_201") || !strings.Contains(err.Error(), "HTTP 403") {
		t.Fatalf("join with a wrong cluster token: %v", err)
	}
	out = mustOp(t, "join", s1.URL(), "-node-id", "node2", "-raft-addr", s2.Cluster().Addr(), "-http-addr", s2.URL(), "-cluster-token", "join-secret-16-bytes")
	if !strings.Contains(out, "Node node2") {
		t.Fatalf("join: %s", out)
	}
	var members []api.ClusterMember
	deadline := time.Now().Add(5 * time.Second)
	for {
		out = mustOp(t, "members", append(auth, "-o", "json")...)
		members = nil
		if err := json.Unmarshal([]byte(out), &members); err != nil {
			t.Fatalf("members -o json: %v\n%s", err, out)
		}
		if len(members) == 2 && members[1].Healthy || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(members) != 2 || members[1].ID != "node2" || members[1].HTTPAddr != s2.URL() || !members[1].Healthy || members[1].Leader {
		t.Fatalf("members after join: %+v", members)
	}
	// transfer-leader: to a named node, and back to the most up-to-date
	// one; a node that is not a voter is refused.
	if _, _, err := op(t, "transfer-leader", append(auth, "-to", "ghost")...); err == nil || !strings.Contains(err.Error(), "regent_operator_transfer_102") {
		t.Fatalf("transfer-leader -to ghost: %v", err)
	}
	out = mustOp(t, "transfer-leader", append(auth, "-to", "node2")...)
	if !strings.HasPrefix(out, "Leadership moved from node1 to node2 ("+s2.URL()+") in ") {
		t.Fatalf("transfer-leader -to node2: %q", out)
	}
	out = mustOp(t, "transfer-leader", append(auth, "-o", "json")...)
	var leader api.LeaderInfo
	if err := json.Unmarshal([]byte(out), &leader); err != nil || leader.ID != "node1" || leader.HTTPAddr != s1.URL() {
		t.Fatalf("transfer-leader back: %v %q", err, out)
	}
	out = mustOp(t, "transfer-leader", append(auth, "-to", "node1")...)
	if out != "Node node1 already leads.\n" {
		t.Fatalf("transfer-leader to the leader: %q", out)
	}
	// leave of the leader: it hands leadership over first.
	mustOp(t, "transfer-leader", append(auth, "-to", "node2")...)
	out = mustOp(t, "leave", "-addr", s2.URL(), "-token", tok)
	if out != "Leadership moved from node2 to node1 first.\nNode node2 was removed from the cluster.\n" {
		t.Fatalf("leave: %q", out)
	}
	out = mustOp(t, "members", append(auth, "-o", "json")...)
	if members = nil; json.Unmarshal([]byte(out), &members) != nil || len(members) != 1 {
		t.Fatalf("members after leave: %s", out)
	}
	// The removed node keeps running, and its /healthz says it is out.
	var health api.Health
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(s2.URL() + "/healthz")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&health)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz of the removed node: %v %+v", err, health)
		}
	}
	// raft sends the removal to the removed node as it stops replicating
	// to it, so the node knows (it used to answer 200 with its old leader
	// until an election timeout, then "no leader").
	if !strings.HasPrefix(health.Status, "not a member of the cluster") {
		t.Errorf("removed node's /healthz: %q", health.Status)
	}
	_, _, err = op(t, "leave", append(auth, "ghost")...)
	if err == nil || !strings.Contains(err.Error(), `node "ghost" is not a member of the cluster (members: node1;`) {
		t.Fatalf("leave ghost: %v", err)
	}
	// The last voter cannot leave, and trying changes nothing: the node
	// keeps its HTTP address.
	stdout, _, err := op(t, "leave", auth...)
	if err == nil || !strings.Contains(err.Error(), `node "node1" is the cluster's only voter`) || stdout != "" {
		t.Fatalf("leave of the last voter: %v, stdout %q", err, stdout)
	}
	out = mustOp(t, "members", append(auth, "-o", "json")...)
	if members = nil; json.Unmarshal([]byte(out), &members) != nil || len(members) != 1 || members[0].HTTPAddr != s1.URL() {
		t.Fatalf("members after refused leave: %s", out)
	}

	// token create: the secret alone on stdout, the rest on stderr.
	secret, info, err := op(t, "token", append([]string{"create", "-name", "ci", "-expires", "2099-01-02T03:04:05Z"}, auth...)...)
	if err != nil {
		t.Fatal(err)
	}
	secret = strings.TrimSpace(secret)
	if !strings.HasPrefix(secret, "rgt_") || strings.Contains(secret, "\n") || !strings.Contains(info, `"ci"`) || !strings.Contains(info, "2099-01-02T03:04:05Z") {
		t.Fatalf("token create: stdout %q stderr %q", secret, info)
	}
	// The new token works (it is the root user's, so global), read from a file.
	tf := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(tf, []byte(secret+"\n"), 0o600)
	mustOp(t, "members", "-addr", s1.URL(), "-token-file", tf)
	out = mustOp(t, "token", "create", "-o", "json", "-addr", s1.URL(), "-token-file", tf)
	var created api.Token
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Secret == "" || created.Kind != api.TokenKindUser {
		t.Fatalf("token create -o json: %v %s", err, out)
	}
	_, _, err = op(t, "token", append([]string{"create", "-robot-region", "999"}, auth...)...)
	if err == nil || !strings.Contains(err.Error(), "region_id: Region 999 does not exist.") {
		t.Fatalf("robot token for a missing region: %v", err)
	}

	// snapshot save writes atomically with mode 0600; restore reads it back.
	dir := t.TempDir()
	file := filepath.Join(dir, "regent.snap")
	out = mustOp(t, "snapshot", append([]string{"save", file}, auth...)...)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() == 0 || !strings.Contains(out, file) {
		t.Fatalf("snapshot save: %s, mode %v, %d bytes", out, fi.Mode(), fi.Size())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("snapshot save left %d files in the directory", len(entries))
	}
	out = mustOp(t, "snapshot", "restore", file, "-o", "json", "-addr", s1.URL(), "-token", tok)
	var res struct {
		Bytes    int64 `json:"bytes"`
		Restored bool  `json:"restored"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Restored || res.Bytes != fi.Size() {
		t.Fatalf("snapshot restore: %v %s", err, out)
	}
	// A failed save leaves the old file alone and no temporary file behind.
	os.WriteFile(file, []byte("old"), 0o600)
	if _, _, err := op(t, "snapshot", "save", file, "-addr", s1.URL(), "-token", "wrong"); err == nil || !strings.Contains(err.Error(), "regent_auth_002") {
		t.Fatalf("snapshot save with a bad token: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "old" {
		t.Fatalf("failed save changed the file: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("failed save left %d files", len(entries))
	}
	// A directory is neither a place to save to nor a snapshot, and a
	// directory that does not exist is named.
	if _, _, err := op(t, "snapshot", append([]string{"save", dir}, auth...)...); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("save to a directory: %v", err)
	}
	if _, _, err := op(t, "snapshot", append([]string{"save", filepath.Join(dir, "no", "x.snap")}, auth...)...); err == nil ||
		err.Error() != "cannot write x.snap in "+filepath.Join(dir, "no")+": no such file or directory" {
		t.Fatalf("save into a missing directory: %v", err)
	}
	if _, _, err := op(t, "snapshot", append([]string{"restore", dir}, auth...)...); err == nil || !strings.Contains(err.Error(), "is not a snapshot file") {
		t.Fatalf("restore a directory: %v", err)
	}
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a snapshot"), 0o600)
	if _, _, err := op(t, "snapshot", append([]string{"restore", garbage}, auth...)...); err == nil || !strings.Contains(err.Error(), "regent_operator_snapshot_101") {
		t.Fatalf("restore garbage: %v", err)
	}
}

// TestOperatorMembersSorted: members lists the nodes by id, numbers by
// their value (c2 before c10), in the table and in JSON, whatever order
// the cluster answers in (its raft configuration's: the order of joins).
func TestOperatorMembersSorted(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"content":[{"id":"c1","suffrage":"voter","leader":true},{"id":"c3","suffrage":"voter"},`+
			`{"id":"c10","suffrage":"voter"},{"id":"c2","suffrage":"voter"},{"id":"b7","suffrage":"nonvoter"}]}`)
	}))
	defer ts.Close()
	want := []string{"b7", "c1", "c2", "c3", "c10"}
	out := mustOp(t, "members", "-addr", ts.URL, "-token", "tk")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		got = append(got, strings.Fields(line)[0])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("table order %q, want %q:\n%s", got, want, out)
	}
	var members []api.ClusterMember
	if err := json.Unmarshal([]byte(mustOp(t, "members", "-addr", ts.URL, "-token", "tk", "-o", "json")), &members); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, m := range members {
		got = append(got, m.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("JSON order %q, want %q", got, want)
	}
	for _, tc := range []struct {
		a, b string
		want int
	}{{"c2", "c10", -1}, {"c10", "c10", 0}, {"ctl-9", "ctl-10", -1}, {"a", "a1", -1}, {"c01", "c1", -1}, {"node", "c1", 1}, {"c1b", "c1a", 1}} {
		if got := compareNodeIDs(tc.a, tc.b); got != tc.want {
			t.Errorf("compareNodeIDs(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestOperatorLeaveSelf(t *testing.T) {
	// leave without an id asks /healthz of -addr for the node id.
	var deleted string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/healthz":
			io.WriteString(w, `{"status":"ok","node_id":"ctl-3","leader":"ctl-1","is_leader":false,"applied_index":9}`)
		case r.Method == http.MethodGet && r.URL.Path == "/v1/operator/members":
			io.WriteString(w, `{"content":[{"id":"ctl-1","suffrage":"voter","leader":true},{"id":"ctl-3","suffrage":"voter"}]}`)
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/operator/members/"):
			if r.Header.Get("X-Auth-Token") != "tk" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			deleted = strings.TrimPrefix(r.URL.Path, "/v1/operator/members/")
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer ts.Close()
	out := mustOp(t, "leave", "-addr", ts.URL, "-token", "tk", "-o", "json")
	if deleted != "ctl-3" || strings.TrimSpace(out) != `{
  "removed": "ctl-3"
}` {
		t.Fatalf("deleted %q, output %q", deleted, out)
	}
}

// TestOperatorRootTokenFallback: an operator command run without a token
// where ./data/root.token exists uses that file and says so on stderr; when
// the cluster refuses it (another cluster's data dir), the error names the
// file rather than -token, -token-file or $REGENT_TOKEN, none of which was
// given.
func TestOperatorRootTokenFallback(t *testing.T) {
	s, tok := node(t, "node1", true, "")
	t.Setenv("REGENT_TOKEN", "")
	t.Chdir(t.TempDir())
	os.Mkdir("data", 0o700)
	const note = "regent-controller: using the root token in ./data/root.token (no -token, -token-file or $REGENT_TOKEN)\n"

	os.WriteFile(filepath.Join("data", server.RootTokenFile), []byte(tok+"\n"), 0o600)
	out, errOut, err := op(t, "members", "-addr", s.URL(), "-o", "json")
	var members []api.ClusterMember
	if err != nil || json.Unmarshal([]byte(out), &members) != nil || len(members) != 1 || errOut != note {
		t.Fatalf("members: %v\nstdout:\n%s\nstderr: %q", err, out, errOut)
	}
	if _, errOut, err := op(t, "members", "-addr", s.URL(), "-token", tok); err != nil || errOut != "" {
		t.Fatalf("members -token: %v, stderr %q", err, errOut)
	}

	os.WriteFile(filepath.Join("data", server.RootTokenFile), []byte("rgt_anotherclusterstokenxxxxxxxxxxxx\n"), 0o600)
	_, errOut, err = op(t, "token", "create", "-name", "x", "-addr", s.URL())
	if err == nil || errOut != note || !strings.Contains(err.Error(), "HTTP 401") ||
		!strings.Contains(err.Error(), "the token sent is the one in ./data/root.token") || strings.Contains(err.Error(), "check the token given with") {
		t.Fatalf("token create with another cluster's root token: %v\nstderr: %q", err, errOut)
	}
}

func TestOperatorUsage(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		args []string
		want string
	}{
		{"frobnicate", nil, `unknown command "frobnicate"`},
		{"snapshot", nil, "save FILE or restore FILE"},
		{"snapshot", []string{"load", "x"}, `unknown snapshot subcommand "load"`},
		{"snapshot", []string{"save"}, "exactly one FILE"},
		{"token", []string{"delete"}, "create"},
		{"token", []string{"create", "-server", "3"}, "-server needs -robot-region"},
		{"token", []string{"create", "-expires", "tomorrow"}, "RFC 3339"},
		{"join", []string{"http://x", "-node-id", "n"}, "join needs -http-addr, -raft-addr"},
		{"join", nil, "exactly one ADDR"},
		{"join", []string{"http://x", "-node-id", "n", "-raft-addr", "h:1", "-http-addr", "http://h:2"}, "join needs the cluster token"},
		{"join", []string{"http://x", "-token", "t"}, "flag provided but not defined: -token"},
		{"members", []string{"-o", "yaml"}, "-o must be table or json"},
		{"members", []string{"-bogus"}, "flag provided but not defined: -bogus"},
		{"leave", []string{"a", "b"}, "at most one NODE_ID"},
		{"transfer-leader", []string{"node2"}, "use -to NODE_ID"},
	} {
		_, _, err := op(t, tc.cmd, tc.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want a usage error containing %q", tc.cmd, tc.args, err, tc.want)
		}
	}
	out, _, err := op(t, "snapshot", "save", "-h")
	if err != nil || !strings.Contains(out, "Usage: regent-controller snapshot save FILE") || !strings.Contains(out, "-addr") {
		t.Fatalf("snapshot save -h: %v\n%s", err, out)
	}
	// -h of a command group names its subcommands; it is not a mistake.
	for cmd, want := range map[string]string{"snapshot": "regent-controller snapshot restore FILE", "token": "regent-controller token create"} {
		if out, _, err := op(t, cmd, "-h"); err != nil || !strings.Contains(out, want) {
			t.Errorf("%s -h: %v\n%s", cmd, err, out)
		}
	}
	// join takes no API token, so its help offers none.
	if out, _, err := op(t, "join", "-h"); err != nil || strings.Contains(out, "  -token ") || strings.Contains(out, "  -addr ") || !strings.Contains(out, "-cluster-token") {
		t.Errorf("join -h: %v\n%s", err, out)
	}
	// A mistake in a subcommand points at that subcommand's -h; an unknown
	// command gets the program's usage.
	for _, tc := range []struct {
		cmd  string
		args []string
		want string
	}{
		{"leave", []string{"a", "b"}, "Run 'regent-controller leave -h' for its usage.\n"},
		{"snapshot", []string{"restore"}, "Run 'regent-controller snapshot restore -h' for its usage.\n"},
		{"token", nil, "Run 'regent-controller token -h' for its usage.\n"},
		{"members", []string{"-x"}, "(run 'regent-controller members -h' for its flags)\n"},
		{"nope", nil, "Commands:"},
	} {
		_, _, err := op(t, tc.cmd, tc.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(ue.message(), tc.want) {
			t.Errorf("%s %q: %v, want a message containing %q", tc.cmd, tc.args, err, tc.want)
		}
	}
	// A transport error names the address.
	_, _, err = op(t, "members", "-addr", "http://127.0.0.1:1", "-token", "x")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("members against nothing: %v", err)
	}
}

// TestBackupUnitCommand runs the snapshot command of
// deploy/regent-backup.service as the unit does: the API address is not on
// the command line but in the environment the unit reads from its
// EnvironmentFile ($REGENT_ADDR), so the same unit works for any node's
// address and scheme.
func TestBackupUnitCommand(t *testing.T) {
	unit, err := os.ReadFile("../deploy/regent-backup.service")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "\\\n", " ")
	// The shell's timestamp in the file name, as one word.
	text = strings.ReplaceAll(text, "$(date -u +%%Y%%m%%dT%%H%%M%%SZ)", "now")
	if !strings.Contains(text, "\nEnvironmentFile=-/etc/regent/backup.env\n") {
		t.Fatal("the backup unit does not read /etc/regent/backup.env")
	}
	var args []string
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "ExecStart="); ok {
			_, cmd, ok := strings.Cut(rest, "regent-controller snapshot save ")
			if !ok {
				t.Fatalf("ExecStart is not a snapshot save: %s", line)
			}
			args = strings.Fields(strings.TrimSuffix(strings.TrimSpace(cmd), "'"))
		}
	}
	if len(args) == 0 || strings.Contains(strings.Join(args, " "), "-addr") {
		t.Fatalf("backup unit's snapshot save arguments %q: want no -addr (it comes from $REGENT_ADDR)", args)
	}

	s, tok := node(t, "node1", true, "")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "backup.token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "regent-now.snap") // the unit's name, its timestamp "now"
	for i, a := range args {
		switch {
		case a == "/etc/regent/backup.token":
			args[i] = tokenFile
		case strings.HasPrefix(a, "/var/backups/regent/"):
			args[i] = snap
		}
	}
	t.Setenv("REGENT_ADDR", s.URL())
	t.Setenv("REGENT_CACERT", "")
	mustOp(t, "snapshot", append([]string{"save"}, args...)...)
	if st, err := os.Stat(snap); err != nil || st.Size() == 0 {
		t.Fatalf("no snapshot written: %v", err)
	}
}
