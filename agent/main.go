// Command regent-agent is the Regent daemon on every hypervisor and
// network appliance: it registers the server with the controllers,
// heartbeats its capacity, and builds the work it is given (virtual
// routers for the network role, VMs through libvirtd for the hypervisor
// role).
//
//	regent-agent -config /etc/regent/agent.hcl [flags]
//
// Every attribute of the HCL file is also a flag (the attribute name with
// dashes); a flag given on the command line overrides the file.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/agent/daemon"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/logx"
)

func main() {
	err := run(os.Args[1:], os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "regent-agent:", err)
	}
	os.Exit(exitCode(err))
}

// exitConfig is EX_CONFIG of sysexits.h.
const exitConfig = 78

// exitCode is 0 after -h (the usage was asked for), 1 when the running
// daemon failed, and 78 (exitConfig) when it could not start (flags,
// configuration, privileges): the systemd unit does not restart on 78
// (RestartPreventExitStatus), since a restart does not fix a
// configuration. Not 2: Go's runtime exits with 2 on a panic or a fatal
// error, which the unit must restart (the agent serves its routers' VM
// metadata).
func exitCode(err error) int {
	var rt runtimeError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &rt):
		return 1
	}
	return exitConfig
}

// runtimeError is a failure of the daemon after it started.
type runtimeError struct{ error }

func (e runtimeError) Unwrap() error { return e.error }

