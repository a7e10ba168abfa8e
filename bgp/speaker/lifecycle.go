package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// gobgpStopNoise is what GoBGP logs (as an error) when BgpServer.Stop runs
// after StopBgp already stopped the server; see runner.stop.
const gobgpStopNoise = "failed to stop BGP server"

// start creates and configures the GoBGP server: global settings, then the
// reject-by-default policy, then the event watch. No peer or path exists
// before the policy does.
func (s *Speaker) start(ctx context.Context) (*runner, error) {
	quiet := &atomic.Bool{}
	srv := s.newGoBGP(quiet)
	// Once StartBgp has returned, Serve is running, so Stop can end it.
	abort := func() { quiet.Store(true); srv.Stop() }

	if err := s.startGoBGP(ctx, srv); err != nil {
		abort()
		return nil, err
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
		"gracefulRestart", grEnabled(s.opts.GracefulRestart),
		"forwardingStateKept", s.opts.ForwardingStateKept && grEnabled(s.opts.GracefulRestart))
	return s.newRunner(srv, quiet, cancel), nil
}

// newGoBGP creates the GoBGP server and starts serving its API. GoBGP logs
// through the speaker's logger, with passwords scrubbed, quiet drops the
// noise of its own stop, and a hold timer's expiry reaches the owner
// (gone.go).
func (s *Speaker) newGoBGP(quiet *atomic.Bool) *server.BgpServer {
	glog := slog.New(&holdExpiryHandler{
		next: &redactingHandler{
			next: s.opts.Logger.Handler(), secrets: s.secrets, quiet: quiet, quietMsg: gobgpStopNoise,
		},
		report: s.inbox.holdExpired,
	}).With("component", "gobgp", "routerID", s.opts.RouterID.String())
	srv := server.NewBgpServer(server.LoggerOption(glog, nil))
	go srv.Serve()
	return srv
}

// startGoBGP applies the global settings: AS, router ID, listener.
func (s *Speaker) startGoBGP(ctx context.Context, srv *server.BgpServer) error {
	port := s.opts.ListenPort
	if port == 0 {
		port = -1 // GoBGP's "do not listen"
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:              s.opts.ASN,
		RouterId:         s.opts.RouterID.String(),
		ListenPort:       port,
		ListenAddresses:  s.opts.ListenAddresses,
		UseMultiplePaths: true,
	}}); err != nil {
		return fmt.Errorf("start GoBGP (listen port %d): %w", s.opts.ListenPort, err)
	}
	return nil
}

// newRunner is the owner goroutine's state for a started server: nothing
// applied yet, learned paths to be published once in sync.
func (s *Speaker) newRunner(srv *server.BgpServer, quiet *atomic.Bool, cancelWatch context.CancelFunc) *runner {
	return &runner{
		s:            s,
		srv:          srv,
		log:          s.log,
		quiet:        quiet,
		cancelWatch:  cancelWatch,
		ads:          map[netip.Prefix][]uint32{},
		peers:        map[netip.Addr]Peer{},
		status:       map[netip.Addr]*peerStatus{},
		reenableAt:   map[netip.Addr]time.Time{},
		syncTimer:    time.NewTimer(s.opts.InitialSyncTimeout),
		syncDeadline: time.Now().Add(s.opts.InitialSyncTimeout),
		restarting:   s.opts.ForwardingStateKept && grEnabled(s.opts.GracefulRestart),
		learnedDirty: true,
	}
}

// grEnabled reports whether graceful restart is on.
func grEnabled(gr *GROptions) bool {
	return gr != nil && gr.Enabled
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

// stop shuts GoBGP down. With graceful restart, GR-capable peers get no
// NOTIFICATION and keep our routes for the restart time; others get a Cease
// and withdraw them. BgpServer.Stop is still needed to end GoBGP's BFD
// goroutine; its own StopBgp call then fails and logs gobgpStopNoise, which
// is dropped.
func (r *runner) stop() {
	gr := grEnabled(r.s.opts.GracefulRestart)
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
