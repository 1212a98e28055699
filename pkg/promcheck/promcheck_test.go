package promcheck

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func families(t *testing.T) map[string]*dto.MetricFamily {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x_request_duration_seconds", Help: "h"}, []string{"route", "code"})
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_queries_total", Help: "c"}, []string{"rcode"})
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x_free_bytes", Help: "g"}, []string{"storage_type"})
	r := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_used_ratio", Help: "g"})
	reg.MustRegister(h, c, g, r)
	h.WithLabelValues("/a", "200").Observe(0.1)
	c.WithLabelValues("NOERROR").Inc()
	g.WithLabelValues("SSD").Set(1)
	r.Set(0.5)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return Families(mfs)
}

// dashboard builds a one-panel dashboard with expr, legend and unit.
func dashboard(t *testing.T, expr, legend, unit string) *Dashboard {
	src := fmt.Sprintf(`{"title":"t","uid":"u","schemaVersion":39,
"templating":{"list":[{"name":"datasource","type":"datasource","query":"prometheus"},
 {"name":"instance","type":"query","datasource":{"type":"prometheus","uid":"${datasource}"},"multi":true,
  "query":{"query":"label_values(x_queries_total{job=\"j\"}, instance)"}}]},
"panels":[{"id":1,"type":"timeseries","title":"p","datasource":{"type":"prometheus","uid":"${datasource}"},
 "gridPos":{"x":0,"y":0,"w":12,"h":8},"fieldConfig":{"defaults":{"unit":%q}},
 "targets":[{"refId":"A","expr":%q,"legendFormat":%q}]}]}`, unit, expr, legend)
	var d Dashboard
	if err := json.Unmarshal([]byte(src), &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestCheck(t *testing.T) {
	fams := families(t)
	for _, tc := range []struct {
		expr, legend, unit string
		want               string // "" = no problem; else a substring of the first problem
	}{
		{`sum by (route) (rate(x_request_duration_seconds_count{job="j",instance=~"$instance"}[$__rate_interval]))`, "{{route}}", "reqps", ""},
		{`histogram_quantile(0.99, sum by (le, route) (rate(x_request_duration_seconds_bucket{job="j",code=~"[23].."}[5m])))`, "{{route}}", "s", ""},
		{`topk(3, max by (storage_type) (x_free_bytes{job="j"}))`, "{{storage_type}}", "bytes", ""},
		{`time() - x_free_bytes{job="j"}`, "{{instance}} {{storage_type}}", "bytes", ""},
		{`x_used_ratio{job="j"}`, "{{instance}}", "percentunit", ""},
		{`sum(rate(x_request_duration_seconds_sum{job="j"}[5m])) / sum(rate(x_request_duration_seconds_count{job="j"}[5m]))`, "", "s", ""},
		{`sum by (rcode) (x_queries_total{job="j"})`, "{{rcode}}", "short", "chart its rate()"},
		{`rate(x_free_bytes{job="j"}[5m])`, "", "Bps", "rate() of it is meaningless"},
		{`rate(x_nope_total{job="j"}[5m])`, "", "ops", "x_nope_total: no such metric"},
		{`sum by (route) (rate(x_queries_total{job="j"}[5m]))`, "{{route}}", "ops", "has no label route"},
		{`sum by (rcode) (rate(x_queries_total{job="j",rcode="NXDOMAIN"}[5m]))`, "{{rcode}}", "ops", "no series has that value"},
		{`sum by (rcode) (rate(x_queries_total{job="j"}[5m]))`, "{{qtype}}", "ops", "legend {{qtype}}"},
		{`sum by (le) (rate(x_request_duration_seconds_bucket{job="j"}[5m]))`, "", "reqps", "outside histogram_quantile"},
		{`histogram_quantile(0.9, rate(x_queries_total{job="j"}[5m]))`, "", "s", "not a histogram's _bucket"},
		{`histogram_quantile(0.9, sum by (le) (rate(x_request_duration_seconds_bucket{job="j"}[5m])))`, "", "ms", `unit "ms"`},
		{`sum(rate(x_queries_total{job="j"}[5m]))`, "", "short", `unit "short"`},
		{`x_free_bytes{job="j"}`, "", "decmbytes", `unit "decmbytes"`},
		{`sum(increase(x_queries_total{job="j"}[1h]))`, "", "short", ""},
		{`sum(increase(x_queries_total{job="j"}[1h]))`, "", "ops", `unit "ops"`},
	} {
		d := dashboard(t, tc.expr, tc.legend, tc.unit)
		if errs := d.Structure(); len(errs) > 0 {
			t.Errorf("%s: structure: %v", tc.expr, errs)
		}
		n, errs := d.Check("j", fams)
		if n == 0 {
			t.Errorf("%s: nothing checked", tc.expr)
		}
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%s: %v", tc.expr, errs)
		case tc.want != "" && (len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want)):
			t.Errorf("%s: got %v, want a problem with %q", tc.expr, errs, tc.want)
		}
	}
}

