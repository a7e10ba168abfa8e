// Package felix is Cairn's per-node dataplane reconciler. Callers state the
// desired node state (local endpoints, owned blocks, learned routes, IP
// pools); felix makes the kernel match it and keeps it so: routes in the main
// table tagged with Cairn's route protocol, host veth and node settings, and
// the nftables rules for outgoing NAT and anti-spoofing. It knows nothing of
// Kubernetes, BGP or IPAM.
//
// One goroutine (Run) owns the dataplane. Set* calls record desired state
// and wake it; it applies changes incrementally, reads the kernel back
// periodically and after any error, and never touches a route it did not
// tag. On start it adopts the routes it finds rather than flushing, so the
// routes of live pods never flap across a restart.
package felix

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-net/cairn/felix/antispoof"
	"github.com/cairn-net/cairn/felix/ifacesettings"
	"github.com/cairn-net/cairn/felix/kernel"
	"github.com/cairn-net/cairn/felix/natoutgoing"
	"github.com/cairn-net/cairn/felix/nftchain"
	"github.com/cairn-net/cairn/felix/routetable"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/nftables"
)

// DefaultRouteProtocol is Cairn's route protocol number: every route felix
// writes carries it, and felix changes no route without it.
const DefaultRouteProtocol = 77

// DefaultResyncInterval is how often felix reads the kernel back in full.
const DefaultResyncInterval = 90 * time.Second

// HostVethPrefix starts the name of every host-side pod veth; felix refuses
// other names, and the anti-spoofing rule matches it.
const HostVethPrefix = "crn"

// maxIfaceName is IFNAMSIZ-1.
const maxIfaceName = 15

// Options configure felix. The zero value of each field means its default.
type Options struct {
	// NodeName is put in every log line.
	NodeName string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Kernel is the kernel to reconcile; nil means real netlink, in
	// NetNSPath if set, else in the current network namespace.
	Kernel kernel.Kernel
	// Nftables writes Cairn's nftables table; nil means the real nftables
	// netlink API in the same namespace as Kernel's default.
	Nftables nftchain.Conn
	// NetNSPath, when set, is the namespace the default Kernel and Nftables
	// work in.
	NetNSPath string
	// ProcSysNet is where the default Kernel finds the net sysctls
	// (kernel.NetlinkOptions.ProcSysNet).
	ProcSysNet string
	// RouteProtocol tags felix's routes; default DefaultRouteProtocol.
	RouteProtocol uint8
	// ResyncInterval is the period of full resyncs; default 90s.
	ResyncInterval time.Duration
	// RetryInterval is the first delay before a resync after an error; it
	// doubles up to ResyncInterval. Default 100ms.
	RetryInterval time.Duration
	// OnPass, when set, is called on Run's goroutine after every
	// reconciliation pass (metrics): it must be quick and must not call
	// back into felix.
	OnPass func(Pass)
}

// Endpoint is a local pod interface: its host-side veth and its addresses.
type Endpoint struct {
	HostIface string
	// Addrs are /32 (IPv4) or /128 (IPv6) prefixes.
	Addrs []netip.Prefix
	// Owner is an opaque name of whoever stated the endpoint (the agent
	// uses the CNI attachment). Host veth names can be reused by a later
	// owner, so RemoveEndpoint removes the endpoint only for its owner: a
	// late removal by a previous owner of the name changes nothing.
	Owner string
}

// LearnedRoute is a route learned from peers; several next hops make an
// ECMP route.
type LearnedRoute struct {
	Prefix   netip.Prefix
	NextHops []netip.Addr
}

// Pool is an IP pool as felix needs it: its CIDR, whether traffic from it
// to outside every pool is masqueraded, and whether this node's pods take
// addresses from it (an IPv6 one is what turns IPv6 forwarding on).
type Pool struct {
	CIDR        netip.Prefix
	NATOutgoing bool
	ServesNode  bool
}

// ErrInvalidEndpoint reports an endpoint felix refuses.
var ErrInvalidEndpoint = errors.New("invalid endpoint")

