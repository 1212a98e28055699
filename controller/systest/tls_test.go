package systest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/testca"
)

// tlsFlags writes node i's HTTPS certificate of httpCA and raft
// certificate of raftCA into dir (over what is there) and returns the
// flags that name them and the CA files.
func tlsFlags(t *testing.T, dir string, i int, httpCA *testca.CA, httpCAFile string, raftCA *testca.CA, raftCAFile string) []string {
	name := "node" + itoa(uint64(i))
	hcert, hkey := httpCA.WriteFiles(t, dir, name+"-http")
	rcert, rkey := raftCA.WriteFiles(t, dir, name+"-raft")
	return []string{"-http-tls-cert", hcert, "-http-tls-key", hkey, "-http-tls-ca", httpCAFile,
		"-raft-tls-cert", rcert, "-raft-tls-key", rkey, "-raft-tls-ca", raftCAFile}
}

// TestClusterTLS: three nodes with the API over HTTPS and mutual TLS on
// raft (certificates of one CA) form a cluster (joins over https://), a
// write sent to a follower is forwarded to the leader over HTTPS, and a
// node whose raft certificate comes from another CA never becomes a
// member.
func TestClusterTLS(t *testing.T) {
	base := t.TempDir()
	ca, rogue := testca.New(t, "regent test CA"), testca.New(t, "another CA")
	caPath := ca.WriteCA(t, filepath.Join(base, "ca.pem"))
	rogueCAPath := rogue.WriteCA(t, filepath.Join(base, "rogue-ca.pem"))
	hc := newClient(8)
	hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	c := &cluster{t: t, base: base, hc: hc}
	t.Cleanup(c.cleanup)
	tlsArgs := func(i int, raftCA *testca.CA, raftCAPath string) []string {
		return tlsFlags(t, base, i, ca, caPath, raftCA, raftCAPath)
	}
	ct := "systest-" + randomHex(12)
	n1 := newNode(t, base, "node1", append([]string{"-bootstrap", "-cluster-token", ct}, tlsArgs(1, ca, caPath)...)...)
	n1.https = true
	c.nodes = append(c.nodes, n1)
	n1.start()
	c.token = waitRootToken(t, n1, 30*time.Second)
	for i := 2; i <= 3; i++ {
		n := newNode(t, base, "node"+itoa(uint64(i)), append([]string{"-join", n1.URL(), "-cluster-token", ct}, tlsArgs(i, ca, caPath)...)...)
		n.https = true
		c.nodes = append(c.nodes, n)
		n.start()
	}
	c.waitVoters(n1, 3, 60*time.Second)
	for _, n := range c.nodes {
		c.waitLocalReady(n, 30*time.Second)
	}
	leader := c.leader(30 * time.Second)
	follower := c.followers(leader)[0]
	r := c.must(c.do(follower, http.MethodPost, "/membership/member/", map[string]any{"name": "over-tls"}), http.StatusCreated, "write through a follower over HTTPS")
	if to := r.Header.Get("X-Regent-Forwarded-To"); !strings.HasPrefix(to, "https://") {
		t.Errorf("the follower forwarded to %q, want an https:// leader", to)
	}
	id, err := createdID(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	c.must(c.do(leader, http.MethodGet, "/membership/member/"+itoa(id)+"/", nil), http.StatusOK, "read on the leader")
	// Plain HTTP is not served.
	if resp, err := newClient(1).Get("http://" + leader.httpAddr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the API answered plain HTTP")
		}
	}

	// A node whose raft certificate another CA signed (its HTTPS one is
	// good, so its join request is heard) never joins the raft group.
	n4 := newNode(t, base, "node4", append([]string{"-join", n1.URL(), "-cluster-token", ct}, tlsArgs(4, rogue, rogueCAPath)...)...)
	n4.https = true
	c.nodes = append(c.nodes, n4)
	n4.start()
	time.Sleep(5 * time.Second)
	body := c.must(c.do(leader, http.MethodGet, "/v1/operator/members", nil), http.StatusOK, "members").Body
	var list struct {
		Content []struct {
			ID       string `json:"id"`
			Suffrage string `json:"suffrage"`
		} `json:"content"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, m := range list.Content {
		if m.Suffrage == "voter" {
			voters++
		}
		if m.ID == "node4" && m.Suffrage == "voter" {
			t.Errorf("the node with a foreign raft certificate became a voter: %s", body)
		}
	}
	if voters != 3 {
		t.Errorf("%d voters after the foreign node tried, want 3: %s", voters, body)
	}
	members := string(body)
	c.must(c.do(follower, http.MethodPost, "/membership/member/", map[string]any{"name": "still-writes"}), http.StatusCreated, "a write after the refused node")
	t.Logf("members after the foreign node tried: %s", members)
}

// TestClusterTLSRotation: a running 3-node cluster with HTTPS and raft
// mutual TLS moves to a new CA with SIGHUP and no restart, as
// docs/operations.md tells an operator to: both CAs in the CA file, then
// every node's certificates replaced in place, then the old CA out; a
// SIGHUP to every process after each step. The processes stay up; every
// node then serves a certificate of the new CA, reports its expiry on
// /metrics, and a fourth node that knows only the new CA joins (HTTPS to
// the leader, raft both ways) and takes writes, which it forwards to the
// leader over HTTPS. The nodes keep an audit trail: the leader's records
// the forwarded write, and a logrotate move with a SIGHUP starts a new
// file.
func TestClusterTLSRotation(t *testing.T) {
	base := t.TempDir()
	oldCA, newCA := testca.New(t, "old CA"), testca.New(t, "new CA")
	caPath := oldCA.WriteCA(t, filepath.Join(base, "ca.pem"))
	hc := newClient(8)
	hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: oldCA.Pool, MinVersion: tls.VersionTLS12}
	c := &cluster{t: t, base: base, hc: hc}
	t.Cleanup(c.cleanup)
	// certs writes node i's HTTPS and raft certificates of ca into dir
	// (over what is there) and returns the flags naming them.
	certs := func(ca *testca.CA, dir string, i int, caFile string) []string {
		return tlsFlags(t, dir, i, ca, caFile, ca, caFile)
	}
	ct := "systest-" + randomHex(12)
	for i := 1; i <= 3; i++ {
		args := []string{"-cluster-token", ct, "-log-level", "info", "-audit-log", filepath.Join(base, "node"+itoa(uint64(i))+"-audit.log")}
		if i == 1 {
			args = append(args, "-bootstrap")
		} else {
			args = append(args, "-join", c.nodes[0].URL())
		}
		n := newNode(t, base, "node"+itoa(uint64(i)), append(args, certs(oldCA, base, i, caPath)...)...)
		n.https = true
		c.nodes = append(c.nodes, n)
		n.start()
		if i == 1 {
			c.token = waitRootToken(t, n, 30*time.Second)
		}
	}
	c.waitVoters(c.nodes[0], 3, 60*time.Second)

	reloads := func(n *node) int { return strings.Count(n.tail(1<<20), "configuration reloaded") }
	hup := func(step string) {
		t.Helper()
		for _, n := range c.nodes {
			before := reloads(n)
			if n.signal(syscall.SIGHUP, 200*time.Millisecond) {
				t.Fatalf("%s: %s exited on SIGHUP:\n%s", step, n.name, n.tail(4000))
			}
			deadline := time.Now().Add(10 * time.Second)
			for reloads(n) == before {
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s logged no reload after SIGHUP:\n%s", step, n.name, n.tail(4000))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	// 1. Both CAs; the API client trusts both meanwhile.
	if err := os.WriteFile(caPath, append(append([]byte{}, oldCA.PEM...), newCA.PEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("both CAs")
	both := x509.NewCertPool()
	both.AddCert(oldCA.Cert)
	both.AddCert(newCA.Cert)
	hc.Transport.(*http.Transport).TLSClientConfig.RootCAs = both
	// 2. New certificates in place of the old.
	for i := range c.nodes {
		certs(newCA, base, i+1, caPath)
	}
	hup("new certificates")
	// 3. The old CA out.
	newCA.WriteCA(t, caPath)
	hup("new CA only")

	hc.CloseIdleConnections()
	hc.Transport.(*http.Transport).TLSClientConfig.RootCAs = newCA.Pool
	for _, n := range c.nodes {
		c.must(c.do(n, http.MethodGet, "/healthz", nil), http.StatusOK, n.name+" over HTTPS with the new CA only")
		body := string(c.must(c.do(n, http.MethodGet, "/metrics", nil), http.StatusOK, "metrics").Body)
		for _, want := range []string{"regent_config_last_reload_successful 1", `regent_tls_not_after_timestamp_seconds{setting="raft_tls_cert"}`} {
			if !strings.Contains(body, want) {
				t.Errorf("%s /metrics lacks %s", n.name, want)
			}
		}
	}
	leader := c.leader(30 * time.Second)
	n4 := newNode(t, base, "node4", append([]string{"-join", leader.URL(), "-cluster-token", ct},
		certs(newCA, t.TempDir(), 4, newCA.WriteCA(t, filepath.Join(t.TempDir(), "new-ca.pem")))...)...)
	n4.https = true
	c.nodes = append(c.nodes, n4)
	n4.start()
	c.waitVoters(leader, 4, 60*time.Second)
	c.waitLocalReady(n4, 30*time.Second)
	if c.leader(30*time.Second) == n4 {
		t.Fatal("the new node leads: nothing would be forwarded")
	}
	r := c.must(c.do(n4, http.MethodPost, "/membership/member/", map[string]any{"name": "after-rotation"}), http.StatusCreated,
		"a write through the node that knows only the new CA")
	if to := r.Header.Get("X-Regent-Forwarded-To"); !strings.HasPrefix(to, "https://") {
		t.Errorf("forwarded to %q, want an https:// leader", to)
	}

	// The audit trail: the leader recorded the write node4 forwarded (the
	// SIGHUPs above reopened its file each time, at the same path), with
	// the client's address; logrotate's move and a SIGHUP start a new file.
	leader = c.leader(30 * time.Second)
	auditPath := filepath.Join(base, leader.name+"-audit.log")
	var rec map[string]any
	eventually(t, "the leader's audit line for the forwarded write", 10*time.Second, func() bool {
		b, _ := os.ReadFile(auditPath)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.Contains(l, `"forwarded_by":"node4"`) && strings.Contains(l, `"path":"/membership/member/"`) {
				return json.Unmarshal([]byte(l), &rec) == nil
			}
		}
		return false
	})
	if rec["status"] != float64(201) || rec["role"] != "global admin" || !strings.HasPrefix(rec["client"].(string), "127.0.0.1:") {
		t.Errorf("audit line %v", rec)
	}
	if err := os.Rename(auditPath, auditPath+".1"); err != nil {
		t.Fatal(err)
	}
	before := reloads(leader)
	if leader.signal(syscall.SIGHUP, 200*time.Millisecond) {
		t.Fatalf("%s exited on SIGHUP", leader.name)
	}
	eventually(t, "the leader's reload", 10*time.Second, func() bool { return reloads(leader) > before })
	c.must(c.do(leader, http.MethodPost, "/membership/member/", map[string]any{"name": "after-logrotate"}), http.StatusCreated, "a write after the rotation")
	eventually(t, "the write in the new audit file", 10*time.Second, func() bool {
		b, _ := os.ReadFile(auditPath)
		return strings.Count(string(b), "\n") == 1 && strings.Contains(string(b), `"status":201`)
	})
}
