package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Retry backoff after a failed reconcile.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// gobgpStopNoise is what GoBGP logs (as an error) when BgpServer.Stop runs
// after StopBgp already stopped the server; see runner.stop.
const gobgpStopNoise = "failed to stop BGP server"

// runner is the state owned by the goroutine running Run: the GoBGP server
// and what has been applied to it. Nothing else touches it.
type runner struct {
	s           *Speaker
	srv         *server.BgpServer
	log         *slog.Logger
	quiet       *atomic.Bool
	cancelWatch context.CancelFunc

	policy policyInput
	ads    map[netip.Prefix][]uint32
	peers  map[netip.Addr]Peer
	status map[netip.Addr]*peerStatus
	// last is the desired state seen by the latest reconcile.
	last desired

	backoff time.Duration
	retry   *time.Timer

	synced    bool
	syncTimer *time.Timer

	learnedDirty  bool
	published     []Path
	publishedOnce bool
	// accepted counts, per peer, the paths in the RIB the import policy let
	// in (GoBGP's own "accepted" counter ignores the policy).
	accepted map[netip.Addr]uint64
}

// peerStatus is what the owner tracks per applied peer from GoBGP events.
type peerStatus struct {
	state        SessionState
	lastError    string
	grNegotiated bool
	eor          map[bgp.Family]bool
}

// start creates and configures the GoBGP server: global settings, then the
// reject-by-default policy, then the event watch. No peer or path exists
// before the policy does.
func (s *Speaker) start(ctx context.Context) (*runner, error) {
	quiet := &atomic.Bool{}
	glog := slog.New(&redactingHandler{
		next: s.opts.Logger.Handler(), secrets: s.secrets, quiet: quiet, quietMsg: gobgpStopNoise,
	}).With("component", "gobgp", "routerID", s.opts.RouterID.String())
	srv := server.NewBgpServer(server.LoggerOption(glog, nil))
	go srv.Serve()
	// Once StartBgp has returned, Serve is running, so Stop can end it.
	abort := func() { quiet.Store(true); srv.Stop() }

	port := s.opts.ListenPort
	if port == 0 {
		port = -1 // GoBGP's "do not listen"
	}
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:              s.opts.ASN,
		RouterId:         s.opts.RouterID.String(),
		ListenPort:       port,
		ListenAddresses:  s.opts.ListenAddresses,
		UseMultiplePaths: true,
	}})
	if err != nil {
		abort()
		return nil, fmt.Errorf("start GoBGP (listen port %d): %w", s.opts.ListenPort, err)
	}
	if err := installPolicy(ctx, srv); err != nil {
		abort()
		return nil, err
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	if err := srv.WatchEvent(watchCtx, s.inbox.callbacks(), watchOptions()...); err != nil {
		cancel()
		abort()
		return nil, fmt.Errorf("watch GoBGP events: %w", err)
	}
	s.log.Info("BGP speaker started", "listenPort", s.opts.ListenPort,
		"gracefulRestart", s.opts.GracefulRestart != nil && s.opts.GracefulRestart.Enabled)
	return &runner{
		s:            s,
		srv:          srv,
		log:          s.log,
		quiet:        quiet,
		cancelWatch:  cancel,
		ads:          map[netip.Prefix][]uint32{},
		peers:        map[netip.Addr]Peer{},
		status:       map[netip.Addr]*peerStatus{},
		syncTimer:    time.NewTimer(s.opts.InitialSyncTimeout),
		learnedDirty: true,
	}, nil
}

// installPolicy defines the (empty) policy and assigns it globally with
// reject defaults in both directions.
func installPolicy(ctx context.Context, srv *server.BgpServer) error {
	if err := srv.SetPolicies(ctx, buildPolicy(policyInput{})); err != nil {
		return fmt.Errorf("define routing policy: %w", err)
	}
	for _, a := range globalAssignments() {
		if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
			return fmt.Errorf("assign %s policy with default reject: %w", a.Direction, err)
		}
	}
	return nil
}

// loop is the owner goroutine's event loop.
func (r *runner) loop(ctx context.Context) {
	r.reconcile()
	for {
		select {
		case <-ctx.Done():
			r.stop()
			return
		case <-r.s.wake:
			r.reconcile()
		case <-r.retryC():
			r.retry = nil
			r.reconcile()
		case <-r.s.inbox.ready:
			r.handleEvents()
		case reply := <-r.s.stateReq:
			reply <- r.peerStates()
		case <-r.syncTimer.C:
			if !r.synced {
				r.log.Warn("initial sync timed out: publishing learned paths without End-of-RIB from every peer",
					"timeout", r.s.opts.InitialSyncTimeout)
				r.synced, r.learnedDirty = true, true
			}
		}
		if r.learnedDirty {
			r.publishLearned()
		}
	}
}

