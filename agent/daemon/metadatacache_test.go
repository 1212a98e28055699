package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// fakeMetadata records what the daemon asks of the builder's metadata
// services.
type fakeMetadata struct {
	mu       sync.Mutex
	served   []api.RouterSpec
	replaced [][]api.RouterSpec
}

func (f *fakeMetadata) ServeMetadata(_ context.Context, s *api.RouterSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served = append(f.served, *s)
	return nil
}

func (f *fakeMetadata) ReplaceMetadata(_ context.Context, fresh []api.RouterSpec) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replaced = append(f.replaced, fresh)
	return 0
}

func (f *fakeMetadata) calls() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.served), len(f.replaced)
}

// metadataWork is a work listing with a RUNNING router (VPN with a
// pre-shared key, NAT, firewall, DHCP, metadata with user data) and a
// QUIESCED one.
const metadataWork = `{"content":{"index":3,"vms":[],"routers":[
 {"id":7,"project_id":42,"state":4,"generation":3,"public_ip":"198.51.100.10/24","public_gateway":"198.51.100.1",
  "nat":[{"public":"198.51.100.20","private":"10.0.0.5"}],
  "firewall_rules":[{"order":1,"allow":true,"protocol":"tcp","source":"*","destination":"10.0.0.0/24","port":"22"}],
  "subnets":[{"id":3,"address_range":"10.0.0.1/24","vni":5003,"dns":["9.9.9.9"],"dhcp":[{"mac":"02:00:00:00:00:05","ip":"10.0.0.5"}]}],
  "metadata":[{"address":"10.0.0.5","instance_id":"42_5","hostname":"vm5","userdata":"#cloud-config\n","public_keys":["ssh-ed25519 AAAA k"]}],
  "vpns":[{"id":1,"pre_shared_key":"sekrit-psk"}]},
 {"id":8,"project_id":43,"state":6,"generation":1,"public_ip":"198.51.100.11/24","public_gateway":"198.51.100.1",
  "metadata":[{"address":"10.1.0.5","instance_id":"43_5"}]}]}}`

// runMetadataDaemon runs the work loop of a daemon over dataDir whose
// builder is f, after serveSavedMetadata, against a controller answering
// work (or down, work ""), until stop returns true or 20 s pass.
func runMetadataDaemon(t *testing.T, dataDir string, f *fakeMetadata, work string, logs *systemtest.Buffer, stop func(d *Daemon) bool) *Daemon {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if work == "" {
			http.Error(w, `{"detail":"no leader","error_code":"regent_cluster_001"}`, http.StatusServiceUnavailable)
			return
		}
		if calls.Add(1) > 1 {
			<-r.Context().Done() // a blocking query with nothing new
			return
		}
		w.Header().Set("X-Regent-Index", "3")
		fmt.Fprint(w, work)
	}))
	defer srv.Close()
	d := newTestDaemon(t, logs, func(c *Config) { c.Token = "t"; c.DataDir = dataDir }, srv.URL)
	d.reg = api.AgentRegistered{ServerID: 5, RouterID: 9}
	d.metaServing = f
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serveSavedMetadata(ctx)
		d.workLoop(ctx)
	}()
	for deadline := time.Now().Add(20 * time.Second); !stop(d) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	return d
}

