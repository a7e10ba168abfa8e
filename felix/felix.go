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
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
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

// Config configures felix. The zero value of each field means its default.
type Config struct {
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
	// RouteProtocol tags felix's routes; default DefaultRouteProtocol.
	RouteProtocol uint8
	// ResyncInterval is the period of full resyncs; default 90s.
	ResyncInterval time.Duration
	// RetryInterval is the first delay before a resync after an error; it
	// doubles up to ResyncInterval. Default 100ms.
	RetryInterval time.Duration
}

// Endpoint is a local pod interface: its host-side veth and its addresses.
type Endpoint struct {
	HostIface string
	// Addrs are /32 (IPv4) or /128 (IPv6) prefixes.
	Addrs []netip.Prefix
}

// LearnedRoute is a route learned from peers; several next hops make an
// ECMP route.
type LearnedRoute struct {
	Prefix   netip.Prefix
	NextHops []netip.Addr
}

// Pool is an IP pool as felix needs it: its CIDR and whether traffic from
// it to outside every pool is masqueraded.
type Pool struct {
	CIDR        netip.Prefix
	NATOutgoing bool
}

// ErrInvalidEndpoint reports an endpoint felix refuses.
var ErrInvalidEndpoint = errors.New("invalid endpoint")

// ErrNotRunning reports a call that needs Run and found it stopped.
var ErrNotRunning = errors.New("felix is not running")

// Felix is the reconciler. Its methods are safe for concurrent use.
type Felix struct {
	cfg Config
	log *slog.Logger
	k   kernel.Kernel

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

	mu        sync.Mutex
	endpoints map[string]Endpoint // iface → endpoint, as last stated
	pending   []func()            // endpoint changes, in order
	blocks    *[]netip.Prefix     // latest SetOwnedBlocks, nil if none new
	learned   *map[netip.Prefix][]netip.Addr
	pools     *[]natoutgoing.Pool
	newWait   []*waiter
}

