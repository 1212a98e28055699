package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/hashicorp/go-hclog"
)

// DefaultSocket is libvirtd's read-write unix socket.
const DefaultSocket = "/var/run/libvirt/libvirt-sock"

// Conn implements Libvirt over go-libvirt. It dials lazily and redials when
// libvirtd goes away (a restart of libvirtd keeps running domains); a call
// that fails because the connection dropped is retried once on a new
// connection. Every call the builder makes is idempotent, so a retry after
// a request that did reach libvirtd is harmless. Reconnects counts the
// dials after the first (regent_agent_libvirt_reconnects_total).
type Conn struct {
	uri    libvirt.ConnectURI
	socket string

	reconnects atomic.Uint64

	mu     sync.Mutex
	l      *libvirt.Libvirt
	nc     net.Conn     // l's socket: closing it fails l's pending calls
	dialed bool         // a connection was made once: the next dial is a reconnect
	log    hclog.Logger // the builder's (New sets it)
}

// recordingDialer dials libvirtd's socket and keeps the connection, so
// that a call libvirtd does not answer can be cut (go-libvirt calls take
// no context).
type recordingDialer struct {
	d  socket.Dialer
	mu sync.Mutex
	nc net.Conn
}

func (r *recordingDialer) Dial() (net.Conn, error) {
	nc, err := r.d.Dial()
	if err == nil {
		r.mu.Lock()
		r.nc = nc
		r.mu.Unlock()
	}
	return nc, err
}

func (r *recordingDialer) conn() net.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nc
}

// errNoAnswer wraps the context error of a call libvirtd did not answer
// in time (stopped, deadlocked): the connection is dropped.
type errNoAnswer struct{ err error }

func (e *errNoAnswer) Error() string { return "libvirtd did not answer: " + e.err.Error() }
func (e *errNoAnswer) Unwrap() error { return e.err }

// bounded runs f, which waits for libvirtd, until it returns or ctx ends;
// then cut closes the connection f uses (again every 100 ms, in case f
// was still dialing), which makes f return, and the context's error is
// returned.
func bounded(ctx context.Context, cut func(), f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	for {
		cut()
		select {
		case <-done: // go-libvirt fails the pending calls of a closed socket
			return &errNoAnswer{err: ctx.Err()}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// closer closes nc (nil: nothing).
func closer(nc net.Conn) func() {
	return func() {
		if nc != nil {
			_ = nc.Close()
		}
	}
}

// disconnect closes l politely (ConnectClose) when libvirtd answers
// within a few seconds, and its socket nc anyway.
func disconnect(l *libvirt.Libvirt, nc net.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := bounded(ctx, closer(nc), l.Disconnect)
	closer(nc)()
	return err
}

// NewConn returns a connection to the qemu:///system driver of the libvirtd
// listening on socket ("" is DefaultSocket). It does not dial yet.
func NewConn(socket string) *Conn {
	if socket == "" {
		socket = DefaultSocket
	}
	return &Conn{uri: libvirt.QEMUSystem, socket: socket, log: hclog.NewNullLogger()}
}

// Reconnects is how many times the connection was dialed again after it
// had been lost (libvirtd restarted or closed it).
func (c *Conn) Reconnects() uint64 { return c.reconnects.Load() }

// setLogger makes the connection log its losses and reconnects.
func (c *Conn) setLogger(log hclog.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = log
}

// Close disconnects.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.l == nil {
		return nil
	}
	err := disconnect(c.l, c.nc)
	c.l, c.nc = nil, nil
	return err
}

// client returns a connected client, dialing when there is none or the last
// one is disconnected.
func (c *Conn) client(ctx context.Context) (*libvirt.Libvirt, net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.l != nil && c.l.IsConnected() {
		return c.l, c.nc, nil
	}
	if c.l != nil {
		c.log.Warn("connection to libvirtd lost: redialing", "socket", c.socket)
	}
	c.l, c.nc = nil, nil // disconnected already: nothing to close
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, nil, ctx.Err()
	}
	d := &recordingDialer{d: dialers.NewLocal(dialers.WithSocket(c.socket), dialers.WithLocalTimeout(timeout))}
	l := libvirt.NewWithDialer(d)
	// A libvirtd that accepts the connection but does not answer must not
	// hold the dial (and c.mu, every call) for longer than ctx allows.
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cut := func() { closer(d.conn())() }
	if err := bounded(dctx, cut, func() error { return l.ConnectToURI(c.uri) }); err != nil {
		cut()
		return nil, nil, fmt.Errorf("libvirt: connect %s: %w", c.socket, err)
	}
	if c.dialed {
		c.reconnects.Add(1)
		c.log.Info("reconnected to libvirtd", "socket", c.socket, "reconnects", c.reconnects.Load())
	}
	c.l, c.nc, c.dialed = l, d.conn(), true
	return l, c.nc, nil
}

