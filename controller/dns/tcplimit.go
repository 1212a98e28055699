package dns

import (
	"net"
	"sync"
	"time"
)

// limitListener bounds the TCP connections open at once. Without a bound,
// anyone who can reach the DNS port could hold connections (each lives up
// to TCPIdleTimeout per message) until the process runs out of file
// descriptors, and then the HTTP API and raft could accept nothing either.
// At the bound Accept waits for a connection to close: new clients queue in
// the kernel's listen backlog, as with NSD's tcp-count, and UDP is not
// affected.
//
// It also backs off after a temporary Accept error (EMFILE, ENFILE): the
// miekg/dns server retries those at once, in a loop that would take a
// whole core for as long as the condition lasts.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	s         *Server
}

func newLimitListener(ln net.Listener, n int, s *Server) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}), s: s}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.s.metrics.tcpLimited()
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.s.metrics.tcpConn(1)
			return &limitConn{Conn: c, l: l}, nil
		}
		if te, ok := err.(interface{ Temporary() bool }); !ok || !te.Temporary() {
			<-l.sem
			return nil, err
		}
		l.s.log.Warn("tcp accept failed; retrying", "error", err, "retry_in", backoff)
		select {
		case <-l.done:
			<-l.sem
			return nil, net.ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Close stops Accept, also one waiting for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn frees its slot when closed.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		<-c.l.sem
		c.l.s.metrics.tcpConn(-1)
	})
	return err
}
