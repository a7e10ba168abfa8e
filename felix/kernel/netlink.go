package kernel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetlinkOptions configures the real kernel.
type NetlinkOptions struct {
	// NetNSPath is the network namespace to work in (a /var/run/netns or
	// /proc/PID/ns/net path); empty means the namespace of the calling
	// thread at construction.
	NetNSPath string
	// ProcSysNet is the directory of the net sysctls; default
	// DefaultProcSysNet. A container gives another: its runtime mounts
	// /proc/sys read-only, so the host's /proc/sys/net is mounted writable
	// elsewhere. Either way a file there is the sysctl of the namespace of
	// whoever opens it, so it works in NetNSPath too.
	ProcSysNet string
}

// DefaultProcSysNet is where the kernel shows the net sysctls.
const DefaultProcSysNet = "/proc/sys/net"

// Netlink is the real Kernel: routes through felix's own batched rtnetlink
// socket (one sendmsg per batch, one ack per batch), links through
// vishvananda/netlink, sysctls through /proc/sys of the namespace.
type Netlink struct {
	procSysNet string
	netNS      ns.NetNS // nil: current namespace
	nsFD       netns.NsHandle
	handle     *netlink.Handle
	routes     *routeSocket
}

var _ Kernel = (*Netlink)(nil)

// NewNetlink opens the sockets felix needs in the configured namespace.
func NewNetlink(opts NetlinkOptions) (*Netlink, error) {
	k := &Netlink{nsFD: netns.None(), procSysNet: opts.ProcSysNet}
	if k.procSysNet == "" {
		k.procSysNet = DefaultProcSysNet
	}
	if opts.NetNSPath != "" {
		n, err := ns.GetNS(opts.NetNSPath)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", opts.NetNSPath, err)
		}
		k.netNS = n
		k.nsFD = netns.NsHandle(n.Fd())
	}
	var err error
	if k.netNS != nil {
		k.handle, err = netlink.NewHandleAt(k.nsFD)
	} else {
		k.handle, err = netlink.NewHandle()
	}
	if err != nil {
		k.Close()
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	k.routes, err = newRouteSocket(k.inNS)
	if err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// Close releases the sockets.
func (k *Netlink) Close() error {
	if k.routes != nil {
		k.routes.close()
	}
	if k.handle != nil {
		k.handle.Close()
	}
	if k.netNS != nil {
		return k.netNS.Close()
	}
	return nil
}

// inNS runs f in the kernel's namespace, on a locked OS thread when that is
// not the current namespace.
func (k *Netlink) inNS(f func() error) error {
	if k.netNS == nil {
		return f()
	}
	return k.netNS.Do(func(ns.NetNS) error { return f() })
}

// RouteDump implements Kernel.
func (k *Netlink) RouteDump(family int, fn func(*Route)) error {
	return k.routes.dump(family, fn)
}

// RouteApply implements Kernel.
func (k *Netlink) RouteApply(ops []RouteOp) []error {
	return k.routes.apply(ops)
}

// LinkList implements Kernel.
func (k *Netlink) LinkList() ([]Link, error) {
	links, err := k.handle.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]Link, 0, len(links))
	for _, l := range links {
		out = append(out, toLink(l.Attrs()))
	}
	return out, err
}

// LinkByName returns the named link or an error wrapping ENODEV. Felix
// itself resolves names from LinkList and LinkSubscribe; this serves tests
// and tools.
func (k *Netlink) LinkByName(name string) (Link, error) {
	l, err := k.handle.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return Link{}, fmt.Errorf("link %s: %w", name, unix.ENODEV)
		}
		return Link{}, fmt.Errorf("link %s: %w", name, err)
	}
	return toLink(l.Attrs()), nil
}

func toLink(a *netlink.LinkAttrs) Link {
	return Link{Index: a.Index, Name: a.Name, Up: a.Flags&net.FlagUp != 0}
}

// subscribeBuffer is large so a burst of veth changes (a node starting many
// pods) does not overflow the socket; an overflow still only costs a resync.
const subscribeBuffer = 8 << 20

// LinkSubscribe implements Kernel.
func (k *Netlink) LinkSubscribe(ctx context.Context) (<-chan LinkUpdate, error) {
	raw := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	opts := netlink.LinkSubscribeOptions{
		ReceiveBufferSize:      subscribeBuffer,
		ReceiveBufferForceSize: os.Geteuid() == 0,
	}
	if k.netNS != nil {
		h := k.nsFD
		opts.Namespace = &h
	}
	if err := netlink.LinkSubscribeWithOptions(raw, done, opts); err != nil {
		return nil, fmt.Errorf("subscribe to link changes: %w", err)
	}
	out := make(chan LinkUpdate, 256)
	go func() {
		defer close(out)
		// Drain raw until it closes so the library's goroutine never blocks.
		defer func() {
			for range raw {
			}
		}()
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-raw:
				if !ok {
					return
				}
				upd := LinkUpdate{Link: toLink(u.Link.Attrs()), Deleted: u.Header.Type == unix.RTM_DELLINK}
				select {
				case out <- upd:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// sysctlPath is the file of a net sysctl ("net/ipv4/ip_forward") under
// procSysNet.
func sysctlPath(procSysNet, name string) (string, error) {
	clean := filepath.Clean("/" + name)
	if strings.Contains(name, "..") || !strings.HasPrefix(clean, "/net/") {
		return "", fmt.Errorf("sysctl %q: not a network sysctl", name)
	}
	return filepath.Join(procSysNet, strings.TrimPrefix(clean, "/net/")), nil
}

// ReadSysctl implements Kernel.
func (k *Netlink) ReadSysctl(name string) (string, error) {
	p, err := sysctlPath(k.procSysNet, name)
	if err != nil {
		return "", err
	}
	var out string
	err = k.inNS(func() error {
		b, err := os.ReadFile(p)
		out = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return out, nil
}

// WriteSysctl implements Kernel.
func (k *Netlink) WriteSysctl(name, value string) error {
	p, err := sysctlPath(k.procSysNet, name)
	if err != nil {
		return err
	}
	err = k.inNS(func() error {
		// No O_CREATE: a missing file must say ENOENT (the interface is gone).
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, werr := f.WriteString(value)
		cerr := f.Close()
		return errors.Join(werr, cerr)
	})
	if err != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
