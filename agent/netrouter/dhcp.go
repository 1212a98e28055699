package netrouter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DHCP is dnsmasq inside the namespace: DNS off (port=0), one static range
// per subnet and a hosts file of MAC → address bindings. A hosts change is
// a SIGHUP; a configuration change (subnets, a VM's own DNS servers) is a
// restart.

// tagNoGateway is the dnsmasq tag of bindings that get no router option.
const tagNoGateway = "nogw"

const (
	dnsmasqConf   = "dnsmasq.conf"
	dnsmasqHosts  = "dhcp-hosts"
	dnsmasqPid    = "dnsmasq.pid"
	dnsmasqLeases = "dhcp.leases"
)

// renderDnsmasq returns the configuration and hosts file of a router whose
// files live in dir. A binding whose VM has DNS servers of its own gets
// them through a tag of its own (dns-<address>): a host's tag outranks the
// subnet's (dnsmasq ranks tags set by dhcp-range second), so each VM gets
// its own servers and one without any the subnet's. The options are in
// the configuration, not a dhcp-optsfile: dnsmasq 2.90 crashes (SIGSEGV)
// re-reading one with tagged options on SIGHUP.
func renderDnsmasq(d *desired, dir string) (conf, hosts []byte) {
	var c, h bytes.Buffer
	fmt.Fprintf(&c, "# %s: written by regent-agent, do not edit\n", d.tag)
	c.WriteString("port=0\nno-resolv\nno-hosts\nuser=root\ndhcp-authoritative\nexcept-interface=lo\nlog-facility=-\n")
	fmt.Fprintf(&c, "dhcp-hostsfile=%s\n", filepath.Join(dir, dnsmasqHosts))
	fmt.Fprintf(&c, "dhcp-leasefile=%s\n", filepath.Join(dir, dnsmasqLeases))
	fmt.Fprintf(&c, "pid-file=%s\n", filepath.Join(dir, dnsmasqPid))
	// An empty router option: without it dnsmasq offers its own address.
	fmt.Fprintf(&c, "dhcp-option=tag:%s,option:router\n", tagNoGateway)
	for _, s := range d.subnets {
		tag := s.nsVeth
		mask := net.IP(net.CIDRMask(s.network.Bits(), 32)).String()
		fmt.Fprintf(&c, "interface=%s\n", s.nsVeth)
		fmt.Fprintf(&c, "dhcp-range=set:%s,%s,static,%s,12h\n", tag, s.network.Addr(), mask)
		// No default route on a VM's NICs other than its gateway subnet's.
		fmt.Fprintf(&c, "dhcp-option=tag:%s,tag:!%s,option:router,%s\n", tag, tagNoGateway, s.gateway.Addr())
		if s.mtu > 0 && s.mtu < 1500 {
			fmt.Fprintf(&c, "dhcp-option=tag:%s,option:mtu,%d\n", tag, s.mtu)
		}
		// DHCPv4 carries IPv4 servers only: dnsmasq refuses to start on
		// an IPv6 address in option:dns-server. The subnet's servers are
		// one VM's free text; an IPv6 one is left out here (the metadata
		// still names it), and with none left the option goes.
		var dns []string
		for _, a := range s.dns {
			if a.Is4() {
				dns = append(dns, a.String())
			}
		}
		if len(dns) > 0 {
			fmt.Fprintf(&c, "dhcp-option=tag:%s,option:dns-server,%s\n", tag, strings.Join(dns, ","))
		}
		for _, b := range s.dhcp {
			fmt.Fprintf(&h, "%s,", b.mac)
			if b.noGateway {
				fmt.Fprintf(&h, "set:%s,", tagNoGateway)
			}
			if len(b.dns) > 0 {
				tag := "dns-" + strings.ReplaceAll(b.ip.String(), ".", "-")
				fmt.Fprintf(&h, "set:%s,", tag)
				var dns []string
				for _, a := range b.dns {
					dns = append(dns, a.String())
				}
				fmt.Fprintf(&c, "dhcp-option=tag:%s,option:dns-server,%s\n", tag, strings.Join(dns, ","))
			}
			fmt.Fprintf(&h, "%s", b.ip)
			if b.hostname != "" {
				fmt.Fprintf(&h, ",%s", b.hostname)
			}
			h.WriteByte('\n')
		}
	}
	return c.Bytes(), h.Bytes()
}

// process is a child the builder owns: started inside a namespace,
// restarted with backoff when it dies, stopped with SIGTERM.
type process struct {
	log    hclog.Logger
	nsPath string
	argv   []string
	name   string // what Failing calls it: "router 7: dnsmasq"
	set    *processes

	mu    sync.Mutex
	cmd   *exec.Cmd
	exits []time.Time // its exits in the last failingWindow
	last  error       // the last exit's error
	stop  chan struct{}
	done  chan struct{}
}

// processes are the children a builder supervises, so that a crash loop
// shows: its restarts hide it otherwise (DHCP answers a moment, then
// nothing).
type processes struct {
	mu       sync.Mutex
	live     map[*process]struct{}
	restarts atomic.Uint64
}

