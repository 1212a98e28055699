package daemon

import (
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/regentcloud/regent/pkg/promcheck"
)

// TestDashboardMatchesAgentMetrics: every query of
// deploy/grafana-dashboard.json that selects job="regent-agent" names
// metrics a running agent serves on /metrics once it has registered and
// fetched its work, by labels and label values they have, used as their
// type allows and charted in their base unit (pkg/promcheck; the
// controller's queries: TestDashboardMatchesControllerMetrics).
func TestDashboardMatchesAgentMetrics(t *testing.T) {
	d, err := promcheck.Load("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	ctl := newAgentAPI(t, 1)
	ctl.workOK.Store(true)
	a, cancel, done := runTestDaemon(t, ctl.URL)
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(30 * time.Second)
	for ctl.beats.Load() == 0 || gauge(t, a, "regent_agent_last_work_fetch_timestamp_seconds") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat and work fetch within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fams := scrape(t, a)
	n, errs := d.Check("regent-agent", fams)
	for _, err := range errs {
		t.Error(err)
	}
	if n < 4 {
		t.Errorf("only %d selectors of the agent checked", n)
	}
	// The alerting rules select the same metrics.
	n, errs = promcheck.CheckRules("../../deploy/regent-alerts.yml", "regent-agent", fams)
	for _, err := range errs {
		t.Error(err)
	}
	if n < 2 {
		t.Errorf("only %d selectors of the agent's alerts checked", n)
	}
}

func scrape(t *testing.T, a *Daemon) map[string]*dto.MetricFamily {
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func gauge(t *testing.T, a *Daemon, name string) float64 {
	mf := scrape(t, a)[name]
	if mf == nil || len(mf.GetMetric()) == 0 {
		return 0
	}
	return mf.GetMetric()[0].GetGauge().GetValue()
}
