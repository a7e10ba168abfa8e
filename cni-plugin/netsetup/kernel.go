package netsetup

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernel does the attachment's netlink work. Host-side work happens in
// HostNS; pod-side work inside ns.Do on the pod's namespace (a locked OS
// thread), so no goroutine ever runs in a namespace it did not ask for.
type Kernel struct {
	// HostNS is where host veths live. Nil means the plugin's own
	// namespace (production); tests pass a namespace they created.
	HostNS ns.NetNS
	Log    *slog.Logger
}

// inHost runs fn in the host namespace.
func (k *Kernel) inHost(fn func() error) error {
	if k.HostNS == nil {
		// The calling goroutine is in the process's namespace: ns.Do never
		// hands back a thread it moved, so no switch is needed.
		return fn()
	}
	return k.HostNS.Do(func(ns.NetNS) error { return fn() })
}

// openPod opens the pod's namespace. A missing path, or one that is no
// longer a namespace (a runtime unmounts before it deletes the file), is
// ErrNetnsNotFound.
func openPod(netnsPath string) (ns.NetNS, error) {
	podNS, err := ns.GetNS(netnsPath)
	if err != nil {
		var (
			notExist ns.NSPathNotExistErr
			notNS    ns.NSPathNotNSErr
		)
		if errors.As(err, &notExist) || errors.As(err, &notNS) {
			return nil, fmt.Errorf("open netns %s: %w", netnsPath, ErrNetnsNotFound)
		}
		return nil, fmt.Errorf("open netns %s: %w", netnsPath, err)
	}
	return podNS, nil
}

// inPod runs fn inside the pod's namespace.
func inPod(netnsPath string, fn func() error) error {
	podNS, err := openPod(netnsPath)
	if err != nil {
		return err
	}
	defer podNS.Close()
	return podNS.Do(func(ns.NetNS) error { return fn() })
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV)
}

// CheckPod checks that ADD may wire netnsPath: it is a namespace
// (ErrNetnsNotFound), not the host's own (ErrHostNetns), and has no ifName
// yet (ErrInterfaceExists).
func (k *Kernel) CheckPod(netnsPath, ifName string) error {
	podNS, err := openPod(netnsPath)
	if err != nil {
		return err
	}
	defer podNS.Close()
	same, err := k.isHostNS(podNS)
	if err != nil {
		return err
	}
	if same {
		return fmt.Errorf("%s: %w", netnsPath, ErrHostNetns)
	}
	return podNS.Do(func(ns.NetNS) error {
		_, err := netlink.LinkByName(ifName)
		switch {
		case err == nil:
			return fmt.Errorf("%s in %s: %w", ifName, netnsPath, ErrInterfaceExists)
		case isNotFound(err):
			return nil
		default:
			return fmt.Errorf("look up %s in %s: %w", ifName, netnsPath, err)
		}
	})
}

// isHostNS reports whether podNS is the host namespace, comparing the
// namespaces' inodes.
func (k *Kernel) isHostNS(podNS ns.NetNS) (bool, error) {
	var pod, host unix.Stat_t
	if err := unix.Fstat(int(podNS.Fd()), &pod); err != nil {
		return false, fmt.Errorf("stat netns %s: %w", podNS.Path(), err)
	}
	var err error
	if k.HostNS != nil {
		err = unix.Fstat(int(k.HostNS.Fd()), &host)
	} else {
		// Every unlocked thread of the plugin is in the host namespace.
		err = unix.Stat("/proc/thread-self/ns/net", &host)
	}
	if err != nil {
		return false, fmt.Errorf("stat host netns: %w", err)
	}
	return pod.Dev == host.Dev && pod.Ino == host.Ino, nil
}

