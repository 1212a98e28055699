package netrouter

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Gratuitous ARP: when a public address is (re)added to pub0 — a new
// router, a namespace built again (a new veth, a new MAC), a 1:1 NAT
// address moved here from another router — or the public veth comes up
// again, the upstream neighbours still map the address to the old MAC for
// up to ~30 s (their REACHABLE time), so the VMs behind it are
// unreachable. pub0 announces each such address with a gratuitous ARP
// request (sender = target = the address), which updates every existing
// neighbour entry on the segment. It is sent at once and repeated twice
// (garpRepeat apart) in case one is lost. Public addresses are IPv4 only
// (the plan refuses others), so there is no unsolicited NA to send.

const garpRepeat = 500 * time.Millisecond

// announce sends the gratuitous ARPs for addrs on dev inside namespace ns:
// the first synchronously (its error returned), the repeats in the
// background (errors ignored: the router may be gone by then).
func announce(ns, dev string, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	err := sendGARP(ns, dev, addrs)
	go func() {
		for range 2 {
			time.Sleep(garpRepeat)
			_ = sendGARP(ns, dev, addrs)
		}
	}()
	return err
}

func sendGARP(ns, dev string, addrs []netip.Addr) error {
	return withNetnsPath(nsPath(ns), func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("gratuitous arp: %s has no Ethernet address", dev)
		}
		proto := htons(unix.ETH_P_ARP)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("gratuitous arp: %w", err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		for _, a := range addrs {
			if !a.Is4() {
				continue
			}
			if err := unix.Sendto(fd, garpFrame(ifi.HardwareAddr, a), 0, to); err != nil {
				return fmt.Errorf("gratuitous arp for %s on %s: %w", a, dev, err)
			}
		}
		return nil
	})
}

// garpFrame is an Ethernet broadcast ARP request from mac announcing ip
// (sender and target address both ip).
func garpFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_ARP)
	arp := f[14:]
	binary.BigEndian.PutUint16(arp[0:2], 1)      // Ethernet
	binary.BigEndian.PutUint16(arp[2:4], 0x0800) // IPv4
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:8], 1) // request
	copy(arp[8:14], mac)
	a4 := ip.As4()
	copy(arp[14:18], a4[:])
	// target hardware address zero
	copy(arp[24:28], a4[:])
	return f
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
