package felix_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/felix/internal/netnstest"
)

// A pod that sends IPv6 router advertisements changes nothing on the node:
// no default route, no address, no prefix. A control link on the same node
// that accepts RAs (as an uplink might) gets the same advertisement and
// does take it, so the check would fail if felix left the pod's host veth
// open to RAs.
func TestPrivilegedPodRouterAdvertisementsIgnored(t *testing.T) {
	node := netnstest.New(t)
	pod := newPod(t, node, "crnpodra", "10.99.64.9")
	router := netnstest.New(t)
	node.IP(t, "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", router.Name)
	router.IP(t, "link", "set", "eth0", "up")
	node.IP(t, "link", "set", "uplink", "up")
	for _, s := range []string{"net.ipv6.conf.uplink.accept_ra=1", "net.ipv6.conf.uplink.forwarding=0"} {
		if out, err := node.Exec(timeout(t, 10*time.Second), "sysctl", "-w", s); err != nil {
			t.Fatalf("sysctl %s: %v\n%s", s, err, out)
		}
	}

	f, _ := runFelix(t, node)
	ctx := timeout(t, 30*time.Second)
	if err := f.SetEndpoint(ctx, felix.Endpoint{HostIface: pod.hostIface, Addrs: []netip.Prefix{netip.PrefixFrom(pod.addr, 32)}}); err != nil {
		t.Fatal(err)
	}

	// The pod advertises first, the control router after it: once the
	// control's advertisement has been taken, the pod's had its chance.
	sendRA(t, pod.ns, "eth0", netip.MustParsePrefix("2001:db8:bad::/64"))
	sendRA(t, router, "eth0", netip.MustParsePrefix("2001:db8:600d::/64"))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(node.IP(t, "-6", "addr", "show", "dev", "uplink"), "2001:db8:600d:") {
		if time.Now().After(deadline) {
			t.Fatalf("the control link never took the RA: the check below would prove nothing\n%s", node.IP(t, "-6", "addr"))
		}
		time.Sleep(50 * time.Millisecond) // polling the kernel's view: no event to wait on
	}
	if addrs := node.IP(t, "-6", "addr"); strings.Contains(addrs, "2001:db8:bad:") {
		t.Errorf("the node took an address from the pod's RA:\n%s", addrs)
	}
	if routes := node.IP(t, "-6", "route"); strings.Contains(routes, "dev "+pod.hostIface+" proto ra") || strings.Contains(routes, "2001:db8:bad:") {
		t.Errorf("the node took a route from the pod's RA:\n%s", routes)
	}
}

// sendRA sends one router advertisement (router lifetime 1800 s, one
// autonomous on-link prefix) out of iface in n, from its link-local
// address once that has passed duplicate address detection.
func sendRA(t *testing.T, n *netnstest.NS, iface string, prefix netip.Prefix) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for out := n.IP(t, "-6", "addr", "show", "dev", iface, "scope", "link"); !strings.Contains(out, "fe80:") || strings.Contains(out, "tentative"); out = n.IP(t, "-6", "addr", "show", "dev", iface, "scope", "link") {
		if time.Now().After(deadline) {
			t.Fatalf("no usable link-local address on %s in %s:\n%s", iface, n.Name, out)
		}
		time.Sleep(50 * time.Millisecond) // DAD takes a second or two: poll
	}
	ra := make([]byte, 16, 48)
	ra[0] = 134                                 // ICMPv6 router advertisement; checksum by the kernel
	ra[4] = 64                                  // current hop limit
	binary.BigEndian.PutUint16(ra[6:], 1800)    // router lifetime
	pi := make([]byte, 32)                      // prefix information option
	pi[0], pi[1], pi[2], pi[3] = 3, 4, 64, 0xc0 // type, length in 8 octets, prefix length, on-link|autonomous
	binary.BigEndian.PutUint32(pi[4:], 86400)   // valid lifetime
	binary.BigEndian.PutUint32(pi[8:], 14400)   // preferred lifetime
	a16 := prefix.Addr().As16()
	copy(pi[16:], a16[:])
	ra = append(ra, pi...)
	err := n.Do(func(ns.NetNS) error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// Neighbour discovery is only accepted with hop limit 255.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index); err != nil {
			return err
		}
		all := netip.MustParseAddr("ff02::1").As16()
		return unix.Sendto(fd, ra, 0, &unix.SockaddrInet6{Addr: all, ZoneId: uint32(ifi.Index)})
	})
	if err != nil {
		t.Fatalf("send RA from %s: %v", n.Name, err)
	}
}