// connectionLost reports whether err means the connection is gone rather
// than that libvirtd refused the call.
func connectionLost(l *libvirt.Libvirt, err error) bool {
	if err == nil || libvirtCode(err) >= 0 && !isCode(err, 1 /* internal error: connection closed */) {
		return false
	}
	if !l.IsConnected() || errors.Is(err, libvirt.ErrInterrupted) {
		return true
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EINVAL) || errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}

// ConnectionLost reports whether err, from a Builder over a Conn, means
// that libvirtd was away (not running, restarting, or gone in the middle
// of the call) rather than that it refused the call: the caller should
// wait for libvirtd instead of counting a failure. A call interrupted by a
// restart fails with go-libvirt's ErrInterrupted when its retry on a new
// connection is interrupted too.
func ConnectionLost(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, libvirt.ErrInterrupted) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// do runs f on a connected client, once more on a fresh connection when
// the first attempt lost the connection.
func (c *Conn) do(ctx context.Context, f func(l *libvirt.Libvirt) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		l, nc, err := c.client(ctx)
		if err != nil {
			if attempt < 1 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
			return err
		}
		err = bounded(ctx, closer(nc), func() error { return f(l) })
		var na *errNoAnswer
		if errors.As(err, &na) {
			// libvirtd did not answer in time (stopped, deadlocked): the
			// connection is closed; the next call dials anew.
			c.mu.Lock()
			if c.l == l {
				c.l, c.nc = nil, nil
				c.log.Warn("libvirtd did not answer in time: connection dropped", "socket", c.socket, "error", err)
			}
			c.mu.Unlock()
			return err
		}
		if attempt < 1 && connectionLost(l, err) {
			c.mu.Lock()
			drop := c.l == l
			if drop {
				c.l, c.nc = nil, nil
				c.log.Warn("connection to libvirtd lost: redialing", "socket", c.socket, "error", err)
			}
			c.mu.Unlock()
			if drop && l.IsConnected() {
				_ = disconnect(l, nc) // the socket looked alive: close it
			}
			continue
		}
		return err
	}
}

func (c *Conn) domain(l *libvirt.Libvirt, name string) (libvirt.Domain, error) {
	return l.DomainLookupByName(name)
}

// onDomain runs f on the domain called name, on a live connection.
func (c *Conn) onDomain(ctx context.Context, name string, f func(*libvirt.Libvirt, libvirt.Domain) error) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		d, err := c.domain(l, name)
		if err != nil {
			return err
		}
		return f(l, d)
	})
}

// DefineDomain implements Libvirt.
func (c *Conn) DefineDomain(ctx context.Context, xml string) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		_, err := l.DomainDefineXMLFlags(xml, libvirt.DomainDefineValidate)
		return err
	})
}

// StartDomain implements Libvirt.
func (c *Conn) StartDomain(ctx context.Context, name string) error {
	return c.onDomain(ctx, name, func(l *libvirt.Libvirt, d libvirt.Domain) error {
		return l.DomainCreate(d)
	})
}

// ShutdownDomain implements Libvirt.
func (c *Conn) ShutdownDomain(ctx context.Context, name string) error {
	return c.onDomain(ctx, name, func(l *libvirt.Libvirt, d libvirt.Domain) error {
		return l.DomainShutdown(d)
	})
}

// DestroyDomain implements Libvirt.
func (c *Conn) DestroyDomain(ctx context.Context, name string) error {
	return c.onDomain(ctx, name, func(l *libvirt.Libvirt, d libvirt.Domain) error {
		return l.DomainDestroyFlags(d, 0)
	})
}

// UndefineDomain implements Libvirt.
func (c *Conn) UndefineDomain(ctx context.Context, name string) error {
	return c.onDomain(ctx, name, func(l *libvirt.Libvirt, d libvirt.Domain) error {
		return l.DomainUndefineFlags(d, libvirt.DomainUndefineNvram|libvirt.DomainUndefineSnapshotsMetadata|
			libvirt.DomainUndefineCheckpointsMetadata|libvirt.DomainUndefineManagedSave)
	})
}

