package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Sizes of the etcd puts, as in the etcd reference figures of this machine
// (etcd's benchmark tool: 16-byte keys, 128-byte values).
const (
	etcdKeyLen   = 16
	etcdValueLen = 128
)

// etcdKey appends a unique 16-byte printable key: "k", the phase number in
// three digits and the request's sequence number in twelve.
func etcdKey(dst []byte, phase int, seq uint64) []byte {
	dst = append(dst, 'k')
	dst = appendPadded(dst, uint64(phase%1000), 3)
	return appendPadded(dst, seq%1e12, 12)
}

func appendPadded(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	d := strconv.AppendUint(buf[:0], v, 10)
	for range width - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}

// etcdValue returns the base64 encoding of a random 128-byte printable value.
func etcdValue() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	v := make([]byte, etcdValueLen)
	for i := range v {
		v[i] = letters[rand.IntN(len(letters))]
	}
	return base64.StdEncoding.EncodeToString(v)
}

// etcdLeader asks every member for its status (POST /v3/maintenance/status,
// gRPC gateway) and returns the client URL of the member that is the leader.
func (b *bench) etcdLeader() (string, error) {
	var lastErr error
	for range 50 {
		for _, n := range b.cfg.nodes {
			resp, err := b.hc.Post(n+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
			if err != nil {
				lastErr = err
				continue
			}
			// The gateway encodes uint64 as JSON strings.
			var v struct {
				Header struct {
					MemberID string `json:"member_id"`
				} `json:"header"`
				Leader string `json:"leader"`
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			switch {
			case err != nil:
				lastErr = fmt.Errorf("%s: %v", n, err)
			case resp.StatusCode != http.StatusOK:
				lastErr = fmt.Errorf("%s: %s", n, resp.Status)
			case v.Leader == "" || v.Leader == "0":
				lastErr = fmt.Errorf("%s: no leader yet", n)
			case v.Leader == v.Header.MemberID:
				return n, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("no etcd leader: %v", lastErr)
}

// printReport prints the results of several runs (their -json files) as one
// table. Each Regent row whose client count etcd also ran gets the ratio of
// its writes/s to etcd's leader phase at that count.
func printReport(files []string) error {
	var all []result
	for _, f := range files {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var rs []result
		if err := json.Unmarshal(b, &rs); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for i := range rs {
			if rs[i].System == "" { // written before -target existed
				rs[i].System = "regent"
			}
			if rs[i].Mode == "" {
				rs[i].Mode = "leader"
				if strings.HasPrefix(rs[i].Target, "all ") {
					rs[i].Mode = "spread"
				}
			}
		}
		all = append(all, rs...)
	}
	etcd := map[int]float64{}
	for _, r := range all {
		if r.System == "etcd" && r.Mode == "leader" {
			etcd[r.Clients] = r.WritesPerSec
		}
	}
	fmt.Printf("%-16s %8s %10s %8s %8s %8s %7s %12s\n", "target", "clients", "writes/s", "p50_ms", "p90_ms", "p99_ms", "errors", "regent/etcd")
	for _, r := range all {
		ratio := ""
		if e, ok := etcd[r.Clients]; ok && r.System == "regent" && e > 0 {
			ratio = fmt.Sprintf("%.2fx", r.WritesPerSec/e)
		}
		fmt.Printf("%-16s %8d %10.0f %8.2f %8.2f %8.2f %7d %12s\n", r.System+" "+r.Mode, r.Clients, r.WritesPerSec, r.P50ms, r.P90ms, r.P99ms, r.Errors, ratio)
	}
	return nil
}
