// Package promcheck checks a Grafana dashboard's PromQL against the metric
// families a real Regent process exports, for the tests of
// deploy/grafana-dashboard.json: every selector must name a metric that
// exists, with the labels (and, for literal matchers, the label values) it
// selects on, used as its type allows (rate() of counters, histogram_quantile
// of histogram buckets, never rate() of a gauge), grouped and shown by labels
// it has, in a panel whose unit is the metric's base unit. The alerting
// rules of deploy/regent-alerts.yml get the same selector checks (LoadRules).
//
// It reads the PromQL the dashboard uses without a full parser: vector
// selectors, function calls, aggregations with by/without, binary
// operators, ranges and strings, which is all a dashboard needs.
package promcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/oasdiff/yaml"
	dto "github.com/prometheus/client_model/go"
)

// Dashboard is a Grafana dashboard as read from its JSON file.
type Dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Schema     int     `json:"schemaVersion"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is a dashboard panel (rows included).
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []json.RawMessage `json:"overrides"`
	} `json:"fieldConfig"`
	Targets []Target `json:"targets"`
	Panels  []Panel  `json:"panels"` // a collapsed row's panels
}

// Target is a panel's query.
type Target struct {
	RefID        string      `json:"refId"`
	Datasource   *Datasource `json:"datasource"`
	Expr         string      `json:"expr"`
	LegendFormat string      `json:"legendFormat"`
}

// Datasource is a reference to a data source.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *Datasource     `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// Load reads a dashboard.
func Load(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}

// The data source every query must use: the dashboard's datasource variable.
const dsUID = "${datasource}"

// Query is one PromQL expression of the dashboard and where it is.
type Query struct {
	Where  string // panel "title" (id N) target A, or variable "name"
	Expr   string
	Legend string
	Unit   string
	// Variable: the query of a template variable, label_values(SELECTOR, LABEL).
	Variable bool
	// Rule: an alerting rule's expression (no legend, no unit).
	Rule bool
}

