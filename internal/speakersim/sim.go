// Package speakersim runs many Cairn BGP speakers (bgp/speaker, one GoBGP
// server each, as cairn-node embeds it) in one process against two route
// reflectors that are Cairn speakers too, on loopback addresses, and
// measures how long until every speaker has every other speaker's blocks
// and how much memory a speaker costs. It is the scale section's
// simulation (`make bench BENCH=scale-sim`), for sizes a lab of real nodes
// does not fit on one machine.
//
// The shape is Calico's recommended one for large clusters: every node a
// client of both reflectors, the reflectors iBGP peers of each other with
// one shared cluster ID, no node-to-node mesh. A client announces its
// blocks with next hop self; the reflectors pass them on unchanged, so a
// client's learned path for a block must name the block's owner as next
// hop.
//
// Addresses: reflectors 127.77.0.1 and 127.77.0.2, clients from
// 127.78.0.1 on; the reflectors listen on one unprivileged port of their
// own address, clients do not listen. Nothing needs root.
package speakersim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-net/cairn/bgp/speaker"
)

// ASN is the simulated cluster's AS (iBGP throughout).
const ASN = 64512

// clusterID is the route-reflector cluster ID both reflectors share.
const clusterID = "127.77.0.1"

// Options configure one run.
type Options struct {
	// Clients is how many speakers announce blocks (the nodes).
	Clients int
	// BlocksPerClient is how many /26 blocks each announces; 0 means 1.
	BlocksPerClient int
	// Timeout bounds the wait for every speaker to have every route.
	Timeout time.Duration
	// HoldTime is every session's hold time; 0 means the speaker's
	// default (90 s). A thousand speakers in one process on a few busy
	// cores can miss their keepalives for longer than that, and sessions
	// that expire for it start their updates over: a long hold time keeps
	// the simulation measuring route propagation, not starvation.
	HoldTime time.Duration
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// Result is what one run measured.
type Result struct {
	Clients, Reflectors, Blocks int
	// Reflected is from the moment every speaker had its peers and blocks
	// until both reflectors held every block.
	Reflected time.Duration
	// Converged is from the same moment until every client held every
	// other client's blocks, with the owner as next hop; ClientP50 is the
	// median client's time.
	Converged, ClientP50 time.Duration
	// Start is how long starting every GoBGP server took (before the
	// clock above starts).
	Start time.Duration
	// RSSPerSpeaker and HeapPerSpeaker are the process's resident memory
	// and live Go heap (after a GC), converged minus before any speaker
	// existed, divided by every speaker (clients and reflectors).
	RSSPerSpeaker, HeapPerSpeaker float64
	// RSS is the whole process's resident memory once converged.
	RSS float64
	// Goroutines once converged.
	Goroutines int
}

// node is one speaker of the simulation and what it must learn.
type node struct {
	name   string
	addr   netip.Addr
	sp     *speaker.Speaker
	blocks []netip.Prefix
	// want is how many distinct blocks it must hold with the right next
	// hop.
	want int
	// done is when it first held them all; zero until then.
	done time.Time
	// have is how many it held in the latest learned set.
	have int
}

// sim is one run: the speakers and their completion bookkeeping.
type sim struct {
	o          Options
	port       uint16
	reflectors []*node
	clients    []*node
	owner      map[netip.Prefix]netip.Addr

	mu      sync.Mutex
	pending int
	allDone chan struct{}
	// failed is closed on the first speaker whose Run fails, err says why.
	failed chan struct{}
	err    error
}

func (s *sim) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
		close(s.failed)
	}
}

// pool is where the blocks are cut from.
var pool = netip.MustParsePrefix("10.128.0.0/10")

// maxClients is how many client addresses 127.78.0.0/16 gives.
const maxClients = 250 * 256

