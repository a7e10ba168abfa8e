package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// Speaker is Cairn's BGP speaker. Create it with New, start it with Run, and
// state what it should do with SetPeers, SetAdvertisements and
// SetImportFilter, which may be called at any time, before or during Run.
type Speaker struct {
	opts    Options
	log     *slog.Logger
	secrets *secrets

	mu      sync.Mutex
	desired desired

	wake     chan struct{} // one slot: desired state changed
	inbox    *inbox
	stateReq chan chan []PeerState
	learned  chan []Path
	// refused is the latest list of paths the import rules refuse, for
	// status; written by the owner goroutine.
	refused atomic.Pointer[refusedSet]
	started atomic.Bool
	// leaving: the end of Run closes every session with a Cease
	// (SetLeaving).
	leaving atomic.Bool
	// running is closed once Run has started GoBGP, or has returned.
	running     chan struct{}
	runningOnce sync.Once
	done        chan struct{} // closed when Run returns
}

// desired is what the caller asked for; the owner goroutine converges
// GoBGP towards it.
type desired struct {
	global   Global
	peers    map[netip.Addr]Peer
	peersSet bool
	ads      map[netip.Prefix]adAttrs
	adsSet   bool
	pools    []netip.Prefix
	holdings holdings
}

// New validates opts and returns a speaker that is not yet running.
func New(opts Options) (*Speaker, error) {
	opts, err := validateOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("configure BGP speaker: %w", err)
	}
	sec := &secrets{}
	// No AS in every line: SetGlobal may change it.
	log := slog.New(&redactingHandler{next: opts.Logger.Handler(), secrets: sec}).With(
		"component", "bgp-speaker", "routerID", opts.RouterID.String())
	g, _ := validateGlobal(opts.global(), opts.ListenAddresses) // checked by validateOptions
	return &Speaker{
		opts:    opts,
		log:     log,
		secrets: sec,
		desired: desired{
			global: g,
			peers:  map[netip.Addr]Peer{},
			ads:    map[netip.Prefix]adAttrs{},
		},
		wake:     make(chan struct{}, 1),
		inbox:    newInbox(),
		stateReq: make(chan chan []PeerState),
		learned:  make(chan []Path, 1),
		running:  make(chan struct{}),
		done:     make(chan struct{}),
	}, nil
}

// SetGlobal declares the speaker's global settings (see Global for what a
// change costs). Invalid settings are refused with an error wrapping
// ErrInvalid and the previous ones kept. Call it before SetPeers when the
// AS number changes: peers are checked against the AS set last.
func (s *Speaker) SetGlobal(g Global) error {
	g, err := validateGlobal(g, s.opts.ListenAddresses)
	if err != nil {
		return fmt.Errorf("set BGP global settings: %w", err)
	}
	s.mu.Lock()
	changed := s.desired.global != g
	s.desired.global = g
	s.mu.Unlock()
	if changed {
		s.poke()
	}
	return nil
}

// SetPeers declares the complete set of neighbours. Peers not in the list
// are removed, new ones added, changed ones re-created. An invalid peer is
// left out and reported in the returned error (which wraps ErrInvalid and
// never contains a password); the valid ones are applied regardless.
// Failures to apply are retried and shown in PeerStates.
func (s *Speaker) SetPeers(peers []Peer) error {
	s.mu.Lock()
	asn := s.desired.global.ASN
	s.mu.Unlock()
	m, err := validatePeers(peers, asn)
	err = errors.Join(err, validateFamilies(m, s.opts))
	s.mu.Lock()
	s.desired.peers = m
	s.desired.peersSet = true
	s.mu.Unlock()
	s.secrets.add(passwords(m))
	s.poke()
	if err != nil {
		return fmt.Errorf("set BGP peers (invalid ones skipped): %w", err)
	}
	return nil
}

// SetAdvertisements declares the complete set of prefixes this node
// announces (IPv4 and IPv6), with next hop self. An invalid entry (a default
// route, non-unicast space, a duplicate) is left out and reported in the
// returned error, which wraps ErrInvalid; the valid ones are applied.
//
// No session is opened before the first call: a peer would otherwise get our
// End-of-RIB with an empty table and, after a restart, drop the routes it
// kept for us. Call it (even with an empty list) once the node's owned blocks
// are known.
func (s *Speaker) SetAdvertisements(ads []Advertisement) error {
	m, err := validateAdvertisements(ads)
	s.mu.Lock()
	s.desired.ads = m
	s.desired.adsSet = true
	s.mu.Unlock()
	s.poke()
	if err != nil {
		return fmt.Errorf("set BGP advertisements (invalid ones skipped): %w", err)
	}
	return nil
}

// SetImportFilter declares the prefixes (IP pools) learned paths must lie
// within. Nothing is accepted before the first call, and a default route
// never is: a /0 or invalid entry is dropped with a warning.
func (s *Speaker) SetImportFilter(allowed []netip.Prefix) {
	kept, dropped := normalizeImportFilter(allowed)
	for _, p := range dropped {
		s.log.Warn("ignoring import filter entry that would admit a default route or is not a prefix", "prefix", p.String())
	}
	s.mu.Lock()
	s.desired.pools = kept
	s.mu.Unlock()
	s.poke()
}

