package systest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for 127.0.0.1 (server and client use) and its
// key into dir; it returns their paths.
func (ca *testCA) issue(t *testing.T, dir, name string, serial int64) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TestClusterTLS: three nodes with the API over HTTPS and mutual TLS on
// raft (certificates of one CA) form a cluster (joins over https://), a
// write sent to a follower is forwarded to the leader over HTTPS, and a
// node whose raft certificate comes from another CA never becomes a
// member.
func TestClusterTLS(t *testing.T) {
	base := t.TempDir()
	ca, rogue := newTestCA(t, "regent test CA"), newTestCA(t, "another CA")
	caPath := filepath.Join(base, "ca.pem")
	if err := os.WriteFile(caPath, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	rogueCAPath := filepath.Join(base, "rogue-ca.pem")
	if err := os.WriteFile(rogueCAPath, rogue.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	hc := newClient(8)
	hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c := &cluster{t: t, base: base, hc: hc}
	t.Cleanup(c.cleanup)
	tlsArgs := func(i int, raftCA *testCA, raftCAPath string) []string {
		name := "node" + itoa(uint64(i))
		hcert, hkey := ca.issue(t, base, name+"-http", int64(10+i))
		rcert, rkey := raftCA.issue(t, base, name+"-raft", int64(20+i))
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
	leader := c.leader(10 * time.Second)
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