// failingWindow and failingExits: a child that exited failingExits times
// in the last failingWindow keeps failing.
const (
	failingWindow = time.Minute
	failingExits  = 3
)

func (ps *processes) start(log hclog.Logger, name, nsPath string, argv []string) *process {
	p := &process{log: log, nsPath: nsPath, argv: argv, name: name, set: ps, stop: make(chan struct{}), done: make(chan struct{})}
	ps.mu.Lock()
	if ps.live == nil {
		ps.live = map[*process]struct{}{}
	}
	ps.live[p] = struct{}{}
	ps.mu.Unlock()
	go p.run()
	return p
}

// failing describes the children that keep exiting, sorted.
func (ps *processes) failing(now time.Time) []string {
	ps.mu.Lock()
	all := make([]*process, 0, len(ps.live))
	for p := range ps.live {
		all = append(all, p)
	}
	ps.mu.Unlock()
	var out []string
	for _, p := range all {
		if n, err := p.failing(now); n >= failingExits {
			out = append(out, fmt.Sprintf("%s exited %d times in the last %s, the last: %v", p.name, n, failingWindow, err))
		}
	}
	slices.Sort(out)
	return out
}

// failing is how many times p exited in the window before now, and the
// last exit's error.
func (p *process) failing(now time.Time) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, t := range p.exits {
		if now.Sub(t) < failingWindow {
			n++
		}
	}
	return n, p.last
}

// exited records an exit (err: how) that the supervisor restarts.
func (p *process) exited(err error) {
	now := time.Now()
	if err == nil {
		err = errors.New("exited with status 0")
	}
	p.mu.Lock()
	p.exits = slices.DeleteFunc(p.exits, func(t time.Time) bool { return now.Sub(t) >= failingWindow })
	p.exits = append(p.exits, now)
	p.last = err
	p.mu.Unlock()
	p.set.restarts.Add(1)
}

func (p *process) run() {
	defer close(p.done)
	defer func() {
		p.set.mu.Lock()
		delete(p.set.live, p)
		p.set.mu.Unlock()
	}()
	backoff := 200 * time.Millisecond
	for {
		started := time.Now()
		cmd := exec.Command(p.argv[0], p.argv[1:]...)
		cmd.Stdout = hclogWriter{p.log}
		cmd.Stderr = hclogWriter{p.log}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err := withNetnsPath(p.nsPath, cmd.Start)
		if err == nil {
			p.mu.Lock()
			p.cmd = cmd
			p.mu.Unlock()
			p.log.Debug("started", "pid", cmd.Process.Pid)
			err = cmd.Wait()
			p.mu.Lock()
			p.cmd = nil
			p.mu.Unlock()
		}
		select {
		case <-p.stop:
			return
		default:
		}
		if time.Since(started) > 10*time.Second {
			backoff = 200 * time.Millisecond
		}
		p.exited(err)
		p.log.Warn("process exited, restarting", "error", err, "backoff", backoff)
		select {
		case <-p.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// signal sends sig to the running child; false when none runs.
func (p *process) signal(sig os.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return false
	}
	return p.cmd.Process.Signal(sig) == nil
}

func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop terminates the child and waits for the supervisor to exit.
func (p *process) Stop(ctx context.Context) error {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.signal(syscall.SIGTERM)
	t := time.NewTimer(3 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		p.signal(syscall.SIGKILL)
	case <-ctx.Done():
		p.signal(syscall.SIGKILL)
	}
	<-p.done
	return nil
}

// killStale stops the dnsmasq of an earlier agent process serving
// confPath: the one whose pid is in pidFile, if its command line still
// names confPath (so a recycled pid of someone else is never touched), and
// any dnsmasq started with --conf-file=confPath (an agent killed between
// starting dnsmasq and dnsmasq writing its pid file left one the pid file
// does not name). Callers have stopped their own dnsmasq of the router.
func killStale(pidFile, confPath string) (bool, error) {
	pids := dnsmasqServing(confPath)
	b, err := os.ReadFile(pidFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 &&
		!slices.Contains(pids, pid) && cmdlineContains(pid, confPath) {
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 50 && cmdlineContains(pid, confPath); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if cmdlineContains(pid, confPath) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for i := 0; i < 50 && cmdlineContains(pid, confPath); i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	return len(pids) > 0, nil
}

// dnsmasqServing lists the live dnsmasq processes whose arguments hold
// --conf-file=confPath exactly (not any process that mentions the path:
// an operator's less of the file is left alone).
func dnsmasqServing(confPath string) []int {
	ents, _ := os.ReadDir("/proc")
	want := "--conf-file=" + confPath
	var out []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid <= 1 {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if strings.HasPrefix(filepath.Base(argv[0]), "dnsmasq") && slices.Contains(argv[1:], want) && cmdlineContains(pid, want) {
			out = append(out, pid)
		}
	}
	return out
}

func cmdlineContains(pid int, marker string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// A zombie (state Z) is gone for our purposes.
		if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return false
		}
	}
	return bytes.Contains(b, []byte(marker))
}

// hclogWriter forwards a child's output lines to the logger.
type hclogWriter struct{ log hclog.Logger }

func (w hclogWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line != "" {
			w.log.Debug(line)
		}
	}
	return len(b), nil
}
