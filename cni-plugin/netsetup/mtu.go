package netsetup

import (
	"errors"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
)

// Uplink is what choosing the pods' MTU needs to know of a host link.
type Uplink struct {
	Name string
	MTU  int
	Up   bool
	// Loopback, or a host veth of Cairn's own (a pod's, not an uplink).
	Loopback bool
	// Global: the link has a global unicast address (IPv4 or IPv6).
	Global bool
}

// ChooseMTU is the MTU for pod veths when the configuration sets none:
// the smallest MTU of the host's uplinks, the links that are up, not
// loopback, not a pod's host veth, and hold a global unicast address. A
// pod's packets leave through one of them, so a bigger MTU would be
// fragmented or dropped there (with jumbo frames, a smaller one would waste
// them). 0 means there is none; the kernel's default then applies.
func ChooseMTU(links []Uplink) int {
	best := 0
	for _, l := range links {
		if !l.Up || l.Loopback || strings.HasPrefix(l.Name, HostVethPrefix) || !l.Global || l.MTU <= 0 {
			continue
		}
		if best == 0 || l.MTU < best {
			best = l.MTU
		}
	}
	return best
}

// UplinkMTU is ChooseMTU over the host namespace's links.
func (k *Kernel) UplinkMTU() (int, error) {
	var mtu int
	err := k.inHost(func() error {
		// Pod veths come and go during a burst of ADDs and can keep
		// interrupting the dumps; the uplinks are stable, so a dump still
		// interrupted after dump's retries is used as it is.
		links, err := dump("host links", netlink.LinkList)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
		addrs, err := dump("host addresses", func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
		global := map[int]bool{}
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				global[a.LinkIndex] = true
			}
		}
		var up []Uplink
		for _, l := range links {
			at := l.Attrs()
			up = append(up, Uplink{Name: at.Name, MTU: at.MTU, Up: at.Flags&net.FlagUp != 0,
				Loopback: at.Flags&net.FlagLoopback != 0, Global: global[at.Index]})
		}
		mtu = ChooseMTU(up)
		return nil
	})
	return mtu, err
}
