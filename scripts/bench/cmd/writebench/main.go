// Command writebench is the load generator of scripts/bench/writes: it
// creates members (unique names) with POST /membership/member/ against a
// running Regent cluster and reports writes/s and latency percentiles for
// several numbers of concurrent clients.
//
//	writebench -nodes http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 \
//	    -token-file data/node1/root.token -clients 1,16,64 -spread 64 -duration 10s
//
// Every phase runs against the leader (found with GET /v1/operator/leader);
// the client counts listed in -spread run once more with the clients spread
// round-robin over all nodes (followers forward writes to the leader). Each
// phase has a warm-up whose requests are not counted.
//
// With -target etcd the same phases run against an etcd cluster instead:
// -nodes are the members' client URLs, the leader is found with
// POST /v3/maintenance/status on each member, and every write is a JSON
// POST /v3/kv/put through etcd's gRPC gateway with a unique 16-byte key and
// a 128-byte value (a write counts when it returns 200). Clients, durations,
// warm-up, HTTP transport and the measurement are the same as for Regent.
//
// With -target regent-ipam every request is an IP allocation instead:
// POST /iaas/ip_address/ {"subnet_id":N} with no address, so the subnet's
// next free address is allocated (a request counts when it returns 201).
// -subnet-id names the CloudCIX subnet, which must be large enough never to
// fill during the run (scripts/bench/allocs creates a /12).
//
// -report a.json,b.json prints one table from the -json files of several
// runs (e.g. Regent and etcd), with the ratio of each Regent row's writes/s
// to etcd's at the same number of clients.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	target       string // "regent", "regent-ipam" or "etcd"
	subnetID     uint64 // -target regent-ipam: the subnet to allocate from
	nodes        []string
	token        string
	clients      []int
	spread       []int
	duration     time.Duration
	warmup       time.Duration
	prefix       string
	leaderPprof  string // base URL of the leader's pprof handler, optional
	profileAt    int    // client count of the phase to profile the leader in
	profileOut   string
	jsonOut      string
	requestLimit time.Duration
	client       string // raw or go
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "writebench:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	var nodes, clients, spread, tokenFile, cpuprofile, report string
	flag.StringVar(&cfg.target, "target", "regent", "what to load: regent (POST /membership/member/), regent-ipam (POST /iaas/ip_address/ into -subnet-id) or etcd (POST /v3/kv/put via the gRPC gateway)")
	flag.Uint64Var(&cfg.subnetID, "subnet-id", 0, "with -target regent-ipam: id of the CloudCIX subnet to allocate addresses from (required)")
	flag.StringVar(&nodes, "nodes", "", "comma-separated base URLs of the cluster's nodes (required; for etcd the client URLs)")
	flag.StringVar(&cfg.token, "token", "", "API token (root); or -token-file")
	flag.StringVar(&tokenFile, "token-file", "", "file holding the API token")
	flag.StringVar(&clients, "clients", "1,16,64", "client counts to run against the leader")
	flag.StringVar(&spread, "spread", "64", "client counts to run once more spread over all nodes (empty: none)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time per phase")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each phase")
	flag.StringVar(&cfg.prefix, "prefix", "", "member name prefix (default: bench-<unix time>)")
	flag.StringVar(&cpuprofile, "cpuprofile", "", "write this load generator's CPU profile to `file`")
	flag.StringVar(&cfg.leaderPprof, "leader-pprof", "", "base URL of a net/http/pprof handler in the leader process (optional)")
	flag.IntVar(&cfg.profileAt, "profile-clients", 64, "with -leader-pprof: profile the leader during the phase with this many clients (leader only)")
	flag.StringVar(&cfg.profileOut, "leader-profile", "leader.cpu.pprof", "with -leader-pprof: where to write the leader's CPU profile")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to `file`")
	flag.DurationVar(&cfg.requestLimit, "timeout", 10*time.Second, "per-request timeout")
	flag.StringVar(&cfg.client, "client", "raw", "HTTP client of the load: raw (lean HTTP/1.1 over one keep-alive connection per client) or go (net/http)")
	flag.StringVar(&report, "report", "", "only print one combined table from these comma-separated -json `files`")
	flag.Parse()

	if report != "" {
		return printReport(strings.Split(report, ","))
	}
	if cfg.client != "raw" && cfg.client != "go" {
		return fmt.Errorf("-client %q: want raw or go", cfg.client)
	}
	switch cfg.target {
	case "regent", "etcd":
	case "regent-ipam":
		if cfg.subnetID == 0 {
			return errors.New("-target regent-ipam needs -subnet-id")
		}
	default:
		return fmt.Errorf("-target %q: want regent, regent-ipam or etcd", cfg.target)
	}

	for _, n := range strings.Split(nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.nodes = append(cfg.nodes, strings.TrimSuffix(n, "/"))
		}
	}
	if len(cfg.nodes) == 0 {
		return errors.New("-nodes is required")
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return err
		}
		cfg.token = strings.TrimSpace(string(b))
	}
	if cfg.token == "" && cfg.target != "etcd" {
		return errors.New("-token or -token-file is required")
	}
	var err error
	if cfg.clients, err = ints(clients); err != nil {
		return fmt.Errorf("-clients: %w", err)
	}
	if cfg.spread, err = ints(spread); err != nil {
		return fmt.Errorf("-spread: %w", err)
	}
	if cfg.prefix == "" {
		cfg.prefix = fmt.Sprintf("bench-%d", time.Now().UnixNano())
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	maxClients := 1
	for _, c := range append(slices.Clone(cfg.clients), cfg.spread...) {
		maxClients = max(maxClients, c)
	}
	hc := &http.Client{
		Timeout: cfg.requestLimit,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4 * maxClients * len(cfg.nodes),
			MaxIdleConnsPerHost: 2 * maxClients,
			MaxConnsPerHost:     0,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
	b := &bench{cfg: cfg, hc: hc}
	what := "creating members with POST /membership/member/"
	var leader string
	unit := "writes/s"
	if cfg.target == "regent-ipam" {
		what = fmt.Sprintf("allocating the next free address of subnet %d with POST /iaas/ip_address/", cfg.subnetID)
		unit = "allocs/s"
	}
	if cfg.target == "etcd" {
		what = fmt.Sprintf("etcd puts with POST /v3/kv/put (%d-byte keys, %d-byte values)", etcdKeyLen, etcdValueLen)
		b.etcdValue = etcdValue()
		leader, err = b.etcdLeader()
	} else {
		leader, err = b.leader()
	}
	if err != nil {
		return err
	}
	b.leaderURL = leader
	fmt.Printf("%s leader: %s; phases of %s after %s warm-up; %s\n\n", cfg.target, leader, cfg.duration, cfg.warmup, what)
	fmt.Printf("%-22s %8s %10s %8s %8s %8s %7s %9s\n", "target", "clients", unit, "p50_ms", "p90_ms", "p99_ms", "errors", "per_entry")
	var results []result
	for _, n := range cfg.clients {
		r := b.phase(fmt.Sprintf("c%d", n), n, []string{leader}, "leader", "leader", cfg.leaderPprof != "" && n == cfg.profileAt)
		results = append(results, r)
		r.print()
	}
	for _, n := range cfg.spread {
		r := b.phase(fmt.Sprintf("s%d", n), n, cfg.nodes, fmt.Sprintf("all %d nodes", len(cfg.nodes)), "spread", false)
		results = append(results, r)
		r.print()
	}
	if cfg.jsonOut != "" {
		j, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(cfg.jsonOut, append(j, '\n'), 0o644); err != nil {
			return err
		}
	}
	for _, r := range results {
		if r.Errors > 0 {
			fmt.Printf("\nfirst errors (%s, %d clients): %s\n", r.Target, r.Clients, strings.Join(r.SampleErrors, " | "))
		}
	}
	return nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

type bench struct {
	cfg       config
	hc        *http.Client
	phases    int    // phases started so far (part of etcd keys)
	etcdValue string // base64 of the value every etcd put writes
	leaderURL string // the leader's base URL (Regent: its /metrics has the group commit's histogram)
}

type result struct {
	System       string   `json:"system"` // regent, regent-ipam or etcd
	Mode         string   `json:"mode"`   // leader or spread
	Target       string   `json:"target"`
	Clients      int      `json:"clients"`
	Writes       int      `json:"writes"`
	Seconds      float64  `json:"seconds"`
	WritesPerSec float64  `json:"writes_per_sec"`
	P50ms        float64  `json:"p50_ms"`
	P90ms        float64  `json:"p90_ms"`
	P99ms        float64  `json:"p99_ms"`
	MaxMs        float64  `json:"max_ms"`
	Errors       int      `json:"errors"`
	SampleErrors []string `json:"sample_errors,omitempty"`
	// CommandsPerEntry is the leader's mean commands per raft entry over
	// the phase (its regent_raft_entry_commands histogram); 0 for etcd.
	CommandsPerEntry float64 `json:"commands_per_entry,omitempty"`
}

func (r result) print() {
	per := "-"
	if r.CommandsPerEntry > 0 {
		per = strconv.FormatFloat(r.CommandsPerEntry, 'f', 1, 64)
	}
	fmt.Printf("%-22s %8d %10.0f %8.2f %8.2f %8.2f %7d %9s\n", r.Target, r.Clients, r.WritesPerSec, r.P50ms, r.P90ms, r.P99ms, r.Errors, per)
}

// entryStats reads the sum and count of the leader's commands-per-entry
// histogram (zeros for etcd, or when /metrics does not answer).
func (b *bench) entryStats() (sum, count float64) {
	if b.cfg.target == "etcd" || b.leaderURL == "" {
		return 0, 0
	}
	resp, err := b.hc.Get(strings.TrimSuffix(b.leaderURL, "/") + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, 0
	}
	return entryStatsOf(string(body))
}

// entryStatsOf finds regent_raft_entry_commands_sum and _count in a
// Prometheus text exposition.
func entryStatsOf(metrics string) (sum, count float64) {
	for _, line := range strings.Split(metrics, "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		switch name {
		case "regent_raft_entry_commands_sum":
			sum, _ = strconv.ParseFloat(strings.TrimSpace(val), 64)
		case "regent_raft_entry_commands_count":
			count, _ = strconv.ParseFloat(strings.TrimSpace(val), 64)
		}
	}
	return sum, count
}

// leader asks the nodes for the leader's HTTP address.
func (b *bench) leader() (string, error) {
	var lastErr error
	for range 50 {
		for _, n := range b.cfg.nodes {
			req, _ := http.NewRequest(http.MethodGet, n+"/v1/operator/leader", nil)
			req.Header.Set("X-Auth-Token", b.cfg.token)
			resp, err := b.hc.Do(req)
			if err != nil {
				lastErr = err
				continue
			}
			var v struct {
				Content struct {
					HTTPAddr string `json:"http_addr"`
				} `json:"content"`
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK && v.Content.HTTPAddr != "" {
				return strings.TrimSuffix(v.Content.HTTPAddr, "/"), nil
			}
			lastErr = fmt.Errorf("%s: %s", n, resp.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("no leader: %v", lastErr)
}

// phase runs n clients against targets (client i uses targets[i%len]) for
// the warm-up and then the measured duration.
func (b *bench) phase(tag string, n int, targets []string, label, mode string, profile bool) result {
	var seq atomic.Uint64
	b.phases++
	phaseNo := b.phases
	path, want := "/membership/member/", http.StatusCreated
	switch b.cfg.target {
	case "etcd":
		path, want = "/v3/kv/put", http.StatusOK
	case "regent-ipam":
		path = "/iaas/ip_address/"
	}
	type clientStats struct {
		lat    []time.Duration
		errors int
		sample []string
	}
	stats := make([]clientStats, n)
	var measuring atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[i]
			target := targets[i%len(targets)] + path
			send := func(body []byte) error { return b.post(target, body, want) }
			if b.cfg.client == "raw" {
				rc, err := newRawConn(target, b.cfg.token, b.cfg.requestLimit)
				if err != nil {
					st.errors++
					st.sample = append(st.sample, err.Error())
					return
				}
				defer rc.close()
				send = func(body []byte) error { return rc.post(body, want) }
			}
			body := make([]byte, 0, 256)
			key := make([]byte, 0, etcdKeyLen)
			for ctx.Err() == nil {
				id := seq.Add(1)
				switch b.cfg.target {
				case "regent-ipam":
					body = append(body[:0], `{"subnet_id":`...)
					body = strconv.AppendUint(body, b.cfg.subnetID, 10)
					body = append(body, '}')
				case "etcd":
					key = etcdKey(key[:0], phaseNo, id)
					body = append(body[:0], `{"key":"`...)
					body = base64.StdEncoding.AppendEncode(body, key)
					body = append(body, `","value":"`...)
					body = append(body, b.etcdValue...)
					body = append(body, `"}`...)
				default:
					body = append(body[:0], `{"name":"`...)
					body = append(body, b.cfg.prefix...)
					body = append(body, '-')
					body = append(body, tag...)
					body = append(body, '-')
					body = strconv.AppendUint(body, id, 10)
					body = append(body, `"}`...)
				}
				counted := measuring.Load()
				start := time.Now()
				err := send(body)
				took := time.Since(start)
				if !counted || !measuring.Load() { // warm-up, or finished after the end
					continue
				}
				if err != nil {
					st.errors++
					if len(st.sample) < 3 {
						st.sample = append(st.sample, err.Error())
					}
					continue
				}
				st.lat = append(st.lat, took)
			}
		}()
	}
	time.Sleep(b.cfg.warmup)
	var prof chan error
	if profile {
		prof = make(chan error, 1)
		go func() { prof <- b.fetchProfile(b.cfg.duration) }()
	}
	sum0, n0 := b.entryStats()
	measuring.Store(true)
	start := time.Now()
	time.Sleep(b.cfg.duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	sum1, n1 := b.entryStats()
	cancel()
	wg.Wait()

	var all []time.Duration
	r := result{System: b.cfg.target, Mode: mode, Target: label, Clients: n, Seconds: elapsed.Seconds()}
	for _, st := range stats {
		all = append(all, st.lat...)
		r.Errors += st.errors
		for _, s := range st.sample {
			if len(r.SampleErrors) < 5 {
				r.SampleErrors = append(r.SampleErrors, s)
			}
		}
	}
	slices.Sort(all)
	r.Writes = len(all)
	r.WritesPerSec = float64(len(all)) / elapsed.Seconds()
	r.P50ms, r.P90ms, r.P99ms = ms(pct(all, 50)), ms(pct(all, 90)), ms(pct(all, 99))
	if n1 > n0 {
		r.CommandsPerEntry = (sum1 - sum0) / (n1 - n0)
	}
	if len(all) > 0 {
		r.MaxMs = ms(all[len(all)-1])
	}
	if prof != nil {
		if err := <-prof; err != nil {
			fmt.Fprintln(os.Stderr, "writebench: leader profile:", err)
		} else {
			fmt.Fprintf(os.Stderr, "writebench: leader CPU profile of the %d-client phase written to %s\n", n, b.cfg.profileOut)
		}
	}
	return r
}

func (b *bench) post(url string, body []byte, want int) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if b.cfg.token != "" {
		req.Header.Set("X-Auth-Token", b.cfg.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// fetchProfile records the leader's CPU profile for d (its pprof handler).
func (b *bench) fetchProfile(d time.Duration) error {
	secs := max(1, int(d.Seconds())-1)
	c := &http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(b.cfg.leaderPprof, "/"), secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(b.cfg.profileOut)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
