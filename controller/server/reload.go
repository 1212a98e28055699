package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regentcloud/regent/pkg/tlsfiles"
)

// nodeTLS is the node's TLS files, each read again by Reload.
type nodeTLS struct {
	// http: http_tls_cert and http_tls_key, the HTTPS listener (nil: HTTP).
	http *tlsfiles.Files
	// peers: http_tls_ca, which verifies the leader's HTTPS certificate when
	// this node forwards a request or joins (nil: the system's roots).
	peers *tlsfiles.Files
	// raft: raft_tls_*, mutual TLS between nodes (nil: plain TCP).
	raft *tlsfiles.Files
}

func loadTLS(cfg Config) (*nodeTLS, error) {
	var t nodeTLS
	for _, s := range t.slots(cfg) {
		if s.paths.Empty() {
			continue
		}
		f, err := tlsfiles.Load(s.paths)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.setting, err)
		}
		*s.files = f
	}
	return &t, nil
}

// tlsSlot is one of nodeTLS's files: the setting that names it, where it
// is kept, and the paths a configuration gives it.
type tlsSlot struct {
	setting string
	files   **tlsfiles.Files
	paths   tlsfiles.Paths
}

func (t *nodeTLS) slots(cfg Config) []tlsSlot {
	return []tlsSlot{
		{"http_tls_cert", &t.http, tlsfiles.Paths{Cert: cfg.HTTPTLSCert, Key: cfg.HTTPTLSKey}},
		{"http_tls_ca", &t.peers, tlsfiles.Paths{CA: cfg.HTTPTLSCA}},
		{"raft_tls_cert", &t.raft, tlsfiles.Paths{Cert: cfg.RaftTLSCert, Key: cfg.RaftTLSKey, CA: cfg.RaftTLSCA}},
	}
}

// stage reads the files cfg names, all or none, and returns what makes
// them current, the settings reloaded, and those left for a restart: a
// file that would turn TLS (or a CA) on or off, which the running
// listeners cannot.
func (t *nodeTLS) stage(cfg Config) (commit func(), reloaded, restart []string, err error) {
	var commits []func()
	for _, s := range t.slots(cfg) {
		f := *s.files
		if f == nil {
			if !s.paths.Empty() {
				restart = append(restart, s.setting+" (turning TLS on or off)")
			}
			continue
		}
		c, err := f.Stage(s.paths)
		switch {
		case errors.Is(err, tlsfiles.ErrKindChanged):
			restart = append(restart, s.setting+" (turning TLS on or off)")
			continue
		case err != nil:
			return nil, nil, nil, fmt.Errorf("%s: %w", s.setting, err)
		}
		commits = append(commits, c)
		reloaded = append(reloaded, s.setting)
	}
	return func() {
		for _, c := range commits {
			c()
		}
	}, reloaded, restart, nil
}

// raftConfig is cluster.Config.TLS: mutual TLS on the raft files current
// at each connection; nil without them.
func (t *nodeTLS) raftConfig() func() *tls.Config {
	if t.raft == nil {
		return nil
	}
	return func() *tls.Config {
		return t.raft.Config(&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	}
}

// peersConfig is the client config for HTTPS to other nodes (forwarding,
// join): the http_tls_ca current at each connection; nil without one.
func (t *nodeTLS) peersConfig() func() *tls.Config {
	if t.peers == nil {
		return nil
	}
	return func() *tls.Config { return t.peers.Config(&tls.Config{MinVersion: tls.VersionTLS12}) }
}

var tlsExpiryDesc = prometheus.NewDesc("regent_tls_not_after_timestamp_seconds",
	"When a TLS file in use expires (Unix time): the certificate of http_tls_cert or raft_tls_cert, the first "+
		"to expire of the CAs of http_tls_ca or raft_tls_ca. Reload (SIGHUP) after replacing the file.",
	[]string{"setting"}, nil)

func (t *nodeTLS) Describe(ch chan<- *prometheus.Desc) { ch <- tlsExpiryDesc }

func (t *nodeTLS) Collect(ch chan<- prometheus.Metric) {
	emit := func(setting string, at time.Time) {
		if !at.IsZero() {
			ch <- prometheus.MustNewConstMetric(tlsExpiryDesc, prometheus.GaugeValue, float64(at.Unix()), setting)
		}
	}
	if t.http != nil {
		emit("http_tls_cert", t.http.Current().CertNotAfter)
	}
	if t.peers != nil {
		emit("http_tls_ca", t.peers.Current().CANotAfter)
	}
	if t.raft != nil {
		m := t.raft.Current()
		emit("raft_tls_cert", m.CertNotAfter)
		emit("raft_tls_ca", m.CANotAfter)
	}
}

// reloadable are the settings Reload applies to a running node; every
// other change waits for a restart.
var reloadable = []string{"log_level", "http_tls_cert", "http_tls_key", "http_tls_ca", "raft_tls_cert", "raft_tls_key", "raft_tls_ca", "audit_log", "cluster_token"}

// reloader is the state of Reload.
type reloader struct {
	mu           sync.Mutex
	ok           prometheus.Gauge
	okAt         prometheus.Gauge
	logLevel     string
	clusterToken string
}

func newReloader(reg prometheus.Registerer, cfg Config) *reloader {
	r := &reloader{logLevel: cfg.LogLevel, clusterToken: cfg.ClusterToken,
		ok: prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_config_last_reload_successful",
			Help: "Whether the last configuration reload (SIGHUP) succeeded (1) or failed and left the node as it was (0); 1 before any."}),
		okAt: prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last read successfully (Unix time): at start, then at each reload that succeeded."}),
	}
	r.ok.Set(1)
	r.okAt.SetToCurrentTime()
	reg.MustRegister(r.ok, r.okAt)
	return r
}

