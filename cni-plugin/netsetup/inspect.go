package netsetup

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpRetries bounds retries of a dump the kernel interrupted because the
// table changed underneath it.
const dumpRetries = 5

// dump runs a netlink dump, retrying while it is interrupted. Every dump in
// this package goes through it.
func dump[T any](what string, fn func() (T, error)) (T, error) {
	var (
		out T
		err error
	)
	for range dumpRetries {
		out, err = fn()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return out, fmt.Errorf("dump %s: %w", what, err)
	}
	return out, nil
}

// InspectPod reads the pod's interface back: link, addresses, routes and
// neighbours. A missing interface is ErrLinkNotFound.
func (k *Kernel) InspectPod(netnsPath, ifName string) (PodState, error) {
	var st PodState
	err := inPod(netnsPath, func() error {
		link, err := netlink.LinkByName(ifName)
		if isNotFound(err) {
			return fmt.Errorf("%s in %s: %w", ifName, netnsPath, ErrLinkNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up %s: %w", ifName, err)
		}
		a := link.Attrs()
		st = PodState{Index: a.Index, Up: a.Flags&net.FlagUp != 0, IsVeth: link.Type() == "veth", MAC: a.HardwareAddr, MTU: a.MTU}
		return readL3(link, &st)
	})
	return st, err
}

func readL3(link netlink.Link, st *PodState) error {
	addrs, err := dump("addresses", func() ([]netlink.Addr, error) { return netlink.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a.Scope == unix.RT_SCOPE_UNIVERSE {
			st.Addresses = append(st.Addresses, a.IPNet)
		}
	}
	routes, err := dump("routes", func() ([]netlink.Route, error) { return netlink.RouteList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return err
	}
	for _, r := range routes {
		st.Routes = append(st.Routes, Route{Dst: routeDst(r), Gw: r.Gw, LinkScope: r.Scope == netlink.SCOPE_LINK})
	}
	neighs, err := dump("neighbours", func() ([]netlink.Neigh, error) { return netlink.NeighList(link.Attrs().Index, netlink.FAMILY_ALL) })
	if err != nil {
		return err
	}
	for _, n := range neighs {
		st.Neighbors = append(st.Neighbors, Neighbor{IP: n.IP, MAC: n.HardwareAddr, Permanent: n.State&netlink.NUD_PERMANENT != 0})
	}
	return nil
}

// routeDst never returns nil: a default route reads as 0.0.0.0/0 or ::/0.
func routeDst(r netlink.Route) *net.IPNet {
	if r.Dst != nil {
		return r.Dst
	}
	if r.Family == unix.AF_INET6 || (r.Gw != nil && r.Gw.To4() == nil) {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

// InspectHost reads a host veth back. A missing link is ErrLinkNotFound.
func (k *Kernel) InspectHost(name string) (HostState, error) {
	var st HostState
	err := k.inHost(func() error {
		link, err := netlink.LinkByName(name)
		if isNotFound(err) {
			return fmt.Errorf("host veth %s: %w", name, ErrLinkNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up %s: %w", name, err)
		}
		a := link.Attrs()
		st = HostState{Index: a.Index, Up: a.Flags&net.FlagUp != 0, IsVeth: link.Type() == "veth", MAC: a.HardwareAddr, MTU: a.MTU, PeerIndex: a.ParentIndex}
		return nil
	})
	return st, err
}