func (d *Dashboard) allPanels() []Panel {
	var out []Panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// Queries lists every PromQL expression of the dashboard: the panels'
// targets and the selectors of the query variables (label_values).
func (d *Dashboard) Queries() ([]Query, error) {
	var out []Query
	for _, p := range d.allPanels() {
		for _, t := range p.Targets {
			out = append(out, Query{Where: fmt.Sprintf("panel %q (id %d) target %s", p.Title, p.ID, t.RefID),
				Expr: t.Expr, Legend: t.LegendFormat, Unit: p.FieldConfig.Defaults.Unit})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := variableQuery(v)
		if err != nil {
			return nil, err
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("variable %q: query %q is not label_values(SELECTOR, LABEL)", v.Name, q)
		}
		out = append(out, Query{Where: fmt.Sprintf("variable %q", v.Name), Expr: m[1], Legend: "{{" + m[2] + "}}", Variable: true})
	}
	return out, nil
}

func variableQuery(v Variable) (string, error) {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		return "", fmt.Errorf("variable %q: query: %w", v.Name, err)
	}
	return o.Query, nil
}

// Structure checks the dashboard as Grafana loads it: a datasource
// variable of type prometheus that every panel, target and query variable
// uses; unique panel ids; panels inside the 24-column grid; a refId per
// target, unique in its panel; a job matcher on every selector; =~ (not =)
// for variables that may hold several values.
func (d *Dashboard) Structure() []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if d.UID == "" || d.Title == "" || d.Schema == 0 {
		fail("dashboard needs uid, title and schemaVersion")
	}
	multi := map[string]bool{}
	hasDS := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			if json.Unmarshal(v.Query, &q) != nil || q != "prometheus" || v.Name != "datasource" {
				fail("variable %q: a datasource variable named datasource with query prometheus is expected", v.Name)
			}
			hasDS = true
		case "query":
			if v.Datasource == nil || v.Datasource.UID != dsUID {
				fail("variable %q: datasource is not %s", v.Name, dsUID)
			}
		}
		multi[v.Name] = v.Multi || v.IncludeAll
	}
	if !hasDS {
		fail("no datasource variable: the dashboard cannot be imported into a Grafana whose Prometheus has another uid")
	}
	ids := map[int]string{}
	for _, p := range d.allPanels() {
		if p.ID <= 0 {
			fail("panel %q has no id", p.Title)
		} else if other, dup := ids[p.ID]; dup {
			fail("panels %q and %q have the same id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			fail("panel %q: gridPos %+v is outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsUID || p.Datasource.Type != "prometheus" {
			fail("panel %q: datasource is not the prometheus %s", p.Title, dsUID)
		}
		if len(p.Targets) == 0 {
			fail("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, t := range p.Targets {
			if t.RefID == "" || refs[t.RefID] {
				fail("panel %q: refId %q missing or repeated", p.Title, t.RefID)
			}
			refs[t.RefID] = true
			if t.Datasource != nil && t.Datasource.UID != dsUID {
				fail("panel %q target %s: datasource is not %s", p.Title, t.RefID, dsUID)
			}
		}
	}
	qs, err := d.Queries()
	if err != nil {
		return append(errs, err)
	}
	for _, q := range qs {
		e, err := parse(q.Expr)
		if err != nil {
			fail("%s: %v", q.Where, err)
			continue
		}
		for _, s := range e.selectors {
			if s.job() == "" {
				fail("%s: %s has no job=\"...\" matcher", q.Where, s.name)
			}
			for _, m := range s.matchers {
				for _, v := range regexp.MustCompile(`\$\{?([a-zA-Z_]+)`).FindAllStringSubmatch(m.value, -1) {
					if multi[v[1]] && m.op != "=~" && m.op != "!~" {
						fail("%s: %s%s%q: $%s may hold several values (or All), so it needs =~", q.Where, m.label, m.op, m.value, v[1])
					}
				}
			}
		}
	}
	return errs
}

// Families indexes gathered metric families by name.
func Families(mfs []*dto.MetricFamily) map[string]*dto.MetricFamily {
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// Check checks every selector of the queries that selects job="<job>"
// against fams, the families a process of that job exports, and returns
// each problem. It also returns how many selectors it checked.
func (d *Dashboard) Check(job string, fams map[string]*dto.MetricFamily) (int, []error) {
	qs, err := d.Queries()
	if err != nil {
		return 0, []error{err}
	}
	return CheckQueries(qs, job, fams)
}

// Rules are the alerting rules of a Prometheus rule file.
type Rules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// LoadRules reads a Prometheus rule file and returns its alerts'
// expressions as queries (without legend or unit: CheckQueries checks
// their selectors only). An alert without a name, expression, severity
// or summary is an error.
func LoadRules(path string) ([]Query, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var rs Rules
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Query
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			where := fmt.Sprintf("group %q alert %q", g.Name, r.Alert)
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				return nil, fmt.Errorf("%s: %s: an alert needs a name, an expr, a severity label and a summary", path, where)
			}
			out = append(out, Query{Where: where, Expr: r.Expr, Rule: true})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no alerts", path)
	}
	return out, nil
}

// CheckRules checks the alerts of the rule file at path that select
// job="<job>" against fams, as Check does a dashboard's queries.
func CheckRules(path, job string, fams map[string]*dto.MetricFamily) (int, []error) {
	qs, err := LoadRules(path)
	if err != nil {
		return 0, []error{err}
	}
	return CheckQueries(qs, job, fams)
}

// CheckQueries is Check for any queries: see Check.
func CheckQueries(qs []Query, job string, fams map[string]*dto.MetricFamily) (int, []error) {
	var errs []error
	checked := 0
	for _, q := range qs {
		e, err := parse(q.Expr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", q.Where, err))
			continue
		}
		mine := 0
		for _, s := range e.selectors {
			if s.job() == job {
				mine++
			}
		}
		if mine == 0 {
			continue
		}
		c := checker{q: q, e: e, fams: fams}
		for _, s := range e.selectors {
			if s.job() == job {
				c.selector(s)
				checked++
			}
		}
		if mine == len(e.selectors) && !q.Rule {
			c.legend()
			if !q.Variable {
				c.unit()
			}
		}
		errs = append(errs, c.errs...)
	}
	return checked, errs
}

type checker struct {
	q    Query
	e    *expr
	fams map[string]*dto.MetricFamily
	errs []error
}

func (c *checker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", c.q.Where, fmt.Sprintf(format, args...)))
}

// series is what a selector's name refers to: the family and which of its
// series (a histogram's _bucket, _sum or _count, a summary's _sum or
// _count; "" for the family's own samples).
type series struct {
	mf     *dto.MetricFamily
	suffix string
}

// scrapeSeries are the series Prometheus itself writes for every target
// it scrapes (up: 1 when the scrape succeeded, 0 when the target was down
// or unreadable): gauges with the target labels only, so a rule may
// select them although no process exports them.
var scrapeSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped",
	"scrape_samples_post_metric_relabeling", "scrape_series_added"}

