package vpn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/strongswan/govici/vici"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// session is the part of a govici session the manager uses; a fake
// satisfies it in unit tests.
type session interface {
	Call(ctx context.Context, cmd string, in *vici.Message) (*vici.Message, error)
	CallStreaming(ctx context.Context, cmd, event string, in *vici.Message) iter.Seq2[*vici.Message, error]
	Close() error
}

// DetectMode returns ModeXFRM when this kernel can create XFRM interfaces
// (probed in a throwaway namespace), else ModeLibIPsec.
func DetectMode() string {
	ok := make(chan bool, 1)
	go func() {
		runtime.LockOSThread() // the thread is discarded if it cannot go back
		orig, err := netns.Get()
		if err != nil {
			ok <- false
			return
		}
		defer orig.Close()
		probe, err := netns.New()
		if err != nil {
			ok <- false
			return
		}
		h, err := netlink.NewHandleAt(probe)
		res := false
		if err == nil {
			res = h.LinkAdd(&netlink.Xfrmi{LinkAttrs: netlink.LinkAttrs{Name: "xfrmprobe"}, Ifid: 1}) == nil
			h.Close()
		}
		probe.Close()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ok <- res
	}()
	if <-ok {
		return ModeXFRM
	}
	return ModeLibIPsec
}

// charonConf is the STRONGSWAN_CONF of one instance: the distribution's
// plugin settings, our VICI socket, no routes of charon's own (the router
// routes the remote subnets) and, in libipsec mode, userspace ESP.
func charonConf(pluginDir, sock, logFile, mode string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# written by regent-agent; rewritten at every start\ncharon-systemd {\n")
	// No routes of charon's own (kernel-libipsec would otherwise route
	// 0.0.0.0/0 selectors, and so everything, into its TUN device through
	// table 220): the router routes the remote subnets.
	fmt.Fprintf(&b, "  load_modular = yes\n  install_routes = no\n  install_virtual_ip = no\n  routing_table = 0\n")
	fmt.Fprintf(&b, "  plugins {\n    include %s/*.conf\n", pluginDir)
	fmt.Fprintf(&b, "    vici {\n      socket = unix://%s\n    }\n", sock)
	if mode == ModeLibIPsec {
		fmt.Fprintf(&b, "    kernel-libipsec {\n      load = yes\n    }\n")
	}
	// Plugins that act on the host or the network by themselves.
	for _, p := range []string{"dhcp", "farp", "resolve", "eap-radius", "led", "unity", "xauth-pam"} {
		fmt.Fprintf(&b, "    %s {\n      load = no\n    }\n", p)
	}
	fmt.Fprintf(&b, "  }\n")
	// Level 1 (default): control messages only, no key material.
	fmt.Fprintf(&b, "  filelog {\n    regent {\n      path = %s\n      default = 1\n      time_format = %%F %%T\n      ike_name = yes\n    }\n  }\n", logFile)
	fmt.Fprintf(&b, "  journal {\n    default = -1\n  }\n}\n")
	return b.Bytes()
}

// charonProc is one running charon: one this process started (cmd set,
// reaped by Wait) or one of an earlier agent that it adopted (watched
// through /proc).
type charonProc struct {
	pid     int
	cmd     *exec.Cmd     // nil when adopted
	marker  string        // what its command line contains (the charon binary)
	started string        // /proc/<pid>/stat start time of an adopted charon
	exited  chan struct{} // closed when the process is gone
	err     error         // why, set before exited closes
	quit    chan struct{} // ends the watcher of an adopted charon (detach)
}