// ErrNotRunning reports a call that needs Run and found it stopped.
var ErrNotRunning = errors.New("felix is not running")

// Felix is the reconciler. Its methods are safe for concurrent use.
type Felix struct {
	opts Options
	log  *slog.Logger
	k    kernel.Kernel

	// Owned by the Run goroutine.
	rt        *routetable.Table
	ifs       *ifacesettings.Manager
	nat       *natoutgoing.Manager
	spoof     *antispoof.Manager
	waiters   []*waiter
	resyncGen uint64

	running atomic.Bool
	kick    chan struct{}
	closers []func() error
	health  healthRecord

	mu        sync.Mutex
	endpoints map[string]Endpoint // iface → endpoint, as last stated
	pending   []func()            // endpoint changes, in order
	blocks    *[]netip.Prefix     // latest SetOwnedBlocks, nil if none new
	learned   *map[netip.Prefix][]netip.Addr
	pools     *[]natoutgoing.Pool
	wantV6Fwd bool // an IPv6 pool serves this node: sticky
	refused   map[netip.Prefix]string
	// invalidLearned: learned routes refused by SetLearnedRoutes itself.
	invalidLearned map[netip.Prefix]string
	newWait        []*waiter
	stats          Stats
}

// New builds felix; it touches the kernel only to open its sockets.
func New(opts Options) (*Felix, error) {
	if opts.RouteProtocol == 0 {
		opts.RouteProtocol = DefaultRouteProtocol
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 100 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", opts.NodeName, "component", "felix")
	var closers []func() error
	k := opts.Kernel
	if k == nil {
		nk, err := kernel.NewNetlink(kernel.NetlinkOptions{NetNSPath: opts.NetNSPath, ProcSysNet: opts.ProcSysNet})
		if err != nil {
			return nil, fmt.Errorf("open kernel: %w", err)
		}
		k = nk
		closers = append(closers, nk.Close)
	}
	k = kernel.WithDumpRetry(k, kernel.DefaultDumpAttempts)
	nft := opts.Nftables
	if nft == nil {
		c, closeNS, err := newNftables(opts.NetNSPath)
		if err != nil {
			closeAll(closers)
			return nil, err
		}
		nft = c
		closers = append(closers, closeNS)
	}
	f := &Felix{
		opts: opts,
		log:  log,
		k:    k,
		rt: routetable.New(routetable.Options{
			Kernel: k, Protocol: opts.RouteProtocol, Logger: log.With("part", "routetable"),
		}),
		ifs:       ifacesettings.New(k, HostVethPrefix, log.With("part", "ifacesettings")),
		nat:       natoutgoing.New(nft, log.With("part", "natoutgoing")),
		spoof:     antispoof.New(nft, HostVethPrefix, log.With("part", "antispoof")),
		kick:      make(chan struct{}, 1),
		endpoints: map[string]Endpoint{},
		closers:   closers,
	}
	return f, nil
}

// Close releases the sockets and namespace handles felix opened itself.
// It leaves the kernel state as it is.
func (f *Felix) Close() error {
	return closeAll(f.closers)
}

func closeAll(closers []func() error) error {
	var errs []error
	for _, c := range closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

func newNftables(netNSPath string) (*nftables.Conn, func() error, error) {
	if netNSPath == "" {
		c, err := nftables.New()
		if err != nil {
			return nil, nil, fmt.Errorf("open nftables: %w", err)
		}
		return c, func() error { return nil }, nil
	}
	n, err := ns.GetNS(netNSPath)
	if err != nil {
		return nil, nil, fmt.Errorf("open network namespace %s for nftables: %w", netNSPath, err)
	}
	// The connection dials per operation with this fd, so it stays open
	// until Close.
	c, err := nftables.New(nftables.WithNetNSFd(int(n.Fd())))
	if err != nil {
		n.Close()
		return nil, nil, fmt.Errorf("open nftables in %s: %w", netNSPath, err)
	}
	return c, n.Close, nil
}

func (f *Felix) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}