func (r *runner) retryC() <-chan time.Time {
	if r.retry == nil {
		return nil
	}
	return r.retry.C
}

// reconcile converges GoBGP towards the desired state: policy first (so a
// new peer or path is never judged by a stale policy), then our paths, then
// the peers, which are only opened once SetAdvertisements was called.
func (r *runner) reconcile() {
	d := r.s.snapshot()
	r.last = d
	var errs []error
	if err := r.applyPolicy(d); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, r.applyAdvertisements(d)...)
	if d.adsSet {
		errs = append(errs, r.applyPeers(d)...)
	}
	// Keep scrubbing passwords of peers GoBGP still has until they are gone.
	r.s.secrets.set(append(passwords(d.peers), passwords(r.peers)...))
	r.learnedDirty = true
	r.checkSync()
	r.scheduleRetry(errors.Join(errs...))
}

func (r *runner) scheduleRetry(err error) {
	if err == nil {
		r.backoff = 0
		if r.retry != nil {
			r.retry.Stop()
			r.retry = nil
		}
		return
	}
	r.backoff = min(max(2*r.backoff, minBackoff), maxBackoff)
	r.log.Error("could not apply desired BGP state; will retry", "err", err, "retryIn", r.backoff)
	if r.retry != nil {
		r.retry.Stop()
	}
	r.retry = time.NewTimer(r.backoff)
}

// applyPolicy replaces the routing policy when its inputs changed, then has
// GoBGP re-evaluate what it already holds: soft reset in re-runs the import
// policy over every received path (including ones rejected before), soft
// reset out re-runs the export policy and withdraws what it now rejects.
func (r *runner) applyPolicy(d desired) error {
	in := policyInputFor(d.pools, d.peers, r.s.opts.ASN)
	if in.equal(r.policy) {
		return nil
	}
	ctx := context.Background()
	if err := r.srv.SetPolicies(ctx, buildPolicy(in)); err != nil {
		return fmt.Errorf("set routing policy: %w", err)
	}
	importChanged := !slices.Equal(in.pools, r.policy.pools)
	exportChanged := !slices.Equal(in.reflectTo, r.policy.reflectTo)
	r.policy = in
	r.log.Info("routing policy updated", describePolicy(in)...)
	if len(r.peers) == 0 {
		return nil
	}
	var errs []error
	if importChanged {
		if err := r.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_IN}); err != nil {
			errs = append(errs, fmt.Errorf("re-apply import policy (soft reset in): %w", err))
		}
	}
	if exportChanged {
		if err := r.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil {
			errs = append(errs, fmt.Errorf("re-apply export policy (soft reset out): %w", err))
		}
	}
	return errors.Join(errs...)
}

// applyAdvertisements adds, re-adds and withdraws our locally originated
// paths.
func (r *runner) applyAdvertisements(d desired) []error {
	pl := diffAdvertisements(d.ads, r.ads)
	var errs []error
	for _, p := range slices.Concat(pl.Add, pl.Replace) {
		path, err := advertisedPath(p, d.ads[p])
		if err == nil {
			_, err = r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("advertise %s: %w", p, err))
			continue
		}
		r.ads[p] = d.ads[p]
		r.log.Info("advertising prefix", "prefix", p.String(), "communities", d.ads[p])
	}
	for _, p := range pl.Remove {
		path, err := advertisedPath(p, nil)
		if err == nil {
			err = r.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
			continue
		}
		delete(r.ads, p)
		r.log.Info("withdrew prefix", "prefix", p.String())
	}
	return errs
}

// advertisedPath builds the GoBGP path for one advertisement. The next hop
// is unspecified, which GoBGP replaces per session with the session's local
// address: next hop self.
func advertisedPath(p netip.Prefix, communities []uint32) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, fmt.Errorf("encode prefix: %w", err)
	}
	fam := familyOf(p.Addr())
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if fam == bgp.RF_IPv4_UC {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, fmt.Errorf("encode next hop: %w", err)
		}
		attrs = append(attrs, nh)
	} else {
		mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, fmt.Errorf("encode next hop: %w", err)
		}
		attrs = append(attrs, mp)
	}
	if len(communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(communities))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs}, nil
}