// startCharon gives namespace ns a charon with its files in dir: it adopts
// the one already running there (an earlier agent's: charon outlives the
// agent) when that is really charon and its VICI socket answers, else it
// stops whatever the pid file names and starts a new one. It waits until
// the socket answers and returns the process, a session and whether the
// charon was adopted.
func startCharon(ctx context.Context, cfg *Config, ns, dir string, log hclog.Logger) (*charonProc, session, bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, false, err
	}
	sock := filepath.Join(dir, "charon.vici")
	confPath := filepath.Join(dir, "strongswan.conf")
	pidPath := filepath.Join(dir, "charon.pid")
	logPath := filepath.Join(dir, "charon.log")
	if p := findCharon(pidPath, cfg.Charon, confPath); p != nil && p.inNamespace(ns) {
		s, err := dialVICI(ctx, sock)
		if err == nil {
			p.watch()
			return p, s, true, nil
		}
		log.Warn("the charon already running does not answer on VICI: replacing it", "pid", p.pid, "error", err)
	}
	// A charon that is not usable, or runs in an earlier namespace of the
	// router (deleted and built again), is stopped: it would hold the IKE
	// ports, or the old namespace with them.
	killStale(pidPath, cfg.Charon, confPath)
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, false, fmt.Errorf("remove stale socket: %w", err)
	}
	if err := os.WriteFile(confPath, charonConf(cfg.PluginConfDir, sock, logPath, cfg.Mode), 0o600); err != nil {
		return nil, nil, false, err
	}
	// charon's own output (start-up errors) goes to its log file, not to
	// a pipe of ours: it outlives this process.
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, false, err
	}
	defer out.Close()
	cmd := exec.Command(cfg.IP, "netns", "exec", ns, cfg.Charon)
	// Only the configuration path: no secret is ever in argv or env.
	cmd.Env = []string{"STRONGSWAN_CONF=" + confPath, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own session and no parent-death signal: charon (and the tunnels)
	// survive the agent's stop, upgrade or crash; the next agent adopts it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, false, fmt.Errorf("start charon: %w", err)
	}
	p := &charonProc{pid: cmd.Process.Pid, cmd: cmd, marker: cfg.Charon, exited: make(chan struct{})}
	go func() { // owned by the process: ends when it exits
		p.err = cmd.Wait()
		close(p.exited)
	}()
	_ = os.WriteFile(pidPath, []byte(strconv.Itoa(p.pid)+"\n"), 0o644)

	deadline := time.Now().Add(cfg.StartTimeout)
	for {
		s, err := dialVICI(ctx, sock)
		if err == nil {
			return p, s, false, nil
		}
		select {
		case <-p.exited:
			return nil, nil, false, fmt.Errorf("charon exited at start: %v (see %s)", p.err, logPath)
		case <-ctx.Done():
			p.stop()
			return nil, nil, false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, nil, false, fmt.Errorf("charon VICI socket %s not answering after %s: %v", sock, cfg.StartTimeout, err)
		}
	}
}

// dialVICI opens a session on sock and checks that charon answers it.
func dialVICI(ctx context.Context, sock string) (session, error) {
	s, err := vici.NewSession(vici.WithSocketPath(sock))
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.Call(cctx, "version", nil); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// findCharon returns the live process pidFile names if it is this
// instance's charon (its command line names marker and its environment
// conf: a recycled pid of someone else, or another router's charon after
// a reboot, is never touched), else nil.
func findCharon(pidFile, marker, conf string) *charonProc {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return nil
	}
	st, ok := procAlive(pid, marker, "")
	if !ok {
		return nil
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), "STRONGSWAN_CONF="+conf) {
		return nil
	}
	return &charonProc{pid: pid, marker: marker, started: st, exited: make(chan struct{}), quit: make(chan struct{})}
}

// procAlive reports whether pid runs (not a zombie) with marker in its
// command line and, when started is set, the same start time (not a
// recycled pid); it returns the start time.
func procAlive(pid int, marker, started string) (string, bool) {
	c, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(c, []byte(marker)) {
		return "", false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := bytes.LastIndexByte(st, ')')
	if err != nil || i <= 0 || i+2 >= len(st) || st[i+2] == 'Z' {
		return "", false
	}
	// Fields after the command: state is field 3, starttime field 22.
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 20 {
		return "", false
	}
	if started != "" && f[19] != started {
		return "", false
	}
	return f[19], true
}

// watch closes exited when an adopted charon is gone (it is not our
// child: nothing to wait for).
func (p *charonProc) watch() {
	go func() { // ends when the process is gone or on detach
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				if _, ok := procAlive(p.pid, p.marker, p.started); !ok {
					p.err = errors.New("adopted charon exited")
					close(p.exited)
					return
				}
			}
		}
	}()
}

// inNamespace reports whether charon runs in the network namespace
// iproute2 names ns (/run/netns/<ns>): false when the namespace was
// deleted, or deleted and built again, since charon started there (it
// keeps the old one alive), or when charon is gone.
func (p *charonProc) inNamespace(ns string) bool {
	var mine, named syscall.Stat_t
	if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", p.pid), &mine) != nil ||
		syscall.Stat(filepath.Join("/run/netns", ns), &named) != nil {
		return false
	}
	return mine.Dev == named.Dev && mine.Ino == named.Ino
}

// detach lets charon run on without this process watching it.
func (p *charonProc) detach() {
	if p.quit != nil {
		select {
		case <-p.quit:
		default:
			close(p.quit)
		}
	}
}

// signal sends sig to charon, to an adopted one only while it is still
// the same process.
func (p *charonProc) signal(sig syscall.Signal) {
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(sig)
		return
	}
	if _, ok := procAlive(p.pid, p.marker, p.started); ok {
		_ = syscall.Kill(p.pid, sig)
	}
}

// stop terminates charon (SIGTERM, SIGKILL after 5 s) and waits for it.
func (p *charonProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.signal(syscall.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
	p.detach()
}

// killStale stops the process in pidFile if it is still the charon of
// conf (findCharon).
func killStale(pidFile, marker, conf string) {
	p := findCharon(pidFile, marker, conf)
	if p == nil {
		return
	}
	alive := func() bool {
		_, ok := procAlive(p.pid, marker, p.started)
		return ok
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	for i := 0; i < 100 && alive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		for i := 0; i < 50 && alive(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}
