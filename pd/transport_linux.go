package pd

import (
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"golang.org/x/sys/unix"
)

// Client and server ports and the servers' multicast address (RFC 8415
// section 7).
const (
	ClientPort = 546
	ServerPort = 547
)

// AllServers is All_DHCP_Relay_Agents_and_Servers.
var AllServers = net.ParseIP("ff02::1:2")

// udp is the Transport on a link's interface: UDP port 546 bound to the
// device (SO_BINDTODEVICE, so that clients on several links share the
// port), sending to ff02::1:2 port 547 out of it, from its link-local
// address.
type udp struct {
	conn  *net.UDPConn
	iface string
	buf   []byte
}

// Listen opens the client socket on interface iface, in the calling
// thread's network namespace.
func Listen(iface string) (Transport, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(int(fd), iface)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(nil, "udp6", fmt.Sprintf("[::]:%d", ClientPort))
	if err != nil {
		return nil, fmt.Errorf("dhcpv6 client socket on %s: %w", iface, err)
	}
	return &udp{conn: pc.(*net.UDPConn), iface: iface, buf: make([]byte, 65536)}, nil
}

func (u *udp) Send(m *dhcpv6.Message) error {
	_, err := u.conn.WriteToUDP(m.ToBytes(), &net.UDPAddr{IP: AllServers, Port: ServerPort, Zone: u.iface})
	if err != nil {
		return fmt.Errorf("send %s on %s: %w", m.MessageType, u.iface, err)
	}
	return nil
}

func (u *udp) Receive(deadline time.Time) (*dhcpv6.Message, error) {
	if err := u.conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	for {
		n, from, err := u.conn.ReadFromUDP(u.buf)
		if err != nil {
			return nil, err
		}
		if from.Port != ServerPort {
			continue
		}
		m, err := dhcpv6.MessageFromBytes(u.buf[:n])
		if err != nil {
			continue // malformed: ignored (RFC 8415 16)
		}
		if err := u.conn.SetReadDeadline(time.Time{}); err != nil {
			return nil, err
		}
		return m, nil
	}
}

func (u *udp) Close() error { return u.conn.Close() }
