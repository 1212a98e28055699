package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// TestIPAMUtilisationGauge: /metrics reports, per top-level block, the
// addresses held in it and its subnets over its usable addresses.
func TestIPAMUtilisationGauge(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	member := c.Do("POST", "/membership/member/", map[string]any{"name": "gauge"}, root).Expect(201).ID()
	asn := create(c, root, "/iaas/asn/", map[string]any{"member_id": member, "number": 64999})
	alloc := create(c, root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.77.0.0/24", "name": "gauge"})
	subnet := create(c, root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.77.0.1/26", "name": "s"})
	for i := 0; i < 10; i++ {
		create(c, root, "/iaas/ip_address/", map[string]any{"subnet_id": subnet})
	}
	body := string(c.Do("GET", "/metrics", nil, root).Expect(200).Body) // tenants' series: TestMetricsShowTenantsOnlyToTheRegion
	re := regexp.MustCompile(`regent_ipam_block_held_addresses\{block="` + strconv.FormatUint(alloc, 10) + `",cidr="10\.77\.0\.0/24",dialect="cloudcix"\} (\S+)`)
	m := re.FindStringSubmatch(body)
	if m == nil || m[1] != "10" {
		t.Fatalf("held addresses of the allocation: %v\n%s", m, body)
	}
	re = regexp.MustCompile(`regent_ipam_block_utilisation_ratio\{block="` + strconv.FormatUint(alloc, 10) + `"[^}]*\} (\S+)`)
	m = re.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no utilisation ratio for the allocation")
	}
	if r, err := strconv.ParseFloat(m[1], 64); err != nil || r <= 0.03 || r >= 0.05 {
		t.Fatalf("utilisation ratio %s, want about 10/254", m[1])
	}
}

// TestDeployAndDocsNameRealMetrics: every regent_* metric the Grafana
// dashboard, the Prometheus config and the docs name is one the code
// registers (a literal name in a non-test Go file of the controller or the
// agent; a histogram's _bucket/_sum/_count and a counter's _total suffix
// are the same metric). The dashboard once charted a queue metric that no
// longer existed.
func TestDeployAndDocsNameRealMetrics(t *testing.T) {
	name := regexp.MustCompile(`regent_[a-z0-9_]*[a-z0-9]`)
	// regent_request_005, regent_operator_snapshot_read_201: error codes
	errorCode := regexp.MustCompile(`^regent_[a-z][a-z_]*_[0-9]{3}$`)
	known := map[string]bool{}
	for _, dir := range []string{"../../controller", "../../agent", "../../pkg"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			for _, m := range regexp.MustCompile(`"(regent_[a-z0-9_]+)"`).FindAllSubmatch(b, -1) {
				known[string(m[1])] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob("../../deploy/*")
	docs, _ := filepath.Glob("../../docs/*.md")
	files = append(append(files, docs...), "../../README.md")
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		text := string(b)
		for _, loc := range name.FindAllStringIndex(text, -1) {
			m := text[loc[0]:loc[1]]
			if errorCode.MatchString(m) {
				continue
			}
			if rest := text[loc[1]:]; strings.HasPrefix(rest, "_*") || strings.HasPrefix(rest, "*") {
				// a family: regent_vm_* names at least one metric
				if !slices.ContainsFunc(slices.Collect(maps.Keys(known)), func(k string) bool { return strings.HasPrefix(k, m+"_") }) {
					t.Errorf("%s names %s_*, but no registered metric starts so", filepath.Base(f), m)
				}
				checked++
				continue
			}
			base := m
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suf)
			}
			if known[m] || known[base] || known[strings.TrimSuffix(m, "_total")] {
				checked++
				continue
			}
			t.Errorf("%s names %s, which no controller or agent code registers", filepath.Base(f), m)
		}
	}
	if checked == 0 {
		t.Fatal("no metric names found in deploy/ and docs/")
	}
}

// TestRequestLog: at debug level every request is a log line with its
// route, status and duration, the path but never the query string; at info
// level requests are quiet.
func TestRequestLog(t *testing.T) {
	var logs systemtest.Buffer
	n := apitest.Start(t, apitest.Options{LogLevel: "debug", LogOutput: &logs})
	c := n.Client(t)
	c.Do("GET", "/membership/member/?search[name__icontains]=secretish", nil, n.RootToken).Expect(200)
	c.Do("GET", "/membership/member/999/", nil, n.RootToken).Expect(404)
	out := logs.String()
	for _, want := range []string{`request: method=GET path=/membership/member/ route="/membership/member/{$}" status=200`,
		`request: method=GET path=/membership/member/999/ route="/membership/member/{id}/{$}" status=404`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the debug log", want)
		}
	}
	if strings.Contains(out, "secretish") {
		t.Error("the query string is logged")
	}
	var quiet systemtest.Buffer
	q := apitest.Start(t, apitest.Options{LogLevel: "info", LogOutput: &quiet})
	q.Client(t).Do("GET", "/membership/member/", nil, q.RootToken).Expect(200)
	if strings.Contains(quiet.String(), "request: ") {
		t.Errorf("requests logged at info:\n%s", quiet.String())
	}
}