// DomainState implements Libvirt.
func (c *Conn) DomainState(ctx context.Context, name string) (DomainState, error) {
	var s DomainState
	err := c.do(ctx, func(l *libvirt.Libvirt) error {
		d, err := c.domain(l, name)
		if err != nil {
			return err
		}
		st, _, err := l.DomainGetState(d, 0)
		s = DomainState(st)
		return err
	})
	return s, err
}

// DomainXML implements Libvirt.
func (c *Conn) DomainXML(ctx context.Context, name string, inactive bool) (string, error) {
	var x string
	err := c.do(ctx, func(l *libvirt.Libvirt) error {
		d, err := c.domain(l, name)
		if err != nil {
			return err
		}
		var flags libvirt.DomainXMLFlags
		if inactive {
			flags = libvirt.DomainXMLInactive
		}
		x, err = l.DomainGetXMLDesc(d, flags)
		return err
	})
	return x, err
}

// ListDomains implements Libvirt.
func (c *Conn) ListDomains(ctx context.Context) ([]string, error) {
	var names []string
	err := c.do(ctx, func(l *libvirt.Libvirt) error {
		ds, _, err := l.ConnectListAllDomains(1, libvirt.ConnectListDomainsActive|libvirt.ConnectListDomainsInactive)
		names = names[:0]
		for _, d := range ds {
			names = append(names, d.Name)
		}
		return err
	})
	return names, err
}

// SetAutostart implements Libvirt.
func (c *Conn) SetAutostart(ctx context.Context, name string, on bool) error {
	return c.onDomain(ctx, name, func(l *libvirt.Libvirt, d libvirt.Domain) error {
		v := int32(0)
		if on {
			v = 1
		}
		return l.DomainSetAutostart(d, v)
	})
}

// AttachDevice implements Libvirt.
func (c *Conn) AttachDevice(ctx context.Context, name, xml string) error {
	return c.onDomain(ctx, name, func(l *libvirt.Libvirt, d libvirt.Domain) error {
		return l.DomainAttachDeviceFlags(d, xml, uint32(libvirt.DomainAffectLive))
	})
}

// BlockResize implements Libvirt.
func (c *Conn) BlockResize(ctx context.Context, name, disk string, size uint64) error {
	return c.onDomain(ctx, name, func(l *libvirt.Libvirt, d libvirt.Domain) error {
		return l.DomainBlockResize(d, disk, size, libvirt.DomainBlockResizeBytes)
	})
}

// CreateSnapshot implements Libvirt.
func (c *Conn) CreateSnapshot(ctx context.Context, domain, xml string, diskOnly bool) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		d, err := c.domain(l, domain)
		if err != nil {
			return err
		}
		var flags libvirt.DomainSnapshotCreateFlags
		if diskOnly {
			flags = libvirt.DomainSnapshotCreateDiskOnly | libvirt.DomainSnapshotCreateNoMetadata | libvirt.DomainSnapshotCreateAtomic
		}
		_, err = l.DomainSnapshotCreateXML(d, xml, uint32(flags))
		return err
	})
}

// RevertSnapshot implements Libvirt.
func (c *Conn) RevertSnapshot(ctx context.Context, domain, snapshot string) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		d, err := c.domain(l, domain)
		if err != nil {
			return err
		}
		s, err := l.DomainSnapshotLookupByName(d, snapshot, 0)
		if err != nil {
			return err
		}
		return l.DomainRevertToSnapshot(s, 0)
	})
}

// DeleteSnapshot implements Libvirt.
func (c *Conn) DeleteSnapshot(ctx context.Context, domain, snapshot string, children bool) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		d, err := c.domain(l, domain)
		if err != nil {
			return err
		}
		s, err := l.DomainSnapshotLookupByName(d, snapshot, 0)
		if err != nil {
			return err
		}
		var flags libvirt.DomainSnapshotDeleteFlags
		if children {
			flags = libvirt.DomainSnapshotDeleteChildren
		}
		return l.DomainSnapshotDelete(s, flags)
	})
}

// ListSnapshots implements Libvirt.
func (c *Conn) ListSnapshots(ctx context.Context, domain string) ([]SnapshotInfo, error) {
	var out []SnapshotInfo
	err := c.do(ctx, func(l *libvirt.Libvirt) error {
		out = out[:0]
		d, err := c.domain(l, domain)
		if err != nil {
			return err
		}
		snaps, _, err := l.DomainListAllSnapshots(d, 1, 0)
		if err != nil {
			return err
		}
		current := ""
		if cur, err := l.DomainSnapshotCurrent(d, 0); err == nil {
			current = cur.Name
		}
		for _, s := range snaps {
			info := SnapshotInfo{Name: s.Name, Current: s.Name == current}
			if p, err := l.DomainSnapshotGetParent(s, 0); err == nil {
				info.Parent = p.Name
			} else if !isCode(err, errNoDomainSnapshot) {
				return err
			}
			out = append(out, info)
		}
		return nil
	})
	return out, err
}

