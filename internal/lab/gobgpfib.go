package lab

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// GoBGPFIBCommand is the cairn-lab command that installs a gobgpd ToR's
// routes in the kernel of the namespace it runs in (gobgpd.go says why the
// lab needs it). It follows `gobgp monitor global rib` of each family:
// every change, and a full resync every fibResync, reads the RIB again and
// reconciles the kernel's routes of protocol fibProto against it. It owns
// only routes of that protocol.
const GoBGPFIBCommand = "internal-gobgp-fib"

// fibProto tags the helper's routes: "bgp" in iproute2's rt_protos, as
// FRR's are.
const fibProto = 186

// fibResync bounds how long a change the monitor missed (it was
// restarting) stays out of the kernel.
const fibResync = 5 * time.Second

// fibRoute is a route the helper wants in the kernel: ECMP when it has
// several next hops.
type fibRoute struct {
	Dst netip.Prefix
	Via []netip.Addr // sorted
}

func (r fibRoute) String() string {
	via := make([]string, len(r.Via))
	for i, a := range r.Via {
		via[i] = a.String()
	}
	return r.Dst.String() + " via " + strings.Join(via, ",")
}

// fibRoutes decides the kernel routes for a RIB: for each prefix whose
// best path came from a peer, that path's next hop and the next hops of
// every other peer's path of equal merit (local preference, AS path
// length, origin, MED), as BIRD's "merge paths" and FRR's maximum-paths
// do. A prefix whose best path is the router's own gets none.
func fibRoutes(paths []gobgpPath) []fibRoute {
	byPrefix := map[netip.Prefix][]gobgpPath{}
	var order []netip.Prefix
	for _, p := range paths {
		if _, seen := byPrefix[p.Prefix]; !seen {
			order = append(order, p.Prefix)
		}
		byPrefix[p.Prefix] = append(byPrefix[p.Prefix], p)
	}
	var out []fibRoute
	for _, pfx := range order {
		var best *gobgpPath
		for i, p := range byPrefix[pfx] {
			if p.Best {
				best = &byPrefix[pfx][i]
			}
		}
		if best == nil || !best.Neighbor.IsValid() || !usableNextHop(best.NextHop) {
			continue
		}
		r := fibRoute{Dst: pfx}
		for _, p := range byPrefix[pfx] {
			if p.Neighbor.IsValid() && usableNextHop(p.NextHop) && p.Merit == best.Merit && !slices.Contains(r.Via, p.NextHop) {
				r.Via = append(r.Via, p.NextHop)
			}
		}
		slices.SortFunc(r.Via, func(a, b netip.Addr) int { return a.Compare(b) })
		out = append(out, r)
	}
	return out
}

func usableNextHop(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLinkLocalUnicast()
}

// fibDiff is what to replace and what to delete to turn actual into
// desired.
func fibDiff(desired, actual []fibRoute) (replace, remove []fibRoute) {
	have := map[netip.Prefix]fibRoute{}
	for _, r := range actual {
		have[r.Dst] = r
	}
	want := map[netip.Prefix]bool{}
	for _, r := range desired {
		want[r.Dst] = true
		if a, ok := have[r.Dst]; !ok || !slices.Equal(a.Via, r.Via) {
			replace = append(replace, r)
		}
	}
	for _, r := range actual {
		if !want[r.Dst] {
			remove = append(remove, r)
		}
	}
	return replace, remove
}

// fibKernel is the part of the kernel the helper touches.
type fibKernel interface {
	list(family int) ([]fibRoute, error)
	replace(r fibRoute) error
	remove(r fibRoute) error
}

