// Command regent-pprof runs one controller node exactly as
// `regent-controller server` does (same server package, same defaults) and
// additionally serves net/http/pprof on -pprof-addr, so that
// scripts/bench/writes can profile a leader under load (PROFILE=1) without
// a profiling endpoint in the product. It takes the subset of the server's
// flags the benchmark uses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/regentcloud/regent/controller/server"
)

func main() {
	cfg := server.Defaults()
	pprofAddr := flag.String("pprof-addr", "127.0.0.1:6060", "listen address of the pprof handler")
	flag.StringVar(&cfg.NodeID, "node-id", "", "node id")
	flag.StringVar(&cfg.DataDir, "data-dir", "", "data dir")
	flag.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP API listen address")
	flag.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "raft address")
	flag.StringVar(&cfg.DNSAddr, "dns-addr", cfg.DNSAddr, "DNS address")
	flag.BoolVar(&cfg.Bootstrap, "bootstrap", false, "bootstrap a new cluster")
	flag.StringVar(&cfg.Join, "join", "", "join the cluster at this HTTP address")
	flag.StringVar(&cfg.ClusterToken, "cluster-token", os.Getenv(server.EnvClusterToken), "cluster token (default $"+server.EnvClusterToken+", which ps does not show)")
	flag.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level")
	flag.Parse()

	s, err := server.New(cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "regent-pprof:", err)
		os.Exit(1)
	}
	go func() {
		srv := &http.Server{Addr: *pprofAddr, ReadHeaderTimeout: 10 * time.Second}
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "regent-pprof: pprof:", err)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "regent-pprof:", err)
		os.Exit(1)
	}
}