func (c *checker) resolve(name string) (series, bool) {
	if mf, ok := c.fams[name]; ok {
		return series{mf: mf}, true
	}
	if slices.Contains(scrapeSeries, name) {
		gauge := dto.MetricType_GAUGE
		return series{mf: &dto.MetricFamily{Name: &name, Type: &gauge, Metric: []*dto.Metric{{}}}}, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suf)
		if !ok {
			continue
		}
		mf, ok := c.fams[base]
		if !ok {
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			return series{mf: mf, suffix: suf}, true
		case dto.MetricType_SUMMARY:
			if suf != "_bucket" {
				return series{mf: mf, suffix: suf}, true
			}
		}
	}
	return series{}, false
}

// labels are the label names of the series, with le for a bucket.
func (s series) labels() map[string]bool {
	out := map[string]bool{}
	for _, m := range s.mf.GetMetric() {
		for _, l := range m.GetLabel() {
			out[l.GetName()] = true
		}
	}
	if s.suffix == "_bucket" {
		out["le"] = true
	}
	return out
}

func (s series) values(label string) []string {
	var out []string
	for _, m := range s.mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && !slices.Contains(out, l.GetValue()) {
				out = append(out, l.GetValue())
			}
		}
	}
	return out
}

// counterLike: the series only grows (rate() applies).
func (s series) counterLike() bool {
	switch s.mf.GetType() {
	case dto.MetricType_COUNTER:
		return true
	case dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY:
		return s.suffix != ""
	}
	return false
}

// Target labels Prometheus adds to every series it scrapes: job and
// instance, and cluster, the label deploy/prometheus.yml gives every
// target (one Prometheus may scrape several Regent clusters).
var targetLabels = map[string]bool{"job": true, "instance": true, "cluster": true}

var rateFuncs = []string{"rate", "irate", "increase"}

// perSecond: rate() and irate() give a figure per second, increase() a count.
var perSecond = []string{"rate", "irate"}

func (c *checker) selector(s *selector) {
	ser, ok := c.resolve(s.name)
	if !ok {
		c.fail("%s: no such metric", s.name)
		return
	}
	labels := ser.labels()
	rated := s.within(rateFuncs...)
	switch {
	case c.q.Variable: // label_values: any type will do
	case s.suffix() == "_bucket" && ser.suffix == "_bucket" && !s.within("histogram_quantile"):
		c.fail("%s: histogram buckets outside histogram_quantile()", s.name)
	case s.within("histogram_quantile") && ser.suffix != "_bucket":
		c.fail("%s: histogram_quantile() of something that is not a histogram's _bucket series (%s)", s.name, ser.mf.GetType())
	case ser.counterLike() && !rated:
		c.fail("%s is a %s: chart its rate() or increase(), not its running total", s.name, typeName(ser))
	case !ser.counterLike() && rated:
		c.fail("%s is a %s: rate() of it is meaningless", s.name, typeName(ser))
	}
	for _, m := range s.matchers {
		if targetLabels[m.label] {
			continue
		}
		if !labels[m.label] {
			c.fail("%s has no label %s (it has %v)", s.name, m.label, keys(labels))
			continue
		}
		if strings.Contains(m.value, "$") || m.label == "le" {
			continue
		}
		vals := ser.values(m.label)
		switch m.op {
		case "=":
			if !slices.Contains(vals, m.value) {
				c.fail("%s{%s=%q}: no series has that value (values seen: %v)", s.name, m.label, m.value, vals)
			}
		case "=~":
			re, err := regexp.Compile("^(?:" + m.value + ")$")
			if err != nil {
				c.fail("%s{%s=~%q}: %v", s.name, m.label, m.value, err)
			} else if !slices.ContainsFunc(vals, re.MatchString) && !c.q.Rule {
				// (An alert may select what a healthy process never
				// exports, such as code=~"5..".)
				c.fail("%s{%s=~%q}: no series matches (values seen: %v)", s.name, m.label, m.value, vals)
			}
		}
	}
	for _, f := range s.frames {
		for _, l := range f.grouping {
			if !labels[l] && !targetLabels[l] {
				c.fail("%s(...) by (%s): %s has no label %s", f.fn, strings.Join(f.grouping, ", "), s.name, l)
			}
		}
	}
}

