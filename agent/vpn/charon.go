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

// charonProc is one running charon.
type charonProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
	err    error         // Wait's result, set before exited closes
}

// startCharon starts charon in namespace ns with its files in dir, waits
// until its VICI socket answers and returns the process and a session.
func startCharon(ctx context.Context, cfg *Config, ns, dir string, log hclog.Logger) (*charonProc, session, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	sock := filepath.Join(dir, "charon.vici")
	confPath := filepath.Join(dir, "strongswan.conf")
	pidPath := filepath.Join(dir, "charon.pid")
	// A charon of an earlier agent (or of a crash) is stopped first: the
	// connections it has are not ours to trust, and it holds the ports.
	killStale(pidPath, cfg.Charon)
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("remove stale socket: %w", err)
	}
	if err := os.WriteFile(confPath, charonConf(cfg.PluginConfDir, sock, filepath.Join(dir, "charon.log"), cfg.Mode), 0o600); err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(cfg.IP, "netns", "exec", ns, cfg.Charon)
	// Only the configuration path: no secret is ever in argv or env.
	cmd.Env = []string{"STRONGSWAN_CONF=" + confPath, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	out := &lineLogger{log: log.Named("charon")}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start charon: %w", err)
	}
	p := &charonProc{cmd: cmd, exited: make(chan struct{})}
	go func() { // owned by the process: ends when it exits (stop kills it)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	_ = os.WriteFile(pidPath, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)

	deadline := time.Now().Add(cfg.StartTimeout)
	for {
		s, err := vici.NewSession(vici.WithSocketPath(sock))
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = s.Call(cctx, "version", nil)
			cancel()
			if err == nil {
				return p, s, nil
			}
			s.Close()
		}
		select {
		case <-p.exited:
			return nil, nil, fmt.Errorf("charon exited at start: %v (see %s)", p.err, filepath.Join(dir, "charon.log"))
		case <-ctx.Done():
			p.stop()
			return nil, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, nil, fmt.Errorf("charon VICI socket %s not answering after %s: %v", sock, cfg.StartTimeout, err)
		}
	}
}

// stop terminates charon (SIGTERM, SIGKILL after 5 s) and waits for it.
func (p *charonProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// killStale stops the process in pidFile if its command line still names
// marker (a recycled pid of someone else is never touched).
func killStale(pidFile, marker string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	alive := func() bool {
		c, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(c, []byte(marker)) {
			return false
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(st, ')'); err == nil && i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return false
		}
		return true
	}
	if !alive() {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100 && alive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 50 && alive(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// lineLogger forwards charon's own output (start-up errors) to the log.
type lineLogger struct{ log hclog.Logger }

func (w *lineLogger) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l != "" {
			w.log.Debug(l)
		}
	}
	return len(b), nil
}
