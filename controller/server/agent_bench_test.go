package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/internal/apitest"
)

// BenchmarkAgentWorkWakeups: 50 agents long-poll their work (GET
// /v1/agent/work?index&wait, each polling again at once with the index it
// was answered) while a tenant creates Melange blocks, a table every work
// is built from but which changes no agent's work. `index` polls as the
// agents did before the content hash, `hash` passes ?hash and waits on
// what its work was read from (state.Watch), `hash-tables` passes ?hash
// but waits on the tables as before the watch (api.WatchReads off). It
// reports the work answers and the unchanged wake-ups (renders that found
// the work the same) per tenant write (all agents together), the writes per
// second and the CPU per write; docs/benchmarks.md, "Agent work long-poll".
func BenchmarkAgentWorkWakeups(b *testing.B) {
	for _, mode := range []string{"index", "hash-tables", "hash"} {
		b.Run(mode, func(b *testing.B) {
			api.WatchReads = mode == "hash"
			// After the node has stopped (cleanups run last first).
			b.Cleanup(func() { api.WatchReads = true })
			e := newAgentEnv(b)
			c, f, x := e.c.For(b), e.f, e.x
			c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("p"), f.reg, x, 2), f.r.Token(apitest.MemberAdmin)).Expect(201)
			ctx, cancel := context.WithCancel(context.Background())
			var answers atomic.Int64
			var wg sync.WaitGroup
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			url := fmt.Sprintf("%s/v1/agent/work?server_id=%d&router_id=%d", f.n.URL, e.server, e.router)
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var index, hash string
					for ctx.Err() == nil {
						u := url
						if index != "" {
							u += "&wait=60s&index=" + index
							if mode != "index" {
								u += "&hash=" + hash
							}
						}
						req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
						req.Header.Set("X-Auth-Token", e.robot)
						resp, err := hc.Do(req)
						if err != nil {
							continue
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if index != "" {
							answers.Add(1)
						}
						index, hash = resp.Header.Get("X-Regent-Index"), resp.Header.Get("X-Regent-Content-Hash")
					}
				}()
			}
			time.Sleep(500 * time.Millisecond) // every agent holds its first answer
			answers.Store(0)
			unchanged0 := metricValue(b, f.n, "regent_http_blocking_unchanged_total")
			b.ResetTimer()
			cpu0 := cpuTime()
			start := time.Now()
			for i := range b.N {
				c.Do("POST", melangeBlocks(f.r.MemberA), map[string]any{"ip_block": map[string]any{
					"cidr": "10." + strconv.Itoa(100+i/65536%100) + "." + strconv.Itoa(i/256%256) + "." + strconv.Itoa(i%256) + "/32", "type": "private"}}, f.root).Expect(201)
			}
			took := time.Since(start)
			cpu := cpuTime() - cpu0
			b.StopTimer()
			n := answers.Load()
			cancel()
			wg.Wait()
			b.ReportMetric(float64(n)/float64(b.N), "answers/write")
			b.ReportMetric((metricValue(b, f.n, "regent_http_blocking_unchanged_total")-unchanged0)/float64(b.N), "unchanged/write")
			b.ReportMetric(float64(b.N)/took.Seconds(), "writes/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/write")
		})
	}
}

// cpuTime is the CPU time this process (controller, agents and tenant
// alike) has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