// New builds felix; it touches the kernel only to open its sockets.
func New(cfg Config) (*Felix, error) {
	if cfg.RouteProtocol == 0 {
		cfg.RouteProtocol = DefaultRouteProtocol
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 100 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", cfg.NodeName, "component", "felix")
	var closers []func() error
	k := cfg.Kernel
	if k == nil {
		nk, err := kernel.NewNetlink(kernel.NetlinkOptions{NetNSPath: cfg.NetNSPath})
		if err != nil {
			return nil, fmt.Errorf("open kernel: %w", err)
		}
		k = nk
		closers = append(closers, nk.Close)
	}
	k = kernel.WithDumpRetry(k, kernel.DefaultDumpAttempts)
	nft := cfg.Nftables
	if nft == nil {
		c, closeNS, err := newNftables(cfg.NetNSPath)
		if err != nil {
			closeAll(closers)
			return nil, err
		}
		nft = c
		closers = append(closers, closeNS)
	}
	f := &Felix{
		cfg: cfg,
		log: log,
		k:   k,
		rt: routetable.New(routetable.Config{
			Kernel: k, Protocol: cfg.RouteProtocol, Logger: log.With("part", "routetable"),
		}),
		ifs:       ifacesettings.New(k, log.With("part", "ifacesettings")),
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

func validateEndpoint(ep Endpoint) error {
	name := ep.HostIface
	if !strings.HasPrefix(name, HostVethPrefix) || len(name) > maxIfaceName || strings.ContainsAny(name, "/ \x00") {
		return fmt.Errorf("%w: host interface %q must start with %q and be at most %d characters",
			ErrInvalidEndpoint, name, HostVethPrefix, maxIfaceName)
	}
	for _, a := range ep.Addrs {
		if !a.IsValid() || !a.IsSingleIP() || a.Addr().Is4In6() || a.Addr().Zone() != "" {
			return fmt.Errorf("%w: %s: address %s is not a /32 or /128", ErrInvalidEndpoint, name, a)
		}
	}
	return nil
}

// SetEndpoint records ep as a local endpoint, configures its host veth and
// returns once its host routes are in the kernel. A veth that does not
// exist yet is waited for (until ctx expires). It fails at once on an
// invalid endpoint, and when a route of another protocol holds one of its
// addresses (felix never replaces it). Run must be running.
func (f *Felix) SetEndpoint(ctx context.Context, ep Endpoint) error {
	if err := validateEndpoint(ep); err != nil {
		return err
	}
	ep.Addrs = append([]netip.Prefix(nil), ep.Addrs...)
	w := &waiter{ctx: ctx, kind: waitEndpointUp, iface: ep.HostIface, prefixes: ep.Addrs, done: make(chan error, 1)}
	f.mu.Lock()
	f.endpoints[ep.HostIface] = ep
	f.pending = append(f.pending, func() {
		f.rt.SetEndpoint(ep.HostIface, ep.Addrs)
		f.ifs.Set(ep.HostIface)
	})
	f.newWait = append(f.newWait, w)
	f.mu.Unlock()
	f.wake()
	if err := w.wait(); err != nil {
		return fmt.Errorf("set endpoint %s: %w", ep.HostIface, err)
	}
	return nil
}

// RemoveEndpoint forgets the endpoint of hostIface and returns once its
// host routes are gone from the kernel. Removing an unknown endpoint
// succeeds.
func (f *Felix) RemoveEndpoint(ctx context.Context, hostIface string) error {
	f.mu.Lock()
	ep, ok := f.endpoints[hostIface]
	if !ok {
		f.mu.Unlock()
		return nil
	}
	delete(f.endpoints, hostIface)
	w := &waiter{ctx: ctx, kind: waitEndpointGone, iface: hostIface, prefixes: ep.Addrs, done: make(chan error, 1)}
	f.pending = append(f.pending, func() {
		f.rt.RemoveEndpoint(hostIface)
		f.ifs.Remove(hostIface)
	})
	f.newWait = append(f.newWait, w)
	f.mu.Unlock()
	f.wake()
	if err := w.wait(); err != nil {
		return fmt.Errorf("remove endpoint %s: %w", hostIface, err)
	}
	return nil
}

// EndpointsInSync declares that every live endpoint has been stated with
// SetEndpoint since start. Until then felix deletes no host route it finds
// in the kernel (except those of endpoints removed with RemoveEndpoint), so
// that an agent restart never removes the routes of running pods.
func (f *Felix) EndpointsInSync() {
	f.mu.Lock()
	f.pending = append(f.pending, func() { f.rt.MarkSynced(routetable.Endpoint) })
	f.mu.Unlock()
	f.wake()
}

// SetOwnedBlocks states the blocks affine to this node; each gets a
// blackhole route, so traffic to an unallocated address of a block is
// dropped here rather than sent back to the network.
func (f *Felix) SetOwnedBlocks(blocks []netip.Prefix) {
	valid := make([]netip.Prefix, 0, len(blocks))
	for _, b := range blocks {
		if !b.IsValid() {
			f.log.Warn("ignoring invalid owned block", "block", b)
			continue
		}
		valid = append(valid, b.Masked())
	}
	f.mu.Lock()
	f.blocks = &valid
	f.mu.Unlock()
	f.wake()
}

// SetLearnedRoutes states the complete set of routes learned from peers.
// A route that would hide a connected route, an owned block or a local
// endpoint is not installed. The first call is taken as complete: until
// it, learned routes found in the kernel are kept (graceful restart), so
// the speaker should call it once it has its initial routes.
func (f *Felix) SetLearnedRoutes(routes []LearnedRoute) {
	m := make(map[netip.Prefix][]netip.Addr, len(routes))
	for _, r := range routes {
		if err := validLearned(r); err != nil {
			f.log.Warn("ignoring learned route", "prefix", r.Prefix, "err", err)
			continue
		}
		p := r.Prefix.Masked()
		m[p] = append(m[p], r.NextHops...)
	}
	f.mu.Lock()
	f.learned = &m
	f.mu.Unlock()
	f.wake()
}

func validLearned(r LearnedRoute) error {
	if !r.Prefix.IsValid() {
		return errors.New("invalid prefix")
	}
	if len(r.NextHops) == 0 {
		return errors.New("no next hop")
	}
	for _, h := range r.NextHops {
		if !h.IsValid() || h.Is4() != r.Prefix.Addr().Is4() || h.Is4In6() {
			return fmt.Errorf("next hop %s does not match the prefix family", h)
		}
		if h.IsLinkLocalUnicast() && h.Is6() {
			return fmt.Errorf("link-local next hop %s needs an interface felix is not given", h)
		}
	}
	return nil
}

// SetPools states the IP pools, for outgoing NAT.
func (f *Felix) SetPools(pools []Pool) {
	ps := make([]natoutgoing.Pool, 0, len(pools))
	for _, p := range pools {
		if !p.CIDR.IsValid() {
			f.log.Warn("ignoring invalid pool", "pool", p.CIDR)
			continue
		}
		ps = append(ps, natoutgoing.Pool{CIDR: p.CIDR, NATOutgoing: p.NATOutgoing})
	}
	f.mu.Lock()
	f.pools = &ps
	f.mu.Unlock()
	f.wake()
}

// Resync makes felix read the whole kernel state back now and returns the
// result of that pass once it is done.
func (f *Felix) Resync(ctx context.Context) error {
	w := &waiter{ctx: ctx, kind: waitResync, done: make(chan error, 1)}
	f.mu.Lock()
	f.newWait = append(f.newWait, w)
	f.mu.Unlock()
	f.wake()
	return w.wait()
}

// Stats are counts for logs and tests.
type Stats = routetable.Stats
