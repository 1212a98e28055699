package netrouter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// The policy log: rules with Log on carry `log prefix "r<router> <in|out>
// <order> <allow|block> " group <NFLogGroup>`. The builder binds that nflog
// group inside each router's namespace and keeps the most recent entries
// for the agent to report as policy_log.

// PolicyLogEntry is one packet a logging firewall rule matched.
type PolicyLogEntry struct {
	// Seq numbers the entries of a Builder, across its routers and their
	// logs restarted, in the order they were logged: a reader that keeps
	// the last one it took gets exactly the newer ones (times are not
	// unique, nor always in order). The numbers start from 1 with each
	// Builder; Builder.PolicyLogEpoch names them.
	Seq             uint64     `json:"seq"`
	Time            time.Time  `json:"time"`
	RouterID        uint64     `json:"router_id"`
	Direction       string     `json:"direction"` // "in" or "out"
	Order           int        `json:"order"`     // the rule's order
	Action          string     `json:"action"`    // "allow" or "block"
	Protocol        string     `json:"protocol"`  // tcp, udp, icmp, or the IP protocol number
	Source          netip.Addr `json:"source"`
	Destination     netip.Addr `json:"destination"`
	SourcePort      uint16     `json:"source_port,omitempty"`
	DestinationPort uint16     `json:"destination_port,omitempty"`
}

// nfnetlink_log attribute and command numbers (linux/netfilter/nfnetlink_log.h).
const (
	nfulnlMsgPacket  = 0
	nfulnlMsgConfig  = 1
	nfulaTimestamp   = 3
	nfulaPayload     = 9
	nfulaPrefix      = 10
	nfulaCfgCmd      = 1
	nfulaCfgMode     = 2
	nfulaCfgQthresh  = 5
	nfulnlCmdBind    = 1
	nfulnlCopyPacket = 2
	nflogCopyRange   = 128 // enough for IP and transport headers
)

// policyLog reads one namespace's nflog group into a ring buffer.
type policyLog struct {
	log  hclog.Logger
	f    *os.File
	done chan struct{}

	seq *atomic.Uint64 // the builder's: numbers the entries

	mu   sync.Mutex
	ring []PolicyLogEntry
	next int
	full bool
}

func startPolicyLog(log hclog.Logger, nsPath string, group uint16, size int, seq *atomic.Uint64) (*policyLog, error) {
	var fd int
	err := withNetnsPath(nsPath, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("nflog socket: %w", err)
	}
	if err := configureNflog(fd, group); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	p := &policyLog{
		log:  log,
		f:    os.NewFile(uintptr(fd), "nflog"),
		done: make(chan struct{}),
		ring: make([]PolicyLogEntry, size),
		seq:  seq,
	}
	go p.run()
	return p, nil
}

// configureNflog binds fd to group with packet copies, one message per
// packet, and waits for the kernel's acknowledgement.
func configureNflog(fd int, group uint16) error {
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	tv := unix.Timeval{Sec: 2}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, nflogCopyRange)
	mode[4] = nfulnlCopyPacket
	qthresh := binary.BigEndian.AppendUint32(nil, 1)
	for seq, attrs := range [][]nlattr{
		{{nfulaCfgCmd, []byte{nfulnlCmdBind}}},
		{{nfulaCfgMode, mode}, {nfulaCfgQthresh, qthresh}},
	} {
		msg := nflogConfigMsg(uint32(seq+1), group, attrs)
		if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("nflog config: %w", err)
		}
		if err := readAck(fd); err != nil {
			return fmt.Errorf("nflog bind group %d: %w", group, err)
		}
	}
	return nil
}

type nlattr struct {
	typ  uint16
	data []byte
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// nflogConfigMsg builds an NFULNL_MSG_CONFIG request for group.
func nflogConfigMsg(seq uint32, group uint16, attrs []nlattr) []byte {
	body := []byte{unix.AF_UNSPEC, 0, byte(group >> 8), byte(group)} // nfgenmsg, res_id big-endian
	for _, a := range attrs {
		l := 4 + len(a.data)
		hdr := make([]byte, 4)
		binary.NativeEndian.PutUint16(hdr, uint16(l))
		binary.NativeEndian.PutUint16(hdr[2:], a.typ)
		body = append(body, hdr...)
		body = append(body, a.data...)
		body = append(body, make([]byte, nlAlign(l)-l)...)
	}
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgConfig)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	return append(msg, body...)
}