// CommitActive implements Libvirt.
func (c *Conn) CommitActive(ctx context.Context, domain, disk string) error {
	err := c.do(ctx, func(l *libvirt.Libvirt) error {
		d, err := c.domain(l, domain)
		if err != nil {
			return err
		}
		// A commit job left running by an agent killed mid-commit: wait
		// for it and pivot (a second commit is refused while it runs).
		if found, _, _, _, _, err := l.DomainGetBlockJobInfo(d, disk, 0); err == nil && found != 0 {
			return nil
		}
		return l.DomainBlockCommit(d, disk, nil, nil, 0, libvirt.DomainBlockCommitActive|libvirt.DomainBlockCommitShallow)
	})
	if err != nil {
		return err
	}
	for {
		var ready bool
		err := c.do(ctx, func(l *libvirt.Libvirt) error {
			d, err := c.domain(l, domain)
			if err != nil {
				return err
			}
			found, _, _, cur, end, err := l.DomainGetBlockJobInfo(d, disk, 0)
			if err != nil {
				return err
			}
			if found == 0 {
				return fmt.Errorf("libvirt: block commit job of %s %s vanished", domain, disk)
			}
			ready = end > 0 && cur == end
			if ready {
				err := l.DomainBlockJobAbort(d, disk, libvirt.DomainBlockJobAbortPivot)
				// cur == end is not always libvirt's "ready" yet: a refused
				// pivot of a job that is not ready is polled again.
				if err != nil && (isCode(err, int(libvirt.ErrBlockCopyActive)) || strings.Contains(err.Error(), "not ready for pivot")) {
					ready = false
					return nil
				}
				return err
			}
			return nil
		})
		if err != nil || ready {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Conn) pool(l *libvirt.Libvirt, name string) (libvirt.StoragePool, error) {
	return l.StoragePoolLookupByName(name)
}

// DefinePool implements Libvirt.
func (c *Conn) DefinePool(ctx context.Context, xml string) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		_, err := l.StoragePoolDefineXML(xml, 0)
		return err
	})
}

// StartPool implements Libvirt.
func (c *Conn) StartPool(ctx context.Context, name string) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		p, err := c.pool(l, name)
		if err != nil {
			return err
		}
		if err := l.StoragePoolBuild(p, 0); err != nil {
			return err
		}
		if err := l.StoragePoolSetAutostart(p, 1); err != nil {
			return err
		}
		return l.StoragePoolCreate(p, 0)
	})
}

// RefreshPool implements Libvirt.
func (c *Conn) RefreshPool(ctx context.Context, name string) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		p, err := c.pool(l, name)
		if err != nil {
			return err
		}
		return l.StoragePoolRefresh(p, 0)
	})
}

// PoolInfo implements Libvirt.
func (c *Conn) PoolInfo(ctx context.Context, name string) (PoolInfo, error) {
	var pi PoolInfo
	err := c.do(ctx, func(l *libvirt.Libvirt) error {
		p, err := c.pool(l, name)
		if err != nil {
			return err
		}
		st, capa, alloc, avail, err := l.StoragePoolGetInfo(p)
		pi = PoolInfo{Active: st == uint8(libvirt.StoragePoolRunning), Capacity: capa, Allocation: alloc, Available: avail}
		return err
	})
	return pi, err
}

// CreateVolume implements Libvirt.
func (c *Conn) CreateVolume(ctx context.Context, pool, xml string) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		p, err := c.pool(l, pool)
		if err != nil {
			return err
		}
		_, err = l.StorageVolCreateXML(p, xml, 0)
		return err
	})
}

// VolumeInfo implements Libvirt.
func (c *Conn) VolumeInfo(ctx context.Context, pool, name string) (VolumeInfo, error) {
	var vi VolumeInfo
	err := c.do(ctx, func(l *libvirt.Libvirt) error {
		p, err := c.pool(l, pool)
		if err != nil {
			return err
		}
		v, err := l.StorageVolLookupByName(p, name)
		if err != nil {
			return err
		}
		_, capa, alloc, err := l.StorageVolGetInfo(v)
		if err != nil {
			return err
		}
		path, err := l.StorageVolGetPath(v)
		vi = VolumeInfo{Path: path, Capacity: capa, Allocation: alloc}
		return err
	})
	return vi, err
}