func typeName(s series) string {
	t := strings.ToLower(s.mf.GetType().String())
	if s.suffix != "" {
		return t + "'s " + s.suffix + " counter"
	}
	return t
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Aggregations that keep only their grouping labels (topk, bottomk and
// functions keep the labels of their argument).
var grouping = []string{"sum", "min", "max", "avg", "count", "stddev", "stdvar", "group", "quantile", "count_values"}

var legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// legend: each {{label}} of the legend is a label of the result.
func (c *checker) legend() {
	have := map[string]bool{}
	for _, s := range c.e.selectors {
		var outer *frame
		for i := range s.frames {
			if slices.Contains(grouping, s.frames[i].fn) {
				outer = &s.frames[i]
				break
			}
		}
		if outer == nil || outer.without {
			ser, ok := c.resolve(s.name)
			if !ok {
				return // reported already
			}
			for l := range ser.labels() {
				have[l] = true
			}
			for l := range targetLabels {
				have[l] = true
			}
			if outer != nil {
				for _, l := range outer.grouping {
					delete(have, l)
				}
			}
		} else {
			for _, l := range outer.grouping {
				have[l] = true
			}
		}
		if s.within("histogram_quantile") {
			delete(have, "le")
		}
	}
	for _, m := range legendLabel.FindAllStringSubmatch(c.q.Legend, -1) {
		if !have[m[1]] {
			c.fail("legend {{%s}}: the result has no such label (it has %v)", m[1], keys(have))
		}
	}
}

// Units Grafana shows a per-second rate in.
var rateUnits = []string{"reqps", "rps", "ops", "wps", "cps", "iops"}

// unit: the panel's unit is the metric's base unit: seconds (s) for a
// duration or age, bytes for bytes, percentunit for a ratio, and a
// per-second unit for the rate of a counter (unless rates are divided).
func (c *checker) unit() {
	u := c.q.Unit
	for _, s := range c.e.selectors {
		base := s.name
		for _, suf := range []string{"_bucket", "_sum", "_count", "_total"} {
			base = strings.TrimSuffix(base, suf)
		}
		rated := s.within(rateFuncs...)
		quantile := s.within("histogram_quantile")
		var want []string
		switch {
		case s.within("increase") && !s.within(perSecond...) && !quantile && !c.e.divides:
			want = []string{"short", "none"}
		case quantile && strings.HasSuffix(base, "_seconds"), !rated && strings.HasSuffix(base, "_seconds"):
			want = []string{"s"}
		case quantile && strings.HasSuffix(base, "_bytes"), !rated && strings.HasSuffix(base, "_bytes"):
			want = []string{"bytes", "decbytes"}
		case !rated && strings.HasSuffix(base, "_ratio"):
			want = []string{"percentunit"}
		case rated && !quantile && !c.e.divides && strings.HasSuffix(base, "_bytes"):
			want = []string{"Bps", "binBps"}
		case rated && !quantile && !c.e.divides:
			want = rateUnits
		}
		if want != nil && !slices.Contains(want, u) {
			c.fail("unit %q, but %s is charted in %s", u, s.name, strings.Join(want, " or "))
		}
	}
}