// TestSavedMetadataServedUntilFirstFetch: the agent saves the metadata of
// the routers it keeps up from each fetched work (mode 0600, only what the
// metadata service reads: no VPN keys, NAT, firewall or DHCP), and a
// restarted agent whose controller does not answer serves it (and only
// it: nothing is applied), with regent_agent_metadata_from_cache 1, until
// its first work fetch, which replaces it. Before, nothing was saved: an
// agent restarted during a controller outage served no metadata.
func TestSavedMetadataServedUntilFirstFetch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, metadataCacheFile)
	first := &fakeMetadata{}
	runMetadataDaemon(t, dir, first, metadataWork, &systemtest.Buffer{}, func(*Daemon) bool {
		_, err := os.Stat(path)
		return err == nil
	})
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no saved metadata: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("saved metadata has mode %04o, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	for _, leak := range []string{"sekrit-psk", "198.51.100.20", "02:00:00:00:00:05", "destination", "43_5"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("saved metadata holds %q (not the metadata of a running router):\n%s", leak, b)
		}
	}
	if s, r := first.calls(); s != 0 || r != 0 {
		t.Errorf("first start without a saved copy: %d serves, %d replaces", s, r)
	}

	// Restarted with the controller down: the saved copy is served.
	second := &fakeMetadata{}
	logs := &systemtest.Buffer{}
	d := runMetadataDaemon(t, dir, second, "", logs, func(d *Daemon) bool { return testutil.ToFloat64(d.metrics.fetchErrors) >= 2 })
	if len(second.served) != 1 {
		t.Fatalf("served %d routers from the saved copy, want 1: %+v", len(second.served), second.served)
	}
	got := second.served[0]
	if got.ID != 7 || got.ProjectID != 42 || len(got.Subnets) != 1 || got.Subnets[0].AddressRange != "10.0.0.1/24" ||
		len(got.Subnets[0].DNS) != 1 || len(got.Metadata) != 1 || got.Metadata[0].Userdata != "#cloud-config\n" ||
		len(got.Metadata[0].PublicKeys) != 1 || len(got.VPNs) != 0 || len(got.NAT) != 0 {
		t.Errorf("served from the saved copy: %+v", got)
	}
	if len(second.replaced) != 0 {
		t.Error("the saved copy was replaced without a work fetch")
	}
	if v := testutil.ToFloat64(d.metrics.metadataFromCache); v != 1 {
		t.Errorf("regent_agent_metadata_from_cache = %v while serving the saved copy", v)
	}
	if !strings.Contains(logs.String(), "serving the routers' metadata from the saved copy") {
		t.Errorf("no log line says the metadata is the saved copy:\n%s", logs)
	}

	// And with the controller back, the fetched work replaces it.
	third := &fakeMetadata{}
	d = runMetadataDaemon(t, dir, third, metadataWork, &systemtest.Buffer{}, func(*Daemon) bool { _, r := third.calls(); return r > 0 })
	if len(third.replaced) != 1 || len(third.replaced[0]) != 1 || third.replaced[0][0].ID != 7 {
		t.Fatalf("replaced by %+v, want router 7 of the fetched work", third.replaced)
	}
	if v := testutil.ToFloat64(d.metrics.metadataFromCache); v != 0 {
		t.Errorf("regent_agent_metadata_from_cache = %v after the first fetch", v)
	}
}

// TestSavedMetadataDamagedIsIgnored: a saved copy that is not JSON, or of
// another format version, is logged once and ignored (the agent starts,
// serves none of it), and the next fetched work replaces it.
func TestSavedMetadataDamagedIsIgnored(t *testing.T) {
	for name, content := range map[string]string{
		"truncated": `{"version":1,"routers":[{"id":7,`,
		"foreign":   `{"version":2,"routers":[{"id":7,"project_id":42,"state":4}]}`,
		"empty":     ``,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, metadataCacheFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			f := &fakeMetadata{}
			logs := &systemtest.Buffer{}
			d := runMetadataDaemon(t, dir, f, metadataWork, logs, func(*Daemon) bool {
				b, _ := os.ReadFile(path)
				return json.Valid(b) && strings.Contains(string(b), `"version": 1`)
			})
			if n := strings.Count(logs.String(), "ignoring the saved copy"); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, logs)
			}
			if len(f.served) != 0 {
				t.Errorf("served %+v from a damaged copy", f.served)
			}
			if v := testutil.ToFloat64(d.metrics.metadataFromCache); v != 0 {
				t.Errorf("regent_agent_metadata_from_cache = %v", v)
			}
			var c metadataCache
			b, _ := os.ReadFile(path)
			if err := json.Unmarshal(b, &c); err != nil || c.Version != metadataCacheVersion || len(c.Routers) != 1 {
				t.Errorf("the fetched work did not replace the damaged copy: %v %s", err, b)
			}
		})
	}
}
