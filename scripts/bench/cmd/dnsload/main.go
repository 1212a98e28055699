// Command dnsload creates the benchmark zone of scripts/bench/dns through a
// controller's API and writes the dnsperf query file for it.
//
// The zone (dns-facts §8): an MX, a TXT, a CNAME www → host1, an SRV
// _sip._tcp, a wildcard *.wild and N A records hostN. The query file mixes
// 60 % existing A, 10 % NXDOMAIN, 10 % the CNAME, 10 % AAAA NODATA and 10 %
// MX at the apex.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "controller API base URL")
	token := flag.String("token", "", "API token (default: $REGENT_TOKEN)")
	zone := flag.String("zone", "example.test", "zone to create")
	names := flag.Int("names", 10000, "number of A records hostN")
	queries := flag.String("queries", "", "write a dnsperf query file here")
	nq := flag.Int("nqueries", 20000, "queries in the query file")
	conc := flag.Int("c", 32, "concurrent API requests")
	flag.Parse()
	if *token == "" {
		*token = os.Getenv("REGENT_TOKEN")
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conc}}
	post := func(path string, body any) (map[string]any, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, *api+path, bytes.NewReader(b))
		req.Header.Set("X-Auth-Token", *token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("POST %s: %s: %s", path, resp.Status, raw)
		}
		var v struct {
			Content map[string]any `json:"content"`
		}
		return v.Content, json.Unmarshal(raw, &v)
	}
	start := time.Now()
	d, err := post("/iaas/domain/", map[string]any{"name": *zone})
	if err != nil {
		log.Fatal(err)
	}
	dom := d["id"]
	z := *zone
	recs := []map[string]any{
		{"name": "@", "type": "MX", "content": "mail." + z, "priority": 10},
		{"name": "@", "type": "TXT", "content": "v=spf1 mx -all"},
		{"name": "mail." + z, "type": "A", "content": "192.0.2.25"},
		{"name": "www." + z, "type": "CNAME", "content": "host1." + z},
		{"name": "_sip._tcp." + z, "type": "SRV", "content": "5 5060 sip." + z, "priority": 10},
		{"name": "sip." + z, "type": "A", "content": "192.0.2.26"},
		{"name": "*.wild." + z, "type": "A", "content": "192.0.2.27"},
	}
	for i := 1; i <= *names; i++ {
		recs = append(recs, map[string]any{"name": fmt.Sprintf("host%d.%s", i, z), "type": "A",
			"content": fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)})
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *conc)
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(recs) {
					return
				}
				r := recs[i]
				r["domain_id"], r["ttl"] = dom, 3600
				if _, err := post("/iaas/record/", r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "dnsload: zone %s with %d records created in %s\n", z, len(recs), time.Since(start).Round(time.Millisecond))
	if *queries == "" {
		return
	}
	var b strings.Builder
	for i := 0; i < *nq; i++ {
		switch k := i % 10; {
		case k < 6:
			fmt.Fprintf(&b, "host%d.%s A\n", 1+(i*7919)%*names, z)
		case k == 6:
			fmt.Fprintf(&b, "nope%d.%s A\n", i, z)
		case k == 7:
			fmt.Fprintf(&b, "www.%s A\n", z)
		case k == 8:
			fmt.Fprintf(&b, "host%d.%s AAAA\n", 1+(i*104729)%*names, z)
		default:
			fmt.Fprintf(&b, "%s MX\n", z)
		}
	}
	if err := os.WriteFile(*queries, []byte(b.String()), 0o644); err != nil {
		log.Fatal(err)
	}
}