// applyPeers removes, re-creates and adds neighbours. A failed delete is not
// retried: GoBGP only fails it for a peer it does not have.
func (r *runner) applyPeers(d desired) []error {
	pl := diffPeers(d.peers, r.peers)
	ctx := context.Background()
	local := peerLocal{asn: r.s.opts.ASN, routerID: r.s.opts.RouterID, gr: r.s.opts.GracefulRestart}
	var errs []error
	for _, a := range slices.Concat(pl.Remove, pl.Replace) {
		old := r.peers[a]
		if err := r.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			r.log.Warn("GoBGP did not have the peer being removed", "peer", old.displayName(), "address", a.String(), "err", err)
		}
		delete(r.peers, a)
		delete(r.status, a)
		r.log.Info("removed BGP peer", "peer", old.displayName(), "address", a.String())
	}
	for _, a := range slices.Concat(pl.Add, pl.Replace) {
		p := d.peers[a]
		st := &peerStatus{state: StateIdle, eor: map[bgp.Family]bool{}}
		r.status[a] = st
		if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: toAPIPeer(p, local)}); err != nil {
			err = fmt.Errorf("add peer %s (%s): %w", p.displayName(), a, err)
			st.lastError = r.s.secrets.redact(err.Error())
			errs = append(errs, err)
			continue
		}
		r.peers[a] = p
		r.log.Info("added BGP peer", "peer", p.displayName(), "address", a.String(), "peerASN", p.ASN,
			"md5", p.Password != "", "ttlSecurity", p.TTLSecurity, "ebgpMultihop", p.EBGPMultihop,
			"holdTime", p.HoldTime, "maxPrefixes", p.MaxPrefixes, "rrClient", p.RouteReflectorClient,
			"passive", p.Passive)
	}
	return errs
}

// handleEvents applies what GoBGP reported since the last look.
func (r *runner) handleEvents() {
	b := r.s.inbox.take()
	for _, ev := range b.events {
		switch {
		case ev.peer != nil:
			r.onPeerEvent(*ev.peer)
		case ev.eor != nil:
			if st := r.status[ev.eor.Addr]; st != nil {
				st.eor[ev.eor.Family] = true
				r.log.Debug("End-of-RIB received", "address", ev.eor.Addr.String(), "family", ev.eor.Family.String())
			}
		}
	}
	if b.ribChanged {
		r.learnedDirty = true
	}
	r.checkSync()
}

func (r *runner) onPeerEvent(ev peerEvent) {
	st := r.status[ev.Addr]
	if st == nil {
		return // a peer we have since removed
	}
	prev := st.state
	st.state = ev.State
	if ev.State == StateEstablished {
		st.grNegotiated = ev.GRNegotiated
		st.eor = map[bgp.Family]bool{}
	} else if ev.State == StateIdle && ev.Reason != "" {
		// GoBGP drops every failed or torn-down session to Idle.
		st.lastError = r.s.secrets.redact(ev.Reason)
	}
	if prev == ev.State {
		return
	}
	name := ev.Addr.String()
	if p, ok := r.peers[ev.Addr]; ok {
		name = p.displayName()
	}
	attrs := []any{"peer", name, "address", ev.Addr.String(), "from", string(prev), "to", string(ev.State)}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	if ev.State == StateEstablished || prev == StateEstablished {
		r.log.Info("BGP session state changed", attrs...)
	} else {
		r.log.Debug("BGP session state changed", attrs...)
	}
}

// checkSync ends the initial sync once SetPeers and SetAdvertisements have
// been called, every desired peer is configured and Established, and every
// peer that negotiated graceful restart has sent End-of-RIB.
func (r *runner) checkSync() {
	if r.synced || !r.last.peersSet || !r.last.adsSet || len(r.peers) != len(r.last.peers) {
		return
	}
	for a := range r.peers {
		st := r.status[a]
		if st == nil || st.state != StateEstablished {
			return
		}
		if st.grNegotiated && !st.eor[familyOf(a)] {
			return
		}
	}
	r.synced, r.learnedDirty = true, true
	r.syncTimer.Stop()
	r.log.Info("initial sync done", "peers", len(r.peers))
}

