// Command regent-controller runs a Regent controller node (`server`) and the
// operator subcommands that talk to a running cluster.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/regentcloud/regent/controller/cluster"
	"github.com/regentcloud/regent/controller/internal/cli"
	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/api"
)

const usage = `Usage: regent-controller <command> [flags]

Commands:
  server                  run a controller node (-dev for a single-node development cluster)
  validate                check a node's configuration (the server's flags and -config file)
  members                 list the cluster's nodes
  join ADDR               ask the cluster at ADDR to add a node (normally done by server -join)
  leave [NODE_ID]         remove a node (default: the node at -addr) from the cluster
  transfer-leader         hand leadership to another node (-to NODE_ID; default: the most up-to-date)
  snapshot save FILE      download a snapshot of the whole state
  snapshot restore FILE   replace the whole state with a snapshot
  token create            create an API token (-user, -name, -robot-region, -server)
  version                 print the version

Run 'regent-controller <command> -h' for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "server":
		err = runServer(args)
	case "validate":
		err = runValidate(args, os.Stdout, os.Stderr)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
	case "version", "-version", "--version":
		fmt.Println(api.VersionString("regent-controller"))
	default:
		err = runOperator(cmd, args)
	}
	if errors.Is(err, cli.ErrHelp) {
		err = nil
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprint(os.Stderr, ue.message())
		} else {
			fmt.Fprintf(os.Stderr, "regent-controller: %v\n", err)
		}
	}
	os.Exit(exitStatus(err))
}

// exitStatus is the process's exit status after err: 0 for none, 78
// (server.ExitConfig, EX_CONFIG) for a configuration that cannot work
// and for a mistake on the command line of `server` (its flags are its
// configuration, in the unit's ExecStart), 2 for a mistake on the command
// line of another command, and 1 for any other failure. systemd does not
// restart on 78 (deploy/regent-controller.service: RestartPreventExitStatus);
// 2 is not that code because Go's runtime exits with 2 on a panic or a
// fatal error, which a restart may well cure.
func exitStatus(err error) int {
	var ue usageError
	var ce configError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue) && ue.cmd == "server":
		return server.ExitConfig
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &ce):
		return server.ExitConfig
	}
	return 1
}

// usageError is a mistake on the command line (exit status 2; 78 for
// server, see exitStatus). cmd names the command whose -h the operator
// should read ("snapshot save"); without it the program's usage is printed.
// configError is a server configuration that cannot work (exit status 78,
// server.ExitConfig).
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

type usageError struct{ msg, cmd string }

// message is what main prints for u on stderr.
func (u usageError) message() string {
	switch {
	case u.cmd == "":
		return fmt.Sprintf("regent-controller: %s\n\n%s", u.msg, usage)
	case strings.Contains(u.msg, " -h'"):
		return fmt.Sprintf("regent-controller: %s\n", u.msg)
	}
	return fmt.Sprintf("regent-controller: %s\nRun 'regent-controller %s -h' for its usage.\n", u.msg, u.cmd)
}

// listFlag is a comma-separated list flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func (u usageError) Error() string { return u.msg }

// intFlag is the flag of an optional whole-number setting (nil: unset, the
// default); Finish checks its range.
type intFlag struct{ p **int }

func (f intFlag) String() string {
	if f.p == nil || *f.p == nil {
		return ""
	}
	return strconv.Itoa(**f.p)
}

func (f intFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*f.p = &v
	return nil
}

// serverFlags defines the flags of "server": each sets a field of flags,
// which overlay copies into the configuration when the flag was given.
func serverFlags() (fs *flag.FlagSet, flags *server.Config, configFile *string) {
	cfg := server.Defaults()
	fs = flag.NewFlagSet("server", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: regent-controller server [flags]\n\n"+
			"Runs one controller node. Every flag is also an attribute of the -config file\n"+
			"(-node-id is node_id); flags given on the command line win.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	configFile = fs.String("config", "", "HCL config `file`; flags given on the command line override it")
	flags = &server.Config{}
	fs.BoolVar(&flags.Dev, "dev", false, "single-node development cluster: bootstraps itself, data in ./data")
	fs.StringVar(&flags.NodeID, "node-id", "", "stable unique node id (default: hostname, or \"dev\" with -dev)")
	fs.StringVar(&flags.DataDir, "data-dir", "", "directory for raft state, snapshots and root.token")
	fs.StringVar(&flags.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP API listen address")
	fs.StringVar(&flags.RaftAddr, "raft-addr", cfg.RaftAddr, "raft listen and advertise address")
	fs.StringVar(&flags.DNSAddr, "dns-addr", cfg.DNSAddr, "authoritative DNS listen address, UDP and TCP (\"off\" disables)")
	fs.Var((*listFlag)(&flags.DNSNameservers), "dns-nameservers", "comma-separated apex NS names of every zone (default localhost.)")
	fs.StringVar(&flags.DNSHostmaster, "dns-hostmaster", "", "SOA contact, e.g. hostmaster@example.net (default hostmaster.<zone>)")
	fs.Var((*listFlag)(&flags.DNSAllowTransfer), "dns-allow-transfer", "comma-separated addresses or CIDRs allowed to AXFR/IXFR")
	fs.Var((*listFlag)(&flags.DNSNotify), "dns-notify", "comma-separated secondaries (host:port) to NOTIFY on every change")
	fs.IntVar(&flags.DNSTCPConns, "dns-tcp-conns", 0, "most TCP connections of the DNS server open at once (default 1000); beyond it new ones wait until one closes")
	fs.IntVar(&flags.DNSUDPSockets, "dns-udp-sockets", 0, "UDP sockets of the DNS server: 1 (default) read by every core; more share the port with SO_REUSEPORT (faster; only when the controller runs as a user of its own)")
	fs.StringVar(&flags.AdvertiseHTTP, "advertise-http", "", "base URL peers use to reach this node's API (default http(s)://<http-addr>; with -http-addr 0.0.0.0 or [::], the -raft-addr host with the HTTP port)")
	fs.BoolVar(&flags.Bootstrap, "bootstrap", false, "bootstrap a new cluster with this node (ignored once raft state exists)")
	fs.StringVar(&flags.Join, "join", "", "HTTP `address` of any cluster member to join")
	fs.StringVar(&flags.ClusterToken, "cluster-token", "", "shared secret a node must present to join (default $"+server.EnvClusterToken+"; the environment or the -config file keep it out of ps)")
	fs.StringVar(&flags.LogLevel, "log-level", cfg.LogLevel, "trace, debug, info, warn or error")
	fs.BoolVar(&flags.LogJSON, "log-json", false, "log as JSON lines")
	fs.StringVar(&flags.HTTPTLSCert, "http-tls-cert", "", "TLS certificate for the HTTP API")
	fs.StringVar(&flags.HTTPTLSKey, "http-tls-key", "", "TLS key for the HTTP API")
	fs.StringVar(&flags.HTTPTLSCA, "http-tls-ca", "", "CA that signs peers' HTTPS certificates (forwarding, join)")
	fs.StringVar(&flags.RaftTLSCert, "raft-tls-cert", "", "certificate for mutual TLS between nodes")
	fs.StringVar(&flags.RaftTLSKey, "raft-tls-key", "", "key for mutual TLS between nodes")
	fs.StringVar(&flags.RaftTLSCA, "raft-tls-ca", "", "CA for mutual TLS between nodes")
	fs.StringVar(&flags.AuditLog, "audit-log", "", "file that receives a JSON line per request that may change something (who, what, when, the answer); reopened on SIGHUP")
	fs.Var(&flags.HeartbeatTimeout, "heartbeat-timeout", "raft heartbeat timeout (default 500ms)")
	fs.Var(&flags.ElectionTimeout, "election-timeout", "raft election timeout (default 500ms, or the heartbeat timeout if longer)")
	fs.Var(&flags.LeaderLeaseTimeout, "leader-lease-timeout", "raft leader lease timeout (default 250ms, or the heartbeat timeout if shorter)")
	fs.Var(&flags.CommitLinger, "commit-linger", "under load, how long the next raft entry may wait for more writes; 0 disables (default 5ms)")
	fs.Var(intFlag{&flags.RaftSnapshotThreshold}, "raft-snapshot-threshold", "log entries written since the last raft snapshot that make raft take the next (default 8192)")
	fs.Var(&flags.RaftSnapshotInterval, "raft-snapshot-interval", "how often raft checks -raft-snapshot-threshold, at least 5s (default 2m)")
	fs.Var(intFlag{&flags.RaftTrailingLogs}, "raft-trailing-logs", "log entries kept after a raft snapshot, so a follower that lags by fewer catches up without a snapshot (default 10240)")
	fs.Var(&flags.DeadServerCleanup, "dead-server-cleanup", "remove a node unreachable this long; 0 disables (default 5m)")
	fs.Var(&flags.KeepDeallocatedIPsFor, "keep-deallocated-ips-for", "how long released IP addresses are kept before purge (default 48h)")
	fs.StringVar(&flags.MelangeDefaultCIDR, "melange-default-cidr", "", "Melange: CIDR of the block created for an unknown network (default: none, 404)")
	fs.StringVar(&flags.MelangeDNS1, "melange-dns1", "", "Melange: dns1 of a block created without one (default: none, null)")
	fs.StringVar(&flags.MelangeDNS2, "melange-dns2", "", "Melange: dns2 of a block created without one (default: none, null)")
	fs.Var(&flags.AgentHeartbeat, "agent-heartbeat", "heartbeat interval agents are told to use (default 10s)")
	fs.Var(&flags.AgentDownAfter, "agent-down-after", "mark an agent down after this long without a heartbeat (default 3 heartbeats)")
	return fs, flags, configFile
}

func runServer(args []string) error {
	cfg, err := serverConfig(args, os.Stdout)
	if err != nil {
		return err
	}
	// A configuration that cannot work is exit status 78 (EX_CONFIG), so
	// that a service manager does not restart it in a loop
	// (deploy/regent-controller.service: RestartPreventExitStatus=78).
	if err := cfg.Finish(); err != nil {
		return configError{err}
	}
	// Signals are caught from here on: a SIGHUP while the node starts
	// (systemctl reload right after a restart) must not end it, which is
	// SIGHUP's default action. It is applied once the node runs.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	s, err := server.New(cfg, os.Stdout)
	if errors.Is(err, cluster.ErrStateDamaged) || errors.Is(err, server.ErrJoinNeedsClusterToken) {
		// Exit status 78: a restart would find the same damage, or be
		// refused the same join.
		return configError{err}
	}
	if err != nil {
		return err
	}
	if cfg.Dev {
		printDevBanner(os.Stdout, s, s.Config())
	}
	var fatal error
wait:
	for {
		select {
		case got := <-sig:
			if got == syscall.SIGHUP {
				// The flags and the -config file again: the log level and
				// the TLS files change at once (server.Reload).
				s.Logger().Info("reloading the configuration", "signal", got.String())
				_ = s.Reload(func() (server.Config, error) { return serverConfig(args, io.Discard) })
				continue
			}
			s.Logger().Info("shutting down", "signal", got.String())
		case fatal = <-s.Fatal():
			s.Logger().Info("shutting down", "reason", "configuration error")
		}
		break wait
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = s.Shutdown(ctx)
	if fatal != nil {
		// Exit status 78: restarting with the same configuration cannot help
		// (deploy/regent-controller.service: RestartPreventExitStatus=78).
		return configError{fatal}
	}
	return err
}

// runValidate checks the configuration the same flags would give "server"
// (server.Check) and says so; a configuration that would not start is a
// configError (exit status 78). What works but limits the node
// (server.Warnings: no cluster token) is a warning on stderr.
func runValidate(args []string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, "Usage: regent-controller validate [server flags]\n\n"+
				"Checks the configuration those flags and their -config file give a node, without\n"+
				"starting one: the settings, the DNS settings, the TLS files and the audit file.\n"+
				"Prints \"configuration valid\", or the problems and exits with status 78; warns on\n"+
				"stderr about what works but limits the node (no cluster token: no node can join).\n\n")
			break
		}
	}
	cfg, err := serverConfig(args, stdout)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			ue.cmd = "validate"
			return ue
		}
		return err
	}
	for _, w := range server.Warnings(cfg) {
		fmt.Fprintf(stderr, "regent-controller: warning: %s\n", w)
	}
	if err := server.Check(cfg); err != nil {
		return configError{err}
	}
	fmt.Fprintln(stdout, "configuration valid")
	return nil
}

// serverConfig parses the flags of "server" and reads the -config file they
// name. -h prints the usage on stdout and returns cli.ErrHelp; a mistake on
// the command line is a usageError.
func serverConfig(args []string, stdout io.Writer) (server.Config, error) {
	cfg := server.Defaults()
	fs, flags, configFile := serverFlags()
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			stdout.Write(buf.Bytes())
			return cfg, cli.ErrHelp
		}
		return cfg, usageError{err.Error(), "server"}
	}
	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Sprintf("server takes no arguments, got %q", fs.Args()), "server"}
	}
	if *configFile != "" {
		if err := server.LoadFile(*configFile, &cfg); err != nil {
			return cfg, configError{fmt.Errorf("config: %w", err)}
		}
	}
	// Flags given on the command line override the file.
	fs.Visit(func(f *flag.Flag) { overlay(&cfg, flags, f.Name) })
	// The cluster token may come from the environment instead, which ps
	// does not show.
	if cfg.ClusterToken == "" {
		cfg.ClusterToken = os.Getenv(server.EnvClusterToken)
	}
	return cfg, nil
}

func overlay(cfg, flags *server.Config, name string) {
	switch name {
	case "dev":
		cfg.Dev = flags.Dev
	case "node-id":
		cfg.NodeID = flags.NodeID
	case "data-dir":
		cfg.DataDir = flags.DataDir
	case "http-addr":
		cfg.HTTPAddr = flags.HTTPAddr
	case "raft-addr":
		cfg.RaftAddr = flags.RaftAddr
	case "melange-default-cidr":
		cfg.MelangeDefaultCIDR = flags.MelangeDefaultCIDR
	case "melange-dns1":
		cfg.MelangeDNS1 = flags.MelangeDNS1
	case "melange-dns2":
		cfg.MelangeDNS2 = flags.MelangeDNS2
	case "agent-heartbeat":
		cfg.AgentHeartbeat = flags.AgentHeartbeat
	case "agent-down-after":
		cfg.AgentDownAfter = flags.AgentDownAfter
	case "dns-addr":
		cfg.DNSAddr = flags.DNSAddr
	case "dns-nameservers":
		cfg.DNSNameservers = flags.DNSNameservers
	case "dns-hostmaster":
		cfg.DNSHostmaster = flags.DNSHostmaster
	case "dns-allow-transfer":
		cfg.DNSAllowTransfer = flags.DNSAllowTransfer
	case "dns-notify":
		cfg.DNSNotify = flags.DNSNotify
	case "dns-udp-sockets":
		cfg.DNSUDPSockets = flags.DNSUDPSockets
	case "dns-tcp-conns":
		cfg.DNSTCPConns = flags.DNSTCPConns
	case "advertise-http":
		cfg.AdvertiseHTTP = flags.AdvertiseHTTP
	case "bootstrap":
		cfg.Bootstrap = flags.Bootstrap
	case "join":
		cfg.Join = flags.Join
	case "cluster-token":
		cfg.ClusterToken = flags.ClusterToken
	case "log-level":
		cfg.LogLevel = flags.LogLevel
	case "log-json":
		cfg.LogJSON = flags.LogJSON
	case "http-tls-cert":
		cfg.HTTPTLSCert = flags.HTTPTLSCert
	case "http-tls-key":
		cfg.HTTPTLSKey = flags.HTTPTLSKey
	case "http-tls-ca":
		cfg.HTTPTLSCA = flags.HTTPTLSCA
	case "raft-tls-cert":
		cfg.RaftTLSCert = flags.RaftTLSCert
	case "raft-tls-key":
		cfg.RaftTLSKey = flags.RaftTLSKey
	case "raft-tls-ca":
		cfg.RaftTLSCA = flags.RaftTLSCA
	case "audit-log":
		cfg.AuditLog = flags.AuditLog
	case "heartbeat-timeout":
		cfg.HeartbeatTimeout = flags.HeartbeatTimeout
	case "election-timeout":
		cfg.ElectionTimeout = flags.ElectionTimeout
	case "leader-lease-timeout":
		cfg.LeaderLeaseTimeout = flags.LeaderLeaseTimeout
	case "commit-linger":
		cfg.CommitLinger = flags.CommitLinger
	case "raft-snapshot-threshold":
		cfg.RaftSnapshotThreshold = flags.RaftSnapshotThreshold
	case "raft-snapshot-interval":
		cfg.RaftSnapshotInterval = flags.RaftSnapshotInterval
	case "raft-trailing-logs":
		cfg.RaftTrailingLogs = flags.RaftTrailingLogs
	case "dead-server-cleanup":
		cfg.DeadServerCleanup = flags.DeadServerCleanup
	case "keep-deallocated-ips-for":
		cfg.KeepDeallocatedIPsFor = flags.KeepDeallocatedIPsFor
	}
}

func dnsHint(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "off"
	}
	return fmt.Sprintf("%s (UDP and TCP): dig @%s -p %s <name>", addr, host, port)
}

// printDevBanner waits for the dev node to be ready and tells the operator
// how to use it, root token included, at every start (the node itself
// prints no bootstrap banner in dev mode).
func printDevBanner(w io.Writer, s *server.Server, cfg server.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.WaitReady(ctx)
	tokenPath := filepath.Join(cfg.DataDir, server.RootTokenFile)
	tok := "$(cat " + tokenPath + ")"
	if b, err := os.ReadFile(tokenPath); err == nil && len(b) > 0 {
		tok = strings.TrimSpace(string(b))
	}
	fmt.Fprintf(w, `Regent controller (dev mode) is serving %[1]s
  data dir:   %[2]s
  root token: %[3]s (in %[4]s)
  try:        curl -s -H "X-Auth-Token: %[3]s" %[1]s/membership/member/
  metrics:    %[1]s/metrics    health: %[1]s/healthz
  dns:        %[5]s
Press Ctrl-C to stop.
`, s.URL(), cfg.DataDir, tok, tokenPath, dnsHint(s.DNSAddr()))
}
