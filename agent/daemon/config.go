package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/regentcloud/regent/agent/vpn"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/hcldiag"
)

// Config is the agent's configuration. Every field is an attribute of the
// HCL config file and a flag of regent-agent (the attribute name with
// dashes).
type Config struct {
	// Controllers are the controllers' HTTP base URLs; the agent uses one
	// and fails over to the next on transport errors and 502/503/504.
	Controllers []string `hcl:"controllers,optional"`
	// CAFile verifies https controllers (default: system roots).
	CAFile string `hcl:"ca_file,optional"`
	// Token is the robot token; TokenFile a file holding it (one of them).
	Token     string `hcl:"token,optional"`
	TokenFile string `hcl:"token_file,optional"`
	// Hostname is how the controller matches this host to its server and
	// router records (hostname or asset_tag); default os.Hostname().
	Hostname string `hcl:"hostname,optional"`
	// Roles: hypervisor and/or network.
	Roles   []string `hcl:"roles,optional"`
	DataDir string   `hcl:"data_dir,optional"`

	// Tenant segments (both roles) and the network role's public side.
	SegmentMode      string `hcl:"segment_mode,optional"` // vxlan (default) or vlan
	PublicBridge     string `hcl:"public_bridge,optional"`
	PublicBridgeAddr string `hcl:"public_bridge_addr,optional"`
	VTEPAddr         string `hcl:"vtep_addr,optional"`
	UnderlayDevice   string `hcl:"underlay_device,optional"`
	// LinkPrefix starts every host link the agent creates and scopes its
	// ownership tags (default "rg", at most 4 characters);
	// NamespacePrefix starts router namespaces (default "P").
	LinkPrefix      string `hcl:"link_prefix,optional"`
	NamespacePrefix string `hcl:"namespace_prefix,optional"`

	// Storage maps a storage type (as named in the controller) to a
	// directory on the file system that holds its disks (the hypervisor
	// role's libvirt pool of that type).
	Storage map[string]string `hcl:"storage,optional"`

	// Hypervisor role: VMs through libvirtd (see vm.go).
	LibvirtSocket   string `hcl:"libvirt_socket,optional"`
	DomainType      string `hcl:"domain_type,optional"`
	DomainPrefix    string `hcl:"domain_prefix,optional"`
	StorageRoot     string `hcl:"storage_root,optional"`
	ImageDir        string `hcl:"image_dir,optional"`
	SeedDir         string `hcl:"seed_dir,optional"`
	BackupDir       string `hcl:"backup_dir,optional"`
	ConsoleLogDir   string `hcl:"console_log_dir,optional"`
	ShutdownTimeout string `hcl:"shutdown_timeout,optional"`
	// ImageRetention is how long an image volume nothing uses (no VM of
	// this host's work, disk or backup) stays before it is removed
	// (default 24h; 0s: as soon as it is unused).
	ImageRetention string `hcl:"image_retention,optional"`

	// Network role: site-to-site VPNs, one charon per router namespace
	// (agent/vpn). VPNMode is xfrm (kernel IPsec with XFRM interfaces,
	// production) or libipsec (userspace ESP over a TUN device, for hosts
	// without kernel ESP); empty: xfrm where the kernel can make XFRM
	// interfaces. VPNRunDir holds each instance's strongswan.conf, VICI
	// socket and log (default <data_dir>/vpn; unix socket paths are at
	// most 107 bytes).
	VPNMode    string `hcl:"vpn_mode,optional"`
	CharonPath string `hcl:"charon_path,optional"`
	VPNRunDir  string `hcl:"vpn_run_dir,optional"`

	MetricsAddr string `hcl:"metrics_addr,optional"`
	LogLevel    string `hcl:"log_level,optional"`
	LogJSON     bool   `hcl:"log_json,optional"`

	// WorkWait is how long one blocking work query waits (default 5m).
	WorkWait string `hcl:"work_wait,optional"`
	// ResyncInterval is how often every object is applied again although
	// its spec did not change: drift repair (default 5m).
	ResyncInterval string `hcl:"resync_interval,optional"`
}

// Defaults returns the configuration before the file and flags.
func Defaults() Config {
	return Config{
		DataDir:        "/var/lib/regent-agent",
		SegmentMode:    "vxlan",
		PublicBridge:   "br-public",
		MetricsAddr:    "127.0.0.1:8090",
		LogLevel:       "info",
		WorkWait:       "5m",
		ResyncInterval: "5m",
	}
}

// LoadFile reads an HCL config file over cfg: attributes present in the
// file replace cfg's values.
func LoadFile(path string, cfg *Config) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// Parsed as HCL whatever the file's name ends in; diagnostics name
	// the file as given (/etc/regent/agent.hcl:5,1-8: ...).
	file, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		return hcldiag.Error(diags, nil)
	}
	fileCfg := *cfg
	if diags := gohcl.DecodeBody(file.Body, nil, &fileCfg); diags.HasErrors() {
		return hcldiag.Error(diags, file.Body)
	}
	*cfg = fileCfg
	return nil
}