// Run brings the speakers up, waits until every one holds every route or
// the timeout passes, measures, and stops them. The error says which
// speakers are missing what when the wait times out.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Clients < 2 || o.Clients > maxClients {
		return Result{}, fmt.Errorf("simulate %d clients: want 2 to %d", o.Clients, maxClients)
	}
	if o.BlocksPerClient <= 0 {
		o.BlocksPerClient = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	rssBefore, heapBefore := memory()
	s, err := newSim(o)
	if err != nil {
		return Result{}, err
	}
	ctx, stop := context.WithCancel(ctx)
	var runs sync.WaitGroup
	defer func() {
		stop()
		runs.Wait()
	}()
	res := Result{Clients: len(s.clients), Reflectors: len(s.reflectors), Blocks: len(s.owner)}
	begin := time.Now()
	if err := s.start(ctx, &runs); err != nil {
		return res, err
	}
	res.Start = time.Since(begin)
	select {
	case <-s.failed: // a failed Run closes Started too
		return res, s.err
	default:
	}
	o.Logf("speakersim: %d GoBGP servers started in %v", len(s.all()), res.Start.Round(time.Millisecond))
	t0 := time.Now()
	s.configure()
	if err := s.wait(ctx, o.Timeout); err != nil {
		return res, err
	}
	res.Reflected, res.Converged, res.ClientP50 = s.times(t0)
	o.Logf("speakersim: converged in %v (reflectors %v)", res.Converged.Round(time.Millisecond), res.Reflected.Round(time.Millisecond))
	rss, heap := memory()
	n := float64(len(s.all()))
	res.RSS = rss
	res.RSSPerSpeaker, res.HeapPerSpeaker = (rss-rssBefore)/n, (heap-heapBefore)/n
	res.Goroutines = runtime.NumGoroutine()
	return res, nil
}

func newSim(o Options) (*sim, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &sim{o: o, port: port, owner: map[netip.Prefix]netip.Addr{}, allDone: make(chan struct{}), failed: make(chan struct{})}
	total := o.Clients * o.BlocksPerClient
	for i := range 2 {
		a := netip.AddrFrom4([4]byte{127, 77, 0, byte(i + 1)})
		s.reflectors = append(s.reflectors, &node{name: "rr" + strconv.Itoa(i+1), addr: a, want: total})
	}
	for i := range o.Clients {
		a := netip.AddrFrom4([4]byte{127, 78, byte(i / 250), byte(i%250 + 1)})
		c := &node{name: "node" + strconv.Itoa(i+1), addr: a, want: total - o.BlocksPerClient}
		for j := range o.BlocksPerClient {
			b := nthBlock(i*o.BlocksPerClient + j)
			c.blocks = append(c.blocks, b)
			s.owner[b] = a
		}
		s.clients = append(s.clients, c)
	}
	logger := slog.New(slog.DiscardHandler)
	for _, r := range s.reflectors {
		sp, err := speaker.New(speaker.Options{RouterID: r.addr, ASN: ASN, ListenPort: int32(port),
			ListenAddresses: []string{r.addr.String()}, Logger: logger})
		if err != nil {
			return nil, err
		}
		r.sp = sp
	}
	for _, c := range s.clients {
		// No listener: clients only connect out, as a node does to routers
		// that are passive towards it.
		sp, err := speaker.New(speaker.Options{RouterID: c.addr, ASN: ASN, Logger: logger})
		if err != nil {
			return nil, err
		}
		c.sp = sp
	}
	s.pending = len(s.all())
	return s, nil
}

func (s *sim) all() []*node { return append(slices.Clone(s.reflectors), s.clients...) }