// Reload applies the configuration load returns to the running node (the
// controller calls it on SIGHUP with the flags and -config file read
// again): the log level, the cluster token joins must present, and the
// TLS files, read again even when their
// paths are the same (rotated certificates; new connections use them).
// TLS files are reloaded all or none. Settings that cannot change while
// the node runs (addresses, the data dir, turning TLS on or off, ...) are
// logged as waiting for a restart; the rest applies. An error (a config that does not parse,
// a certificate that does not match its key) leaves the node as it was; it
// is logged, returned and shown by regent_config_last_reload_successful.
func (s *Server) Reload(load func() (Config, error)) error {
	r := s.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	err := s.reloadLocked(load)
	if err != nil {
		r.ok.Set(0)
		s.log.Error("configuration reload failed; the node runs on as before", "error", err)
		// logrotate's reload must still start a new audit file, or the
		// next rotation would delete the file the lines go to.
		if s.audit != nil {
			if rerr := s.audit.Reopen(s.audit.Path()); rerr != nil {
				s.log.Error("cannot reopen the audit trail", "audit_log", s.audit.Path(), "error", rerr)
			}
		}
		return err
	}
	r.ok.Set(1)
	r.okAt.SetToCurrentTime()
	return nil
}

func (s *Server) reloadLocked(load func() (Config, error)) error {
	cfg, err := load()
	if err == nil {
		err = cfg.Finish()
	}
	if err != nil {
		return err
	}
	level := hclog.LevelFromString(cfg.LogLevel) // Finish checked it
	commit, files, restartTLS, err := s.tls.stage(cfg)
	if err != nil {
		return err
	}
	// The audit trail: reopened (log rotation), at the configured path.
	// Turning it on or off waits for a restart.
	var restartAudit []string
	switch {
	case (s.audit == nil) != (cfg.AuditLog == ""):
		restartAudit = []string{"audit_log (turning the audit trail on or off)"}
	case s.audit != nil:
		if err := s.audit.Reopen(cfg.AuditLog); err != nil {
			return fmt.Errorf("audit_log: %w", err)
		}
		files = append(files, "audit_log")
	}
	commit()
	r := s.reload
	if cfg.ClusterToken != r.clusterToken {
		s.api.SetClusterToken(cfg.ClusterToken)
		r.clusterToken = cfg.ClusterToken
		files = append(files, "cluster_token")
	}
	if r.logLevel != cfg.LogLevel {
		s.log.SetLevel(level)
		s.log.Info("log level changed", "from", r.logLevel, "to", cfg.LogLevel)
		r.logLevel = cfg.LogLevel
	}
	args := []any{"log_level", cfg.LogLevel}
	for _, f := range files {
		args = append(args, f, "reloaded")
	}
	s.log.Info("configuration reloaded", args...)
	if restart := slices.Concat(restartSettings(s.given, cfg), restartTLS, restartAudit); len(restart) > 0 {
		s.log.Warn("settings changed that take effect only when the node restarts", "settings", strings.Join(restart, ", "))
	}
	return nil
}

// restartSettings names the settings (by their file names) whose values
// differ between the configuration the node started with and cfg, leaving
// out the ones Reload applies.
func restartSettings(running, cfg Config) []string {
	var out []string
	a, b := reflect.ValueOf(running), reflect.ValueOf(cfg)
	for i := range a.NumField() {
		name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("hcl"), ",")
		if name == "" || slices.Contains(reloadable, name) {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	return out
}

// Check tells whether cfg would start a node, as far as that can be told
// without starting one: its settings (Finish), the DNS settings, the TLS
// files (read and checked as a start or a reload reads them) and the
// audit trail's file (writable, or creatable in an existing directory).
// `regent-controller validate` runs it, and the systemd unit before each
// reload, so that `systemctl reload` fails visibly on a broken file.
func Check(cfg Config) error {
	if err := cfg.Finish(); err != nil {
		return err
	}
	var errs []error
	if cfg.Join != "" && cfg.ClusterToken == "" && !hasRaftStore(cfg.DataDir) {
		// With no raft store the node joins for sure, and New refuses it.
		// With one it may restart as the member it was: that is New's to
		// tell (the store is locked while a node runs).
		errs = append(errs, fmt.Errorf("%w: data_dir %s holds no raft state, so this node would join the cluster at %s", ErrJoinNeedsClusterToken, cfg.DataDir, cfg.Join))
	}
	if cfg.dnsEnabled() {
		if _, err := cfg.dnsConfig(hclog.NewNullLogger()); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := loadTLS(cfg); err != nil {
		errs = append(errs, err)
	}
	if cfg.AuditLog != "" {
		if err := appendable(cfg.AuditLog); err != nil {
			errs = append(errs, fmt.Errorf("audit_log: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Warnings lists what in cfg works but limits the node, for
// `regent-controller validate` to say; none stops a node.
func Warnings(cfg Config) []string {
	var w []string
	if cfg.ClusterToken == "" && !cfg.Dev {
		msg := "cluster_token is not set (cluster_token, -cluster-token or $" + EnvClusterToken + "): no node can join a cluster " +
			"while this node leads it (joins are checked against the leader's token), and requests it forwards or receives lose " +
			"their client address in the audit trail. A single node needs none; every node of a cluster needs the same one " +
			"(head -c32 /dev/urandom | base64)"
		if cfg.Join != "" {
			msg += "; with -join set, this node starts only as the member its data dir's raft state makes it " +
				"(a node that would join is refused)"
		}
		w = append(w, msg)
	}
	return w
}

// appendable says whether this process may append to path, or create it.
func appendable(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return fmt.Errorf("cannot create %s: %s: %w", path, dir, err)
	}
	return nil
}
