package systest

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/internal/testca"
)

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
		name := "node" + itoa(uint64(i))
		hcert, hkey := ca.WriteFiles(t, base, name+"-http")
		rcert, rkey := raftCA.WriteFiles(t, base, name+"-raft")
		return []string{"-http-tls-cert", hcert, "-http-tls-key", hkey, "-http-tls-ca", caPath,
			"-raft-tls-cert", rcert, "-raft-tls-key", rkey, "-raft-tls-ca", raftCAPath}
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