// HasRole reports whether the agent has role r.
func (c *Config) HasRole(r string) bool { return slices.Contains(c.Roles, r) }

// WorkWaitDuration is WorkWait parsed (valid after Finish).
func (c *Config) WorkWaitDuration() time.Duration {
	d, _ := time.ParseDuration(c.WorkWait)
	return d
}

// ResyncDuration is ResyncInterval parsed (valid after Finish).
func (c *Config) ResyncDuration() time.Duration {
	d, _ := time.ParseDuration(c.ResyncInterval)
	return d
}

// Finish fills derived defaults (hostname, the token from token_file) and
// validates everything, returning every problem at once.
func (c *Config) Finish() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if len(c.Controllers) == 0 {
		bad("controllers: at least one controller URL is required")
	}
	for i, u := range c.Controllers {
		s := strings.TrimSpace(u)
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		p, err := url.Parse(s)
		if err != nil || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https") {
			bad("controllers: %q is not an http(s) URL", u)
			continue
		}
		c.Controllers[i] = strings.TrimRight(s, "/")
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			bad("ca_file: %v", err)
		}
	}
	c.Token = strings.TrimSpace(c.Token)
	switch {
	case c.Token != "" && c.TokenFile != "":
		bad("token and token_file: give one, not both")
	case c.TokenFile != "":
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			bad("token_file: %v (put the region's robot token there, mode 0600)", err)
		} else if c.Token = strings.TrimSpace(string(b)); c.Token == "" {
			bad("token_file: %s is empty (put the region's robot token there)", c.TokenFile)
		} else if !validToken(c.Token) {
			// Never print the token itself.
			bad("token_file: %s holds more than one token: spaces, several lines or control characters inside it (the file holds the token alone)", c.TokenFile)
		}
	case c.Token == "":
		bad("token or token_file: the region's robot token is required")
	case !validToken(c.Token):
		bad("token: it holds spaces or control characters (give the token alone)")
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			bad("hostname: not set and os.Hostname failed: %v", err)
		}
		c.Hostname = h
	}
	c.Hostname = strings.ToLower(strings.TrimSpace(c.Hostname))
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " /\\\t\n") || len(c.Hostname) > 253 {
		bad("hostname: %q is not a host name", c.Hostname)
	}
	if len(c.Roles) == 0 {
		bad("roles: list hypervisor, network or both")
	}
	seen := map[string]bool{}
	for _, r := range c.Roles {
		if r != api.RoleHypervisor && r != api.RoleNetwork {
			bad("roles: unknown role %q (roles are %s and %s)", r, api.RoleHypervisor, api.RoleNetwork)
		}
		if seen[r] {
			bad("roles: %q listed twice", r)
		}
		seen[r] = true
	}
	sort.Strings(c.Roles)
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		bad("data_dir: %q must be an absolute path", c.DataDir)
	}
	if c.SegmentMode != "vxlan" && c.SegmentMode != "vlan" {
		bad("segment_mode: %q is not vxlan or vlan", c.SegmentMode)
	}
	if c.HasRole(api.RoleNetwork) {
		if c.PublicBridge == "" || len(c.PublicBridge) > 15 {
			bad("public_bridge: %q must be an interface name of 1-15 characters", c.PublicBridge)
		}
		if c.PublicBridgeAddr != "" {
			if _, err := netip.ParsePrefix(c.PublicBridgeAddr); err != nil {
				bad("public_bridge_addr: %q is not an address with prefix length (198.51.100.1/24)", c.PublicBridgeAddr)
			}
		}
	}
	// Both roles build tenant segments (a router's, a VM's).
	if c.SegmentMode == "vxlan" && c.VTEPAddr == "" {
		bad("vtep_addr: required with segment_mode vxlan (the controller points the other hosts' segments at it)")
	}
	if c.SegmentMode == "vlan" && c.UnderlayDevice == "" {
		bad("underlay_device: required with segment_mode vlan (the parent of the VLAN sub-interfaces)")
	}
	// Both prefixes start names the agent matches (and deletes) by
	// pattern, and a namespace's is a file under /run/netns: no path,
	// space or tag (':') characters.
	if c.LinkPrefix == "" {
		c.LinkPrefix = "rg"
	}
	if c.NamespacePrefix == "" {
		c.NamespacePrefix = "P"
	}
	if !linkPrefixRe.MatchString(c.LinkPrefix) {
		bad("link_prefix: %q must be 1-4 letters, digits, '-', '_' or '.'", c.LinkPrefix)
	}
	if !namespacePrefixRe.MatchString(c.NamespacePrefix) {
		bad("namespace_prefix: %q must be 1-32 letters, digits, '-', '_' or '.'", c.NamespacePrefix)
	}
	if c.VTEPAddr != "" {
		if _, err := netip.ParseAddr(c.VTEPAddr); err != nil {
			bad("vtep_addr: %q is not an IP address", c.VTEPAddr)
		}
	}
	errs = append(errs, c.finishVM()...)
	errs = append(errs, c.finishVPN()...)
	if c.HasRole(api.RoleHypervisor) && len(c.Storage) == 0 {
		bad("storage: the hypervisor role needs at least one storage type → directory")
	}
	for t, dir := range c.Storage {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			bad("storage: type %q: %q is not a directory (create it; QEMU must be able to reach it)", t, dir)
		}
	}
	if c.MetricsAddr != "" && c.MetricsAddr != "off" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("metrics_addr: %q is not host:port (or \"off\")", c.MetricsAddr)
		}
	}
	if hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		bad("log_level: %q is not trace, debug, info, warn or error", c.LogLevel)
	}
	if d, err := time.ParseDuration(c.WorkWait); err != nil || d < time.Second || d > 10*time.Minute {
		bad("work_wait: %q must be a duration from 1s to 10m, such as \"5m\"", c.WorkWait)
	}
	if d, err := time.ParseDuration(c.ResyncInterval); err != nil || d < time.Second {
		bad("resync_interval: %q must be a duration of at least 1s, such as \"5m\"", c.ResyncInterval)
	}
	return errors.Join(errs...)
}