// CreateVeth creates the pair in one netlink request: the host end, up, in
// the host namespace and the pod end in the pod's namespace. A stale host
// end of the same name (left by a sandbox whose DEL never came) is deleted
// first; a clash on the pod side is ErrInterfaceExists.
func (k *Kernel) CreateVeth(netnsPath string, v Veth) error {
	podNS, err := openPod(netnsPath)
	if err != nil {
		return err
	}
	defer podNS.Close()
	return k.inHost(func() error {
		err := netlink.LinkAdd(vethLink(v, podNS))
		if !errors.Is(err, unix.EEXIST) {
			return wrapCreate(v, err)
		}
		stale, lookupErr := netlink.LinkByName(v.HostName)
		if isNotFound(lookupErr) {
			return fmt.Errorf("create veth %s/%s: %w", v.HostName, v.PodIfName, ErrInterfaceExists)
		}
		if lookupErr != nil {
			return fmt.Errorf("look up existing %s: %w", v.HostName, lookupErr)
		}
		if stale.Type() != "veth" {
			return fmt.Errorf("create veth %s: a %s link of that name exists and is not Cairn's: %w", v.HostName, stale.Type(), err)
		}
		k.Log.Warn("deleting stale host veth", "hostVeth", v.HostName)
		if err := netlink.LinkDel(stale); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete stale host veth %s: %w", v.HostName, err)
		}
		return wrapCreate(v, netlink.LinkAdd(vethLink(v, podNS)))
	})
}

func wrapCreate(v Veth, err error) error {
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create veth %s/%s: %w", v.HostName, v.PodIfName, ErrInterfaceExists)
	}
	if err != nil {
		return fmt.Errorf("create veth %s/%s: %w", v.HostName, v.PodIfName, err)
	}
	return nil
}

func vethLink(v Veth, podNS ns.NetNS) *netlink.Veth {
	attrs := netlink.NewLinkAttrs() // TxQLen -1: keep the kernel's default
	attrs.Name = v.HostName
	attrs.HardwareAddr = v.HostMAC
	attrs.MTU = v.MTU
	attrs.Flags = net.FlagUp
	return &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         v.PodIfName,
		PeerHardwareAddr: v.PodMAC,
		PeerTxQLen:       -1,
		PeerNamespace:    netlink.NsFd(podNS.Fd()),
	}
}

// ConfigurePod brings the pod end up and gives it its addresses, a link
// route to each gateway, a default route through it and a permanent
// neighbour entry for it.
func (k *Kernel) ConfigurePod(netnsPath string, c PodConfig) error {
	return inPod(netnsPath, func() error {
		link, err := netlink.LinkByName(c.IfName)
		if err != nil {
			return fmt.Errorf("look up %s: %w", c.IfName, err)
		}
		// Up first: IPv4 refuses routes through a down device.
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("set %s up: %w", c.IfName, err)
		}
		idx := link.Attrs().Index
		for _, a := range c.Addresses {
			addr := &netlink.Addr{IPNet: a}
			if a.IP.To4() == nil {
				// The address is ours alone (the agent allocated it); DAD
				// would only keep it tentative for a second or more.
				addr.Flags = unix.IFA_F_NODAD
			}
			if err := netlink.AddrAdd(link, addr); err != nil {
				return fmt.Errorf("add address %s to %s: %w", a, c.IfName, err)
			}
		}
		for _, gw := range c.Gateways {
			if err := addGateway(idx, gw, c.GatewayMAC); err != nil {
				return fmt.Errorf("gateway %s on %s: %w", gw, c.IfName, err)
			}
		}
		return nil
	})
}

func addGateway(linkIndex int, gw net.IP, mac net.HardwareAddr) error {
	family, bits := unix.AF_INET, 32
	if gw.To4() == nil {
		family, bits = unix.AF_INET6, 128
	}
	host := &net.IPNet{IP: gw, Mask: net.CIDRMask(bits, bits)}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: linkIndex, Dst: host, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("add link route: %w", err)
	}
	neigh := &netlink.Neigh{LinkIndex: linkIndex, Family: family, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: mac}
	if err := netlink.NeighAdd(neigh); err != nil {
		return fmt.Errorf("add permanent neighbour: %w", err)
	}
	def := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if family == unix.AF_INET6 {
		def = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: linkIndex, Dst: def, Gw: gw}); err != nil {
		return fmt.Errorf("add default route: %w", err)
	}
	return nil
}

// DeleteHostVeth deletes the named host veth (and so its pod end). A
// missing link is not an error. It is the ADD rollback step: the name was
// made by this very ADD.
func (k *Kernel) DeleteHostVeth(name string) error {
	return k.inHost(func() error {
		link, err := netlink.LinkByName(name)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up %s: %w", name, err)
		}
		if err := netlink.LinkDel(link); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete %s: %w", name, err)
		}
		return nil
	})
}