// listFlag splits a comma-separated list.
func listFlag(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parse reads the flags and the config file into a finished Config.
func parse(args []string, stderr io.Writer) (daemon.Config, error) {
	fs := flag.NewFlagSet("regent-agent", flag.ContinueOnError)
	// The usage goes out for -h alone: a mistaken flag is one line and a
	// hint, not the error twice around eighty lines of usage in the journal.
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	configFile := fs.String("config", "", "HCL config file (see configs/agent.hcl)")
	// Flags are applied after the file, in command-line order.
	var set []func(*daemon.Config) error
	str := func(name, usage string, field func(*daemon.Config) *string) {
		fs.Func(name, usage, func(v string) error {
			set = append(set, func(c *daemon.Config) error { *field(c) = v; return nil })
			return nil
		})
	}
	list := func(name, usage string, field func(*daemon.Config) *[]string) {
		fs.Func(name, usage+" (comma-separated)", func(v string) error {
			set = append(set, func(c *daemon.Config) error { *field(c) = listFlag(v); return nil })
			return nil
		})
	}
	list("controllers", "controller base URLs, tried in order", func(c *daemon.Config) *[]string { return &c.Controllers })
	str("ca-file", "PEM CA that verifies https controllers", func(c *daemon.Config) *string { return &c.CAFile })
	str("token", "robot token (prefer -token-file)", func(c *daemon.Config) *string { return &c.Token })
	str("token-file", "file holding the robot token", func(c *daemon.Config) *string { return &c.TokenFile })
	str("hostname", "host name the controller knows this server/router by (default os.Hostname)", func(c *daemon.Config) *string { return &c.Hostname })
	list("roles", "roles: hypervisor, network", func(c *daemon.Config) *[]string { return &c.Roles })
	str("data-dir", "state directory (default /var/lib/regent-agent)", func(c *daemon.Config) *string { return &c.DataDir })
	str("segment-mode", "tenant segments: vxlan or vlan (default vxlan)", func(c *daemon.Config) *string { return &c.SegmentMode })
	str("public-bridge", "bridge of the region's floating subnet (default br-public)", func(c *daemon.Config) *string { return &c.PublicBridge })
	str("public-bridge-addr", "address/len put on the public bridge (optional)", func(c *daemon.Config) *string { return &c.PublicBridgeAddr })
	str("vtep-addr", "local VXLAN tunnel endpoint address", func(c *daemon.Config) *string { return &c.VTEPAddr })
	str("underlay-device", "link of the VTEP (vxlan) or parent of VLAN sub-interfaces (vlan)", func(c *daemon.Config) *string { return &c.UnderlayDevice })
	str("link-prefix", "prefix of host links the agent creates, at most 4 characters (default rg)", func(c *daemon.Config) *string { return &c.LinkPrefix })
	str("namespace-prefix", "prefix of router namespaces (default P)", func(c *daemon.Config) *string { return &c.NamespacePrefix })
	fs.Func("storage", "storage type=directory (repeatable)", func(v string) error {
		t, dir, ok := strings.Cut(v, "=")
		if !ok || t == "" || dir == "" {
			return fmt.Errorf("want TYPE=DIR, got %q", v)
		}
		set = append(set, func(c *daemon.Config) error {
			if c.Storage == nil {
				c.Storage = map[string]string{}
			}
			c.Storage[t] = dir
			return nil
		})
		return nil
	})
	str("libvirt-socket", "libvirtd's unix socket, hypervisor role (default /var/run/libvirt/libvirt-sock)", func(c *daemon.Config) *string { return &c.LibvirtSocket })
	str("domain-type", "libvirt domain type: kvm or qemu (default: kvm where /dev/kvm exists)", func(c *daemon.Config) *string { return &c.DomainType })
	str("domain-prefix", "prefix of the libvirt domains (and pools) of this agent's VMs", func(c *daemon.Config) *string { return &c.DomainPrefix })
	str("storage-root", "directory of the pools of storage types not in -storage (default <data-dir>/pools)", func(c *daemon.Config) *string { return &c.StorageRoot })
	str("image-dir", "directory that relative image sources are resolved in (default <data-dir>/images)", func(c *daemon.Config) *string { return &c.ImageDir })
	str("seed-dir", "directory of the VMs' NoCloud seed ISOs (default <data-dir>/seeds)", func(c *daemon.Config) *string { return &c.SeedDir })
	str("backup-dir", "directory of VM backups (default <data-dir>/backups)", func(c *daemon.Config) *string { return &c.BackupDir })
	str("console-log-dir", "directory of the VMs' serial console logs (default <data-dir>/console)", func(c *daemon.Config) *string { return &c.ConsoleLogDir })
	str("shutdown-timeout", "ACPI shutdown wait before a quiesce destroys the domain (default 2m)", func(c *daemon.Config) *string { return &c.ShutdownTimeout })
	str("image-retention", "how long an image volume no VM, disk or backup uses stays; 0s: removed when unused (default 24h)", func(c *daemon.Config) *string { return &c.ImageRetention })
	str("vpn-mode", "VPN ESP: xfrm (kernel) or libipsec (userspace); default xfrm where the kernel has XFRM interfaces", func(c *daemon.Config) *string { return &c.VPNMode })
	str("charon-path", "charon-systemd binary, network role VPNs (default /usr/sbin/charon-systemd)", func(c *daemon.Config) *string { return &c.CharonPath })
	str("vpn-run-dir", "directory of the per-router charon sockets, configs and logs (default <data-dir>/vpn)", func(c *daemon.Config) *string { return &c.VPNRunDir })
	str("metrics-addr", "listen address of /metrics and /healthz, \"off\": none (default 127.0.0.1:8090)", func(c *daemon.Config) *string { return &c.MetricsAddr })
	str("log-level", "trace, debug, info, warn, error (default info)", func(c *daemon.Config) *string { return &c.LogLevel })
	fs.BoolFunc("log-json", "log JSON lines", func(v string) error {
		b := v == "true" || v == "1"
		if !b && v != "false" && v != "0" {
			return fmt.Errorf("want a boolean, got %q", v)
		}
		set = append(set, func(c *daemon.Config) error { c.LogJSON = b; return nil })
		return nil
	})
	str("work-wait", "how long one blocking work query waits, 1s to 10m (default 5m)", func(c *daemon.Config) *string { return &c.WorkWait })
	str("resync-interval", "how often every object is applied again, drift repair (default 5m)", func(c *daemon.Config) *string { return &c.ResyncInterval })

	showVersion := fs.Bool("version", false, "print the version and exit")

	cfg := daemon.Defaults()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			stderr.Write(usage.Bytes())
			return cfg, err
		}
		return cfg, fmt.Errorf("%w\nRun 'regent-agent -h' for its usage.", err)
	}
	if *showVersion {
		fmt.Println(api.VersionString("regent-agent"))
		return cfg, flag.ErrHelp
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *configFile != "" {
		if err := daemon.LoadFile(*configFile, &cfg); err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
	}
	for _, f := range set {
		if err := f(&cfg); err != nil {
			return cfg, err
		}
	}
	if err := cfg.Finish(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// hangup handles a SIGHUP: the configuration read again for its
// log_level (level is the one in use; the result, the one now), then
// reload (token_file and ca_file: Daemon.ReloadFiles).
func hangup(args []string, log hclog.Logger, level string, reload func()) string {
	log.Info("reloading log_level, token_file and ca_file", "signal", "hangup")
	if c, err := parse(args, io.Discard); err != nil {
		log.Error("cannot read the configuration again; log_level unchanged", "error", err)
	} else if c.LogLevel != level {
		log.SetLevel(hclog.LevelFromString(c.LogLevel))
		log.Info("log level changed", "from", level, "to", c.LogLevel)
		level = c.LogLevel
	}
	reload()
	return level
}

func run(args []string, stderr io.Writer) error {
	// SIGHUP (systemctl reload regent-agent) applies log_level and reads
	// token_file and ca_file again; caught from the start, as its default
	// action ends a process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log := logx.Durations(hclog.New(&hclog.LoggerOptions{Name: "regent-agent", Level: hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON, Output: stderr}))
	if err := daemon.CheckPrivileges(&cfg); err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	d, err := daemon.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	level := cfg.LogLevel
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				level = hangup(args, log, level, d.ReloadFiles)
			}
		}
	}()
	log.Info("starting", "version", daemon.Version, "hostname", cfg.Hostname, "roles", cfg.Roles,
		"controllers", cfg.Controllers)
	err = d.Run(ctx)
	log.Info("stopped")
	if err != nil {
		return runtimeError{err}
	}
	return nil
}