// Warnings are what is allowed but probably a mistake, for the log at
// start-up (valid after Finish).
func (c *Config) Warnings() []string {
	var w []string
	if c.TokenFile != "" {
		if st, err := os.Stat(c.TokenFile); err == nil && st.Mode().Perm()&0o077 != 0 {
			w = append(w, fmt.Sprintf("token_file: %s is readable by others (mode %04o): chmod 600 it", c.TokenFile, st.Mode().Perm()))
		}
	}
	// Typos the controller cannot see: it points the other hosts'
	// segments at vtep_addr whatever it is.
	if a, err := netip.ParseAddr(c.VTEPAddr); err == nil && !localAddr(a) {
		w = append(w, fmt.Sprintf("vtep_addr: %s is on no interface of this host (yet): the other hosts' VXLAN traffic for its segments goes there", a))
	}
	if c.UnderlayDevice != "" {
		if _, err := net.InterfaceByName(c.UnderlayDevice); err != nil {
			w = append(w, fmt.Sprintf("underlay_device: %s: %v (segments fail until it exists)", c.UnderlayDevice, err))
		}
	}
	return w
}

// localAddr reports whether a is an address of one of the host's
// interfaces (true when they cannot be listed).
func localAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, ad := range addrs {
		if p, err := netip.ParsePrefix(ad.String()); err == nil && p.Addr().Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

var (
	linkPrefixRe      = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,4}$`)
	namespacePrefixRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
)

// validToken reports whether tok can go into the X-Auth-Token header: a
// token with a space, newline or control character in it would fail every
// request before it leaves (which looks like an unreachable controller).
func validToken(tok string) bool {
	for _, r := range tok {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// finishVPN fills the VPN defaults and checks them.
func (c *Config) finishVPN() []error {
	var errs []error
	if c.CharonPath == "" {
		c.CharonPath = "/usr/sbin/charon-systemd"
	}
	if c.VPNRunDir == "" {
		c.VPNRunDir = filepath.Join(c.DataDir, "vpn")
	}
	if c.VPNMode != "" && c.VPNMode != vpn.ModeXFRM && c.VPNMode != vpn.ModeLibIPsec {
		errs = append(errs, fmt.Errorf("vpn_mode: %q is not %s or %s (empty: %s where the kernel has XFRM interfaces)",
			c.VPNMode, vpn.ModeXFRM, vpn.ModeLibIPsec, vpn.ModeXFRM))
	}
	if !filepath.IsAbs(c.VPNRunDir) {
		errs = append(errs, fmt.Errorf("vpn_run_dir: %q must be an absolute path", c.VPNRunDir))
	}
	// <run dir>/<namespace prefix><project id>/charon.vici must fit a
	// unix socket address (the namespace is the router's: its prefix is
	// namespace_prefix, up to 32 characters).
	if n := len(c.VPNRunDir) + len("/"+c.NamespacePrefix+"18446744073709551615/charon.vici"); n > 107 {
		errs = append(errs, fmt.Errorf("vpn_run_dir: %q with namespace_prefix %q is too long for the VICI socket paths under it "+
			"(<vpn_run_dir>/<namespace_prefix><project id>/charon.vici: %d > 107 bytes): shorten either", c.VPNRunDir, c.NamespacePrefix, n))
	}
	if c.HasRole(api.RoleNetwork) && !filepath.IsAbs(c.CharonPath) {
		errs = append(errs, fmt.Errorf("charon_path: %q must be an absolute path", c.CharonPath))
	}
	return errs
}