// ResizeVolume implements Libvirt.
func (c *Conn) ResizeVolume(ctx context.Context, pool, name string, size uint64) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		p, err := c.pool(l, pool)
		if err != nil {
			return err
		}
		v, err := l.StorageVolLookupByName(p, name)
		if err != nil {
			return err
		}
		return l.StorageVolResize(v, size, 0)
	})
}

// DeleteVolume implements Libvirt.
func (c *Conn) DeleteVolume(ctx context.Context, pool, name string) error {
	return c.do(ctx, func(l *libvirt.Libvirt) error {
		p, err := c.pool(l, pool)
		if err != nil {
			return err
		}
		v, err := l.StorageVolLookupByName(p, name)
		if err != nil {
			return err
		}
		return l.StorageVolDelete(v, 0)
	})
}

// NodeInfo implements Libvirt.
func (c *Conn) NodeInfo(ctx context.Context) (NodeInfo, error) {
	var ni NodeInfo
	err := c.do(ctx, func(l *libvirt.Libvirt) error {
		_, mem, cpus, _, _, _, _, _, err := l.NodeGetInfo()
		ni = NodeInfo{CPUs: int(cpus), MemoryKiB: mem}
		return err
	})
	return ni, err
}

// DomainStats implements Libvirt.
func (c *Conn) DomainStats(ctx context.Context) ([]DomainStats, error) {
	var out []DomainStats
	err := c.do(ctx, func(l *libvirt.Libvirt) error {
		recs, err := l.ConnectGetAllDomainStats(nil,
			uint32(libvirt.DomainStatsState|libvirt.DomainStatsCPUTotal|libvirt.DomainStatsBalloon|
				libvirt.DomainStatsInterface|libvirt.DomainStatsBlock), 0)
		if err != nil {
			return err
		}
		out = make([]DomainStats, 0, len(recs))
		for _, r := range recs {
			out = append(out, parseStats(r.Dom.Name, r.Params))
		}
		return nil
	})
	return out, err
}

// parseStats turns the typed parameters of virConnectGetAllDomainStats into
// base units.
func parseStats(name string, params []libvirt.TypedParam) DomainStats {
	s := DomainStats{Name: name}
	num := func(v libvirt.TypedParamValue) uint64 {
		switch x := v.I.(type) {
		case uint64:
			return x
		case int64:
			return uint64(x)
		case uint32:
			return uint64(x)
		case int32:
			return uint64(x)
		}
		return 0
	}
	str := func(v libvirt.TypedParamValue) string { x, _ := v.I.(string); return x }
	blocks := map[string]*BlockStats{}
	nets := map[string]*NetStats{}
	var order []string
	idx := func(field string) (kind, i, rest string) {
		parts := strings.SplitN(field, ".", 3)
		if len(parts) < 3 {
			return "", "", ""
		}
		return parts[0], parts[1], parts[2]
	}
	for _, p := range params {
		switch p.Field {
		case "state.state":
			s.State = DomainState(num(p.Value))
			continue
		case "cpu.time":
			s.CPUSeconds = float64(num(p.Value)) / 1e9
			continue
		case "balloon.current":
			s.MemoryBytes = num(p.Value) * 1024
			continue
		}
		kind, i, rest := idx(p.Field)
		switch kind {
		case "block":
			b := blocks[i]
			if b == nil {
				b = &BlockStats{}
				blocks[i] = b
				order = append(order, "block."+i)
			}
			switch rest {
			case "name":
				b.Device = str(p.Value)
			case "rd.bytes":
				b.ReadBytes = num(p.Value)
			case "wr.bytes":
				b.WriteBytes = num(p.Value)
			}
		case "net":
			n := nets[i]
			if n == nil {
				n = &NetStats{}
				nets[i] = n
				order = append(order, "net."+i)
			}
			switch rest {
			case "name":
				n.Device = str(p.Value)
			case "rx.bytes":
				n.RxBytes = num(p.Value)
			case "tx.bytes":
				n.TxBytes = num(p.Value)
			}
		}
	}
	for _, k := range order {
		kind, i, _ := idx(k + ".x")
		if kind == "block" {
			s.Block = append(s.Block, *blocks[i])
		} else {
			s.Net = append(s.Net, *nets[i])
		}
	}
	return s
}

var _ Libvirt = (*Conn)(nil)