func readAck(fd int) error {
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
				return unix.Errno(-errno)
			}
			return nil
		}
	}
	return errors.New("no acknowledgement")
}

func (p *policyLog) run() {
	defer close(p.done)
	buf := make([]byte, 1<<16)
	for {
		n, err := p.f.Read(buf)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				p.log.Warn("policy log overrun: entries lost")
				continue
			}
			p.log.Error("policy log read failed", "error", err)
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket {
				continue
			}
			if e, ok := parseNflogPacket(m.Data); ok {
				p.add(e)
			}
		}
	}
}

func (p *policyLog) add(e PolicyLogEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.Seq = p.seq.Add(1)
	p.ring[p.next] = e
	p.next = (p.next + 1) % len(p.ring)
	if p.next == 0 {
		p.full = true
	}
}

// entries returns the kept entries, oldest first.
func (p *policyLog) entries() []PolicyLogEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.full {
		return append([]PolicyLogEntry(nil), p.ring[:p.next]...)
	}
	return append(append([]PolicyLogEntry(nil), p.ring[p.next:]...), p.ring[:p.next]...)
}

func (p *policyLog) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *policyLog) Stop() {
	_ = p.f.Close()
	<-p.done
}

// parseNflogPacket decodes one NFULNL_MSG_PACKET (after the netlink
// header): the rule's prefix and the addresses of the logged packet.
func parseNflogPacket(data []byte) (PolicyLogEntry, bool) {
	var e PolicyLogEntry
	if len(data) < 4 {
		return e, false
	}
	var prefix string
	var payload []byte
	for b := data[4:]; len(b) >= 4; {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & 0x3fff
		if l < 4 || l > len(b) {
			break
		}
		v := b[4:l]
		switch typ {
		case nfulaPrefix:
			prefix = strings.TrimRight(string(v), "\x00")
		case nfulaPayload:
			payload = v
		case nfulaTimestamp:
			if len(v) >= 16 {
				e.Time = time.Unix(int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))*1000).UTC()
			}
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	if !parsePolicyPrefix(prefix, &e) {
		return e, false
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	parseIPPacket(payload, &e)
	return e, true
}

// parsePolicyPrefix reads "r<router> <in|out> <order> <allow|block>".
func parsePolicyPrefix(prefix string, e *PolicyLogEntry) bool {
	f := strings.Fields(prefix)
	if len(f) != 4 || !strings.HasPrefix(f[0], "r") {
		return false
	}
	id, err1 := strconv.ParseUint(f[0][1:], 10, 64)
	order, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || (f[1] != "in" && f[1] != "out") || (f[3] != "allow" && f[3] != "block") {
		return false
	}
	e.RouterID, e.Direction, e.Order, e.Action = id, f[1], order, f[3]
	return true
}

func parseIPPacket(p []byte, e *PolicyLogEntry) {
	if len(p) < 1 {
		return
	}
	var proto byte
	var l4 []byte
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0x0f) * 4
		if len(p) < 20 || ihl < 20 {
			return
		}
		proto = p[9]
		e.Source = netip.AddrFrom4([4]byte(p[12:16]))
		e.Destination = netip.AddrFrom4([4]byte(p[16:20]))
		if len(p) > ihl {
			l4 = p[ihl:]
		}
	case 6:
		if len(p) < 40 {
			return
		}
		proto = p[6]
		e.Source = netip.AddrFrom16([16]byte(p[8:24]))
		e.Destination = netip.AddrFrom16([16]byte(p[24:40]))
		l4 = p[40:]
	default:
		return
	}
	switch proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP:
		e.Protocol = map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp"}[proto]
		if len(l4) >= 4 {
			e.SourcePort = binary.BigEndian.Uint16(l4)
			e.DestinationPort = binary.BigEndian.Uint16(l4[2:])
		}
	case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
		e.Protocol = "icmp"
	default:
		e.Protocol = strconv.Itoa(int(proto))
	}
}