// RunGoBGPFIB runs the helper until ctx ends.
func RunGoBGPFIB(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(GoBGPFIBCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	families := fs.String("families", "ipv4", "address families to follow: ipv4, ipv6 or both, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var fams []string
	for _, f := range strings.Split(*families, ",") {
		if f != "ipv4" && f != "ipv6" {
			return fmt.Errorf("--families: %q is neither ipv4 nor ipv6", f)
		}
		fams = append(fams, f)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	changed := make(chan struct{}, 1)
	for _, f := range fams {
		go followRib(ctx, f, changed, log)
	}
	s := fibSyncer{k: netlinkFIB{}, fams: fams, log: log, read: readGoBGPRib}
	tick := time.NewTicker(fibResync)
	defer tick.Stop()
	for {
		s.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		}
	}
}

// fibSyncer reconciles the kernel against gobgpd's RIB.
type fibSyncer struct {
	k    fibKernel
	fams []string
	log  *slog.Logger
	read func(ctx context.Context, family string) ([]gobgpPath, error)
	// last is what the previous sync reported, so an unchanged state is
	// not logged again.
	last string
}

func (s *fibSyncer) sync(ctx context.Context) {
	var report []string
	for _, f := range s.fams {
		paths, err := s.read(ctx, f)
		if err != nil {
			report = append(report, fmt.Sprintf("read the %s RIB: %v", f, err))
			continue
		}
		family := unix.AF_INET
		if f == "ipv6" {
			family = unix.AF_INET6
		}
		actual, err := s.k.list(family)
		if err != nil {
			report = append(report, fmt.Sprintf("list %s routes: %v", f, err))
			continue
		}
		desired := fibRoutes(paths)
		replace, remove := fibDiff(desired, actual)
		for _, r := range replace {
			if err := s.k.replace(r); err != nil {
				report = append(report, fmt.Sprintf("install %s: %v", r, err))
			} else {
				s.log.Info("installed", "route", r.String())
			}
		}
		for _, r := range remove {
			if err := s.k.remove(r); err != nil && !errors.Is(err, syscall.ESRCH) {
				report = append(report, fmt.Sprintf("remove %s: %v", r, err))
			} else {
				s.log.Info("removed", "route", r.String())
			}
		}
	}
	if msg := strings.Join(report, "; "); msg != s.last {
		if msg != "" {
			s.log.Warn("sync incomplete, retried at the next change or resync", "errors", msg)
		}
		s.last = msg
	}
}

// followRib signals changed on every line of `gobgp monitor global rib`
// for family, restarting the monitor when it ends (gobgpd not up yet).
func followRib(ctx context.Context, family string, changed chan<- struct{}, log *slog.Logger) {
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, "gobgp", "-u", "127.0.0.1", "monitor", "global", "rib", "-a", family, "-j")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err == nil {
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			for sc.Scan() {
				select {
				case changed <- struct{}{}:
				default: // a sync is already due
				}
			}
			err = cmd.Wait()
		}
		if ctx.Err() != nil {
			return
		}
		log.Info("gobgp monitor ended; restarting", "family", family, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func readGoBGPRib(ctx context.Context, family string) ([]gobgpPath, error) {
	out, err := run(ctx, "gobgp", "-u", "127.0.0.1", "global", "rib", "-a", family, "-j")
	if err != nil {
		return nil, err
	}
	return parseGoBGPRib(out)
}

// netlinkFIB is fibKernel in the helper's own namespace, main table.
type netlinkFIB struct{}

func (netlinkFIB) list(family int) ([]fibRoute, error) {
	filter := &netlink.Route{Protocol: fibProto, Table: unix.RT_TABLE_MAIN}
	var rs []netlink.Route
	var err error
	for range 5 { // a dump interrupted by a concurrent change is retried
		rs, err = netlink.RouteListFiltered(family, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]fibRoute, 0, len(rs))
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		dst, ok := netipPrefix(r.Dst)
		if !ok {
			continue
		}
		fr := fibRoute{Dst: dst}
		if a, ok := netip.AddrFromSlice(r.Gw); ok {
			fr.Via = append(fr.Via, a.Unmap())
		}
		for _, nh := range r.MultiPath {
			if a, ok := netip.AddrFromSlice(nh.Gw); ok {
				fr.Via = append(fr.Via, a.Unmap())
			}
		}
		slices.SortFunc(fr.Via, func(a, b netip.Addr) int { return a.Compare(b) })
		out = append(out, fr)
	}
	return out, nil
}

func (netlinkFIB) replace(r fibRoute) error {
	nr := netlink.Route{Dst: ipNet(r.Dst), Protocol: fibProto, Table: unix.RT_TABLE_MAIN}
	if len(r.Via) == 1 {
		nr.Gw = r.Via[0].AsSlice()
	} else {
		for _, a := range r.Via {
			nr.MultiPath = append(nr.MultiPath, &netlink.NexthopInfo{Gw: a.AsSlice()})
		}
	}
	return netlink.RouteReplace(&nr)
}

func (netlinkFIB) remove(r fibRoute) error {
	return netlink.RouteDel(&netlink.Route{Dst: ipNet(r.Dst), Protocol: fibProto, Table: unix.RT_TABLE_MAIN})
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
