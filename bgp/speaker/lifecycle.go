package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	gobgp "github.com/osrg/gobgp/v4/pkg/server"
)

// gobgpStopNoise is what GoBGP logs (as an error) when BgpServer.Stop runs
// after StopBgp already stopped the server; see runner.stop.
const gobgpStopNoise = "failed to stop BGP server"

// instance is one running GoBGP server: a speaker has one at a time, and a
// new one when its AS number or listen port changes.
type instance struct {
	srv         *gobgp.BgpServer
	quiet       *atomic.Bool
	cancelWatch context.CancelFunc
}

// start creates and configures the first GoBGP server and the state of the
// goroutine that owns it.
func (s *Speaker) start(ctx context.Context) (*runner, error) {
	g := s.snapshot().global
	sv, err := s.startServer(ctx, g)
	if err != nil {
		return nil, err
	}
	s.log.Info("BGP speaker started", "asn", g.ASN, "listenPort", g.ListenPort,
		"gracefulRestart", g.GracefulRestart.Enabled,
		"forwardingStateKept", s.opts.ForwardingStateKept && g.GracefulRestart.Enabled)
	return s.newRunner(sv, g), nil
}

// startServer creates and configures a GoBGP server: global settings, then
// the reject-by-default policy, then the event watch. No peer or path
// exists before the policy does.
func (s *Speaker) startServer(ctx context.Context, g Global) (instance, error) {
	quiet := &atomic.Bool{}
	srv := s.newGoBGP(quiet)
	// Once StartBgp has returned, Serve is running, so Stop can end it.
	abort := func() { quiet.Store(true); srv.Stop() }

	if err := s.startGoBGP(ctx, srv, g); err != nil {
		abort()
		return instance{}, err
	}
	if err := installPolicy(ctx, srv); err != nil {
		abort()
		return instance{}, err
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	if err := srv.WatchEvent(watchCtx, s.inbox.callbacks(), watchOptions()...); err != nil {
		cancel()
		abort()
		return instance{}, fmt.Errorf("watch GoBGP events: %w", err)
	}
	return instance{srv: srv, quiet: quiet, cancelWatch: cancel}, nil
}

// newGoBGP creates the GoBGP server and starts serving its API. GoBGP logs
// through the speaker's logger, with passwords scrubbed, quiet drops the
// noise of its own stop, and a hold timer's expiry reaches the owner
// (gone.go).
func (s *Speaker) newGoBGP(quiet *atomic.Bool) *gobgp.BgpServer {
	glog := slog.New(&holdExpiryHandler{
		next: &redactingHandler{
			next: s.opts.Logger.Handler(), secrets: s.secrets, quiet: quiet, quietMsg: gobgpStopNoise,
		},
		report: s.inbox.holdExpired,
	}).With("component", "gobgp", "routerID", s.opts.RouterID.String())
	srv := gobgp.NewBgpServer(gobgp.LoggerOption(glog, nil))
	go srv.Serve()
	return srv
}

// globalFamilies are the only address families Cairn speaks. Left empty,
// GoBGP enables every family it knows (about 30) and gives each a global
// and a route-server table of 2,048 shards: about 8 MiB of heap that an
// agent never uses (measured with pprof on a lab agent, issue 15).
var globalFamilies = []uint32{
	uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV4_UNICAST]),
	uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV6_UNICAST]),
}

// startGoBGP applies the global settings: AS, router ID, listener, the
// unicast families.
func (s *Speaker) startGoBGP(ctx context.Context, srv *gobgp.BgpServer, g Global) error {
	port := g.ListenPort
	if port == 0 {
		port = -1 // GoBGP's "do not listen"
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:              g.ASN,
		RouterId:         s.opts.RouterID.String(),
		ListenPort:       port,
		ListenAddresses:  s.opts.ListenAddresses,
		Families:         globalFamilies,
		UseMultiplePaths: true,
	}}); err != nil {
		return fmt.Errorf("start GoBGP (AS %d, listen port %d): %w", g.ASN, g.ListenPort, err)
	}
	return nil
}

// newRunner is the owner goroutine's state for a started server: nothing
// applied yet, learned paths to be published once in sync.
func (s *Speaker) newRunner(sv instance, g Global) *runner {
	r := &runner{
		s:            s,
		instance:     sv,
		global:       g,
		log:          s.log,
		syncTimer:    time.NewTimer(s.opts.InitialSyncTimeout),
		learnedDirty: true,
	}
	r.forgetApplied(s.opts.ForwardingStateKept)
	return r
}