// TestHTTPMetricLabelsAreBounded: the request histogram's labels take a
// bounded set of values whatever clients send. An HTTP method is any token
// a client makes up, and each new one was a new series (14 buckets and
// more) from unauthenticated requests: unknown methods are "other", as
// unmatched paths are route="unmatched".
func TestHTTPMetricLabelsAreBounded(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	for i := range 20 {
		for _, path := range []string{"/membership/member/", fmt.Sprintf("/no/such/path/%d", i)} {
			req, _ := http.NewRequest(fmt.Sprintf("M%dX", i), n.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	resp, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	methods, routes := map[string]bool{}, map[string]bool{}
	series := regexp.MustCompile(`(?m)^regent_http_request_duration_seconds_count\{(.*)\} `)
	for _, m := range series.FindAllStringSubmatch(string(body), -1) {
		methods[regexp.MustCompile(`method="([^"]*)"`).FindStringSubmatch(m[1])[1]] = true
		routes[regexp.MustCompile(`route="([^"]*)"`).FindStringSubmatch(m[1])[1]] = true
	}
	for m := range methods {
		if !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, m) {
			t.Errorf("method label %q", m)
		}
	}
	if !methods["other"] {
		t.Errorf("no method=\"other\" series among %v", methods)
	}
	for r := range routes {
		if strings.Contains(r, "/no/such/") {
			t.Errorf("route label %q: a raw path", r)
		}
	}
}

// TestJSONLogDurations: with log_json a duration is written as the text
// shows it ("1.5ms"), not as a bare number of nanoseconds a log pipeline
// cannot tell from milliseconds or seconds.
func TestJSONLogDurations(t *testing.T) {
	var logs systemtest.Buffer
	n := apitest.Start(t, apitest.Options{LogLevel: "debug", LogOutput: &logs,
		Configure: func(c *server.Config) { c.LogJSON = true }})
	n.Client(t).Do("GET", "/membership/member/", nil, n.RootToken).Expect(200)
	found := false
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if entry["@message"] != "request" || entry["route"] != "/membership/member/{$}" {
			continue
		}
		found = true
		took, ok := entry["took"].(string)
		if _, err := time.ParseDuration(took); !ok || err != nil {
			t.Errorf("took = %#v in %s, want a duration such as \"1.5ms\"", entry["took"], line)
		}
	}
	if !found {
		t.Fatalf("no request line in the debug log:\n%s", logs.String())
	}
}

// TestBuildInfo: the node's release is in its "controller started" log
// line and in regent_build_info on /metrics, so that an operator sees
// which node runs what during a rolling upgrade.
func TestBuildInfo(t *testing.T) {
	var logs systemtest.Buffer
	n := apitest.Start(t, apitest.Options{LogLevel: "info", LogOutput: &logs})
	m := string(n.Client(t).Do("GET", "/metrics", nil, "").Expect(200).Body)
	want := fmt.Sprintf(`regent_build_info{goversion=%q,revision=%q,version=%q} 1`, runtime.Version(), wire.Revision(), wire.Version)
	if !strings.Contains(m, want) {
		t.Errorf("no %s on /metrics", want)
	}
	if !strings.Contains(logs.String(), "controller started: version="+wire.Version+" ") {
		t.Errorf("the start line does not name the version:\n%s", logs.String())
	}
}

// TestHealthz503Quiet: a node's /healthz answering 503 (here: no leader,
// it waits to be added to a cluster) is not a warning at every probe of a
// load balancer; other 5xx answers are, with the answer's error_code (which
// tells "no leader" from "outcome unknown").
func TestHealthz503Quiet(t *testing.T) {
	var logs systemtest.Buffer
	cfg := server.Defaults()
	cfg.NodeID, cfg.DataDir, cfg.HTTPAddr, cfg.RaftAddr, cfg.DNSAddr = "lone", t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "off"
	cfg.LogLevel, cfg.LogOutput = "info", &logs
	s, err := server.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	for _, path := range []string{"/healthz", "/healthz", "/membership/member/"} {
		resp, err := http.Get(strings.TrimSuffix(s.URL(), "/") + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("%s: %d, want 503", path, resp.StatusCode)
		}
	}
	if out := logs.String(); strings.Contains(out, "route=/healthz") || !strings.Contains(out, `request failed: method=GET path=/membership/member/ route=forward-failed status=503 error_code=regent_cluster_001`) {
		t.Errorf("want a warning for the 503 of /membership/member/ only:\n%s", out)
	}
}