// start runs every speaker and its learned-set reader, one GoBGP server
// after the other: StartBgp writes package-level options that every other
// server's route selection reads (see bgp/speaker), so no two may start at
// once, and none gets a peer or a path before the last has started.
func (s *sim) start(ctx context.Context, wg *sync.WaitGroup) error {
	for _, n := range s.all() {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := n.sp.Run(ctx); err != nil {
				s.fail(fmt.Errorf("speaker %s (%s): %w", n.name, n.addr, err))
			}
		}()
		go func() {
			defer wg.Done()
			for paths := range n.sp.Learned() {
				s.observe(n, paths)
			}
		}()
		select {
		case <-n.sp.Started():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// configure gives every speaker its peers, its blocks and the import
// filter, reflectors first.
func (s *sim) configure() {
	filter := []netip.Prefix{pool}
	for i, r := range s.reflectors {
		var peers []speaker.Peer
		for _, c := range s.clients {
			peers = append(peers, speaker.Peer{Name: c.name, Address: c.addr, ASN: ASN, Passive: true,
				RouteReflectorClient: true, RouteReflectorClusterID: clusterID, HoldTime: s.o.HoldTime})
		}
		other := s.reflectors[1-i]
		// One side connects, the other waits: no collision to resolve.
		peers = append(peers, speaker.Peer{Name: other.name, Address: other.addr, ASN: ASN, Port: s.port,
			SourceAddress: r.addr, Passive: i == 0, HoldTime: s.o.HoldTime})
		s.set(r, peers, filter)
	}
	for _, c := range s.clients {
		var peers []speaker.Peer
		for _, r := range s.reflectors {
			peers = append(peers, speaker.Peer{Name: r.name, Address: r.addr, ASN: ASN, Port: s.port, SourceAddress: c.addr, HoldTime: s.o.HoldTime})
		}
		s.set(c, peers, filter)
	}
}

func (s *sim) set(n *node, peers []speaker.Peer, filter []netip.Prefix) {
	n.sp.SetImportFilter(filter)
	ads := make([]speaker.Advertisement, len(n.blocks))
	for i, b := range n.blocks {
		ads[i] = speaker.Advertisement{Prefix: b}
	}
	// Both are valid by construction; an error here is a bug of this
	// package, and the wait would name the speaker that lacks routes.
	if err := n.sp.SetPeers(peers); err != nil {
		s.o.Logf("speakersim: %s: %v", n.name, err)
	}
	if err := n.sp.SetAdvertisements(ads); err != nil {
		s.o.Logf("speakersim: %s: %v", n.name, err)
	}
}

// observe counts the blocks a learned set holds with their owner as next
// hop, and records when the speaker first held all it must.
func (s *sim) observe(n *node, paths []speaker.Path) {
	got := 0
	var last netip.Prefix
	for _, p := range paths { // sorted by prefix
		if p.Prefix == last || s.owner[p.Prefix] != p.NextHop {
			continue
		}
		last = p.Prefix
		got++
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n.have = got
	if got == n.want && n.done.IsZero() {
		n.done = now
		s.pending--
		if s.pending == 0 {
			close(s.allDone)
		}
	}
}

// wait waits until every speaker held every route, or says who lacks what.
func (s *sim) wait(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.allDone:
		return nil
	case <-s.failed:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return s.missing(timeout)
	}
}

// missing describes the speakers that do not hold every route yet.
func (s *sim) missing(after time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lacking []string
	count := 0
	for _, n := range s.all() {
		if !n.done.IsZero() {
			continue
		}
		count++
		if len(lacking) < 10 {
			lacking = append(lacking, fmt.Sprintf("%s (%s) holds %d of %d blocks%s", n.name, n.addr, n.have, n.want, sessionsDown(n.sp)))
		}
	}
	return fmt.Errorf("after %v, %d of %d speakers lack routes: %s", after, count, len(s.all()), strings.Join(lacking, "; "))
}

// sessionsDown says which of a speaker's sessions are not Established:
// their number and, for a reflector's thousand, the states and last
// errors they share, most common first, four at most.
func sessionsDown(sp *speaker.Speaker) string {
	kinds := map[string]int{}
	down := 0
	for _, st := range sp.PeerStates() {
		if st.State == speaker.StateEstablished {
			continue
		}
		down++
		k := string(st.State)
		if st.LastError != "" {
			k += ": " + st.LastError
		}
		kinds[k]++
	}
	if down == 0 {
		return ""
	}
	keys := slices.Collect(maps.Keys(kinds))
	slices.SortFunc(keys, func(a, b string) int {
		if kinds[a] != kinds[b] {
			return kinds[b] - kinds[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys[:min(4, len(keys))] {
		parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
	}
	if len(keys) > 4 {
		parts = append(parts, "...")
	}
	return fmt.Sprintf(", %d sessions not Established (%s)", down, strings.Join(parts, "; "))
}

// times are the reflectors' time, the last client's and the median
// client's, from t0.
func (s *sim) times(t0 time.Time) (reflected, converged, p50 time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reflectors {
		reflected = max(reflected, r.done.Sub(t0))
	}
	ds := make([]time.Duration, len(s.clients))
	for i, c := range s.clients {
		ds[i] = c.done.Sub(t0)
	}
	slices.Sort(ds)
	return reflected, ds[len(ds)-1], ds[len(ds)/2]
}

// nthBlock is the i-th /26 of the pool.
func nthBlock(i int) netip.Prefix {
	a := pool.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i) << 6
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 26)
}

// freePort picks a TCP port free on both reflector addresses.
func freePort() (uint16, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.77.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("pick a port on loopback: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.77.0.2", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			l2.Close()
			return uint16(port), nil
		}
	}
	return 0, errors.New("no TCP port free on both 127.77.0.1 and 127.77.0.2")
}

// memory is the process's resident set (VmRSS) and live Go heap after a
// collection, in bytes.
func memory() (rss, heap float64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = float64(ms.HeapAlloc)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				rss = kb * 1024
			}
		}
	}
	return rss, heap
}