// forgetApplied resets what the runner knows was applied, for a server
// that holds nothing yet, and starts a new initial sync. forwardingKept
// says whether this node kept forwarding (see Options.ForwardingStateKept).
func (r *runner) forgetApplied(forwardingKept bool) {
	r.policy = policyInput{}
	r.ads = map[netip.Prefix]adAttrs{}
	r.adNextHops = map[bgp.Family]netip.Addr{}
	r.peers = map[netip.Addr]Peer{}
	r.status = map[netip.Addr]*peerStatus{}
	r.heldDown = map[netip.Addr]time.Time{}
	r.carriedFlaps = map[netip.Addr]uint64{}
	r.held = map[netip.Addr]heldPaths{}
	r.synced = false
	r.syncTimer.Reset(r.s.opts.InitialSyncTimeout)
	r.syncDeadline = time.Now().Add(r.s.opts.InitialSyncTimeout)
	r.restarting = forwardingKept && r.global.GracefulRestart.Enabled
}

// grEnabled reports whether graceful restart is on.
func grEnabled(gr *GROptions) bool {
	return gr != nil && gr.Enabled
}

// installPolicy defines the (empty) policy and assigns it globally with
// reject defaults in both directions.
func installPolicy(ctx context.Context, srv *gobgp.BgpServer) error {
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

// stop shuts GoBGP down for good (see stopServer) and the runner's timers.
// A speaker whose node is leaving the cluster (SetLeaving) closes its
// sessions without graceful restart, so that peers withdraw its routes now.
func (r *runner) stop() {
	leaving := r.s.leaving.Load()
	gr := r.global.GracefulRestart.Enabled && !leaving
	if leaving {
		r.withdrawBeforeLeaving()
	}
	r.stopServer(gr)
	if r.retry != nil {
		r.retry.Stop()
	}
	r.syncTimer.Stop()
	r.log.Info("BGP speaker stopped", "gracefulRestart", gr, "leaving", leaving)
}

// Leaving: how long withdrawals may take to go out before the sessions
// close, and how long GoBGP's sending goroutines get to write the last.
const (
	leaveWithdrawWait = 2 * time.Second
	leaveLinger       = 200 * time.Millisecond
)

// withdrawBeforeLeaving withdraws every advertisement by UPDATE and waits,
// at most leaveWithdrawWait, until no peer is still sent one. Peers then
// learn of the departure by withdrawal even if the Cease that follows is
// lost: a connection closed with data still unread is reset, and a peer
// that loses the NOTIFICATION with it takes the close for a restart and
// keeps the routes for the restart time (seen with GoBGP reflectors).
func (r *runner) withdrawBeforeLeaving() {
	if r.srv == nil {
		return
	}
	if errs := r.applyAdvertisements(desired{peers: r.peers}); len(errs) > 0 {
		r.log.Warn("leaving: some prefixes could not be withdrawn before the sessions close", "err", errors.Join(errs...))
	}
	deadline := time.Now().Add(leaveWithdrawWait)
	for r.stillAdvertised() > 0 {
		if time.Now().After(deadline) {
			r.log.Warn("leaving: withdrawals not all sent; closing the sessions anyway", "advertised", r.stillAdvertised())
			return
		}
		time.Sleep(20 * time.Millisecond) // GoBGP reports no event when its Adj-RIB-Out empties
	}
	time.Sleep(leaveLinger) // its send goroutines write what is queued
}

// stillAdvertised counts the paths GoBGP still has out to Established
// peers.
func (r *runner) stillAdvertised() uint64 {
	var n uint64
	for _, p := range r.goBGPPeers() {
		if p.State == nil || p.State.SessionState != api.PeerState_SESSION_STATE_ESTABLISHED {
			continue
		}
		for _, af := range p.AfiSafis {
			if af.State != nil {
				n += af.State.Advertised
			}
		}
	}
	return n
}

// stopServer shuts the GoBGP server down. With graceful restart, GR-capable
// peers get no NOTIFICATION and keep our routes for the restart time;
// without, every peer gets a Cease and withdraws them. BgpServer.Stop is
// still needed to end GoBGP's BFD goroutine; its own StopBgp call then
// fails and logs gobgpStopNoise, which is dropped.
func (r *runner) stopServer(gracefulRestart bool) {
	if r.srv == nil {
		return
	}
	r.cancelWatch()
	r.quiet.Store(true)
	if err := r.srv.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: gracefulRestart}); err != nil {
		r.log.Warn("GoBGP stop reported an error", "err", err)
	}
	r.srv.Stop()
	r.instance = instance{}
}
