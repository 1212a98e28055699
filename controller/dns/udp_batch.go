package dns

import (
	"errors"
	"net"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpBatch is the number of datagrams read (recvmmsg) and written
// (sendmmsg) per system call on Linux.
const udpBatch = 32

// batchConn is implemented by ipv4.PacketConn and ipv6.PacketConn.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// serveUDPBatch is one read loop on one socket, reading and writing
// batches of datagrams to save system calls under load.
func (s *Server) serveUDPBatch(conn *net.UDPConn) {
	var pc batchConn
	if la, ok := conn.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		pc = ipv4.NewPacketConn(conn)
	} else {
		pc = ipv6.NewPacketConn(conn)
	}
	outSize := max(s.cfg.UDPSize, 4096)
	rms := make([]ipv4.Message, udpBatch)
	wms := make([]ipv4.Message, udpBatch)
	outs := make([][]byte, udpBatch)
	for i := range rms {
		rms[i].Buffers = [][]byte{make([]byte, 8192)}
		wms[i].Buffers = make([][]byte, 1)
		outs[i] = make([]byte, outSize)
	}
	for {
		n, err := pc.ReadBatch(rms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("udp read", "error", err)
			time.Sleep(time.Millisecond)
			continue
		}
		var last time.Time
		if s.metrics != nil {
			last = time.Now()
		}
		zs := s.snap.Load()
		w := 0
		for i := range n {
			m := &rms[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok || m.N > len(m.Buffers[0]) || m.Flags&msgTrunc != 0 {
				continue
			}
			resp := s.handleUDP(zs, m.Buffers[0][:m.N], outs[w], ua.AddrPort())
			if s.metrics != nil {
				now := time.Now()
				s.metrics.observe(protoUDP, now.Sub(last).Seconds())
				last = now
			}
			if resp == nil {
				continue
			}
			wms[w].Buffers[0] = resp
			wms[w].Addr = m.Addr
			w++
		}
		for off := 0; off < w; {
			k, err := pc.WriteBatch(wms[off:w], 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				s.log.Debug("udp write", "error", err)
				off++ // skip the datagram that failed
				continue
			}
			off += k
		}
		for i := range w {
			wms[i].Addr = nil
		}
	}
}