func TestStructure(t *testing.T) {
	d := dashboard(t, `x_used_ratio{instance="$instance"}`, "", "percentunit")
	d.Panels = append(d.Panels, d.Panels[0])
	d.Panels[1].Title = "q"
	d.Panels[0].Datasource = &Datasource{Type: "prometheus", UID: "P1809F7CD0C75ACF3"}
	var got []string
	for _, err := range d.Structure() {
		got = append(got, err.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{`have the same id 1`, `datasource is not the prometheus ${datasource}`,
		`x_used_ratio has no job="..." matcher`, `$instance may hold several values (or All), so it needs =~`} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem %q among:\n%s", want, all)
		}
	}
}

func TestRules(t *testing.T) {
	fams := families(t)
	write := func(body string) string {
		path := t.TempDir() + "/rules.yml"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rule := func(expr string) string {
		return fmt.Sprintf("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: %s\n        for: 1m\n"+
			"        labels: { severity: warning }\n        annotations: { summary: s }\n", expr)
	}
	for _, tc := range []struct {
		expr string
		want string // "" = no problem
	}{
		{`x_used_ratio{job="j"} > 0.9`, ""},
		{`sum by (route) (rate(x_request_duration_seconds_count{job="j",code=~"5.."}[5m])) > 0`, ""}, // no 5xx seen: fine in an alert
		{`x_used_ratioo{job="j"} > 0.9`, "no such metric"},
		{`x_queries_total{job="j"} > 0`, "chart its rate()"},
		{`max by (storage) (x_free_bytes{job="j"}) < 1`, "has no label storage"},
		{`rate(x_request_duration_seconds_count{job="j",code=~"(5"}[5m]) > 0`, "error parsing regexp"},
		// up is Prometheus's own series of every target, with the target labels only.
		{`up{job="j"} == 0`, ""},
		{`max by (instance) (up{job="j"}) == 0`, ""},
		{`up{job="j",route="x"} == 0`, "has no label route"},
		{`rate(up{job="j"}[5m]) > 0`, "rate() of it is meaningless"},
		{`absent(x_used_ratio{job="j"})`, ""},
		// cluster: the label deploy/prometheus.yml gives every target.
		{`max by (cluster) (x_used_ratio{job="j"}) > 0.9`, ""},
	} {
		qs, err := LoadRules(write(rule(tc.expr)))
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		_, errs := CheckQueries(qs, "j", fams)
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%s: %v", tc.expr, errs)
		case tc.want != "" && (len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.expr, errs, tc.want)
		}
	}
	// An alert without a severity or summary, or an unknown key, is refused.
	for _, body := range []string{
		"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x_used_ratio > 1\n        annotations: { summary: s }\n",
		"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x_used_ratio > 1\n        labels: { severity: warning }\n",
		"groups:\n  - name: g\n    rules:\n      - alert: A\n        exp: x_used_ratio > 1\n        labels: { severity: warning }\n        annotations: { summary: s }\n",
		"groups: []\n",
	} {
		if _, err := LoadRules(write(body)); err == nil {
			t.Errorf("accepted:\n%s", body)
		}
	}
}