// publishLearned re-reads the RIB and, when the selection changed, replaces
// whatever is waiting in the Learned channel with it.
func (r *runner) publishLearned() {
	r.learnedDirty = false
	cands, err := r.candidates()
	if err != nil {
		r.log.Error("could not read the RIB; learned paths not updated", "err", err)
		return
	}
	r.accepted = acceptedPerPeer(cands, r.last.pools)
	if !r.synced {
		return
	}
	paths := selectLearned(cands, learnedFilter{localASN: r.s.opts.ASN, pools: r.last.pools, own: r.last.ads, staleDead: r.backWithoutGR()})
	if r.publishedOnce && slices.EqualFunc(paths, r.published, equalPath) {
		return
	}
	r.published, r.publishedOnce = paths, true
	out := make([]Path, len(paths))
	for i, p := range paths {
		p.Communities = slices.Clone(p.Communities)
		out[i] = p
	}
	select {
	case <-r.s.learned: // drop the unread, older set: latest wins
	default:
	}
	r.s.learned <- out // cannot block: this goroutine is the only sender
	r.log.Debug("learned paths changed", "paths", len(out))
}

// backWithoutGR lists peers whose session is Established without graceful
// restart: any stale path from them is a leftover of an earlier session.
func (r *runner) backWithoutGR() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for a, st := range r.status {
		if st.state == StateEstablished && !st.grNegotiated {
			out[a] = true
		}
	}
	return out
}

// candidates lists every path in GoBGP's global RIB, both families.
func (r *runner) candidates() ([]candidate, error) {
	var out []candidate
	for _, fam := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam},
			func(_ bgp.NLRI, paths []*apiutil.Path) {
				for _, p := range paths {
					if c, ok := candidateFromAPI(p); ok {
						out = append(out, c)
					}
				}
			})
		if err != nil {
			return nil, fmt.Errorf("list %s paths: %w", fam, err)
		}
	}
	return out, nil
}

// peerStates answers PeerStates from GoBGP's view plus tracked errors.
func (r *runner) peerStates() []PeerState {
	d := r.s.snapshot()
	got := map[netip.Addr]*api.Peer{}
	err := r.srv.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.Conf == nil {
			return
		}
		if a, err := netip.ParseAddr(p.Conf.NeighborAddress); err == nil {
			got[a.Unmap()] = p
		}
	})
	if err != nil {
		r.log.Warn("could not list GoBGP peers", "err", err)
	}
	out := make([]PeerState, 0, len(d.peers))
	for _, addr := range slices.SortedFunc(maps.Keys(d.peers), netip.Addr.Compare) {
		p := d.peers[addr]
		ps := PeerState{Name: p.displayName(), Address: addr, ASN: p.ASN, State: StateIdle}
		if ap := got[addr]; ap != nil {
			fillFromGoBGP(&ps, ap)
		}
		if st := r.status[addr]; st != nil {
			ps.LastError = st.lastError
		}
		if ap := got[addr]; ap != nil && ap.State != nil && ap.State.AdminState == api.PeerState_ADMIN_STATE_PFX_CT {
			ps.LastError = maxPrefixReason
		}
		ps.Accepted = r.accepted[addr]
		if !d.adsSet {
			ps.LastError = "session not opened yet: waiting for the first SetAdvertisements"
		}
		ps.LastError = r.s.secrets.redact(ps.LastError)
		out = append(out, ps)
	}
	return out
}

func fillFromGoBGP(ps *PeerState, ap *api.Peer) {
	if ap.State != nil {
		ps.State = stateFromAPI(ap.State.SessionState)
	}
	if ps.State == StateEstablished && ap.Timers != nil && ap.Timers.State != nil && ap.Timers.State.Uptime != nil {
		ps.Uptime = time.Since(ap.Timers.State.Uptime.AsTime()).Truncate(time.Second)
	}
	for _, af := range ap.AfiSafis {
		if af.State != nil {
			ps.Received += af.State.Received
			ps.Advertised += af.State.Advertised
		}
	}
}

// stop shuts GoBGP down. With graceful restart, GR-capable peers get no
// NOTIFICATION and keep our routes for the restart time; others get a Cease
// and withdraw them. BgpServer.Stop is still needed to end GoBGP's BFD
// goroutine; its own StopBgp call then fails and logs gobgpStopNoise, which
// is dropped.
func (r *runner) stop() {
	gr := r.s.opts.GracefulRestart != nil && r.s.opts.GracefulRestart.Enabled
	r.cancelWatch()
	r.quiet.Store(true)
	if err := r.srv.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: gr}); err != nil {
		r.log.Warn("GoBGP stop reported an error", "err", err)
	}
	r.srv.Stop()
	if r.retry != nil {
		r.retry.Stop()
	}
	r.syncTimer.Stop()
	r.log.Info("BGP speaker stopped", "gracefulRestart", gr)
}
