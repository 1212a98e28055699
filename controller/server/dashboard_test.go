package server_test

import (
	"net/http"
	"path/filepath"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/promcheck"
	"github.com/regentcloud/regent/pkg/testca"
)

// TestDashboardMatchesControllerMetrics: deploy/grafana-dashboard.json is
// a dashboard Grafana can import (pkg/promcheck: datasource variable,
// unique panel ids, ...), and every query of it that selects
// job="regent-controller" names metrics a real controller exports after
// some traffic (requests, a 404, a blocking query, a DNS query, a
// registered agent; raft over mutual TLS), by the labels and label values they have, with
// rate() on counters only, histogram_quantile on _bucket series, and the
// panel unit of the metric's base unit. Scraped over HTTP as Prometheus
// does, with a robot token. TestDashboardMatchesAgentMetrics (agent/daemon) checks the agent's
// queries.
func TestDashboardMatchesControllerMetrics(t *testing.T) {
	d, err := promcheck.Load("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range d.Structure() {
		t.Error(err)
	}
	// A region, an allocation, an agent's server and router, on a node
	// with raft's mutual TLS (whose certificates' expiry an alert watches)
	// and an audit trail.
	ca := testca.New(t, "regent test CA")
	dir := t.TempDir()
	e := newAgentEnvWith(t, func(c *server.Config) {
		c.RaftTLSCert, c.RaftTLSKey = ca.WriteFiles(t, dir, "node")
		c.RaftTLSCA = ca.WriteCA(t, filepath.Join(dir, "ca.pem"))
		c.AuditLog = filepath.Join(dir, "audit.log")
	})
	c, root := e.c, e.f.root
	c.Do("GET", "/iaas/subnet/999999/", nil, root).Expect(404)
	c.Do("GET", "/membership/user/?index=1000000&wait=20ms", nil, root).Expect(200)
	e.c.Do("POST", "/v1/agent/heartbeat", map[string]any{"server_id": e.server, "health": "degraded", "detail": "libvirtd"}, e.robot).Expect(204)
	m := new(mdns.Msg)
	m.SetQuestion("www.example.com.", mdns.TypeA)
	if _, _, err := new(mdns.Client).Exchange(m, e.f.n.Server.DNSAddr()); err != nil {
		t.Fatalf("dns query: %v", err)
	}

	// Scraped as docs/operations.md tells Prometheus to: with a robot
	// token (the IPAM series are only for the region's own tokens).
	req, err := http.NewRequest("GET", e.f.n.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.robot)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	n, errs := d.Check("regent-controller", fams)
	for _, err := range errs {
		t.Error(err)
	}
	if n < 20 {
		t.Errorf("only %d selectors of the controller checked", n)
	}
	// The alerting rules select the same metrics.
	n, errs = promcheck.CheckRules("../../deploy/regent-alerts.yml", "regent-controller", fams)
	for _, err := range errs {
		t.Error(err)
	}
	if n < 7 {
		t.Errorf("only %d selectors of the controller's alerts checked", n)
	}
}