// SetHoldings declares which node holds each IPAM block and each borrowed
// address (owner-only imports): a learned path inside a block is used only
// when its next hop is an address of the node holding the block or, for a
// borrowed address's host prefix, of its borrower; never for a prefix
// inside a block this node holds, except an address another node
// borrowed from it; never with a next hop inside a block or the import
// filter (a pod). Prefixes inside no block are left to the import filter.
// Without a call, no path is refused for this reason.
func (s *Speaker) SetHoldings(hs []Holding) {
	idx := indexHoldings(hs)
	s.mu.Lock()
	s.desired.holdings = idx
	s.mu.Unlock()
	s.poke()
}

// maxRefusedListed bounds RefusedPaths: a flooding peer must not make
// status unbounded.
const maxRefusedListed = 256

// refusedSet is what RefusedPaths returns.
type refusedSet struct {
	paths []RefusedPath
	total int
}

// RefusedPaths lists the paths peers sent that the import rules refuse
// (owner-only, BGPFilter), at most 256 sorted by prefix, with how many
// there are in all. Paths outside the import filter are not among them:
// GoBGP drops those on receipt; PeerStates counts them (Received minus
// Accepted).
func (s *Speaker) RefusedPaths() ([]RefusedPath, int) {
	r := s.refused.Load()
	if r == nil {
		return nil, 0
	}
	return slices.Clone(r.paths), r.total
}

// Learned delivers the full set of best (equal-cost) learned paths after
// every change. It holds only the latest set, so a slow reader skips
// intermediate ones and never blocks BGP. The first set is sent once every
// peer has sent End-of-RIB (or reached Established without graceful
// restart), or after Options.InitialSyncTimeout, so a restarted agent does not
// remove routes it has simply not relearned yet. The channel is closed when
// Run returns. Each slice belongs to the receiver. Paths come normalised:
// prefixes masked, one path per prefix and next hop, sorted by prefix
// (netip.Prefix.Compare) then next hop.
func (s *Speaker) Learned() <-chan []Path {
	return s.learned
}

// PeerStates returns the state of every desired peer, sorted by address.
func (s *Speaker) PeerStates() []PeerState {
	if s.started.Load() {
		reply := make(chan []PeerState, 1)
		select {
		case s.stateReq <- reply:
			return <-reply
		case <-s.done:
		}
	}
	return s.idleStates("speaker not running")
}

// idleStates describes the desired peers without asking GoBGP.
func (s *Speaker) idleStates(why string) []PeerState {
	d := s.snapshot()
	out := make([]PeerState, 0, len(d.peers))
	for _, addr := range slices.SortedFunc(maps.Keys(d.peers), netip.Addr.Compare) {
		p := d.peers[addr]
		out = append(out, PeerState{Name: p.displayName(), Address: addr, ASN: p.ASN, State: StateIdle, LastError: why})
	}
	return out
}

// SetLeaving declares how the end of Run closes the sessions. A speaker
// that is leaving (its node is being removed from the cluster) closes
// every one with a Cease NOTIFICATION, graceful restart or not, so that
// its peers withdraw its routes at once. One that is not (the default: an
// agent restart or upgrade) closes them as graceful restart says. It
// takes effect when Run stops: call it before cancelling Run's context.
func (s *Speaker) SetLeaving(leaving bool) {
	s.leaving.Store(leaving)
}

// Run starts GoBGP, converges it towards the desired state until ctx is
// done, then stops it. With graceful restart enabled the stop sends no
// NOTIFICATION, so peers keep our routes (marked stale) for the restart
// time; without it, or when leaving (SetLeaving), peers are told (Cease)
// and withdraw at once. Run may be
// called once; it returns nil after a stop requested through ctx.
func (s *Speaker) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("run BGP speaker: Run was already called")
	}
	defer close(s.done)
	defer close(s.learned)
	defer s.markRunning()
	r, err := s.start(ctx)
	if err != nil {
		return fmt.Errorf("start BGP speaker %s (AS %d): %w", s.opts.RouterID, s.opts.ASN, err)
	}
	s.markRunning()
	r.loop(ctx)
	return nil
}

// Started is closed once Run has started GoBGP (its listener is open and
// the Set calls are being applied), or once Run has returned, whichever
// comes first. GoBGP's start happens before a receive from it returns;
// several speakers in one process rely on that (see the package doc).
func (s *Speaker) Started() <-chan struct{} {
	return s.running
}

func (s *Speaker) markRunning() {
	s.runningOnce.Do(func() { close(s.running) })
}

// poke wakes the owner goroutine; it never blocks.
func (s *Speaker) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// snapshot copies the desired state. Values are never mutated after
// validation, so shallow map copies are enough.
func (s *Speaker) snapshot() desired {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desired
	d.peers = maps.Clone(d.peers)
	d.ads = maps.Clone(d.ads)
	d.pools = slices.Clone(d.pools)
	return d
}

func passwords(peers map[netip.Addr]Peer) []string {
	var out []string
	for _, p := range peers {
		if p.Password != "" {
			out = append(out, p.Password)
		}
	}
	return out
}
