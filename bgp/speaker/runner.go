package speaker

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v4/pkg/server"
)

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

	// reenableAt holds the sessions shut for exceeding their maximum
	// prefixes and when to enable them again (maxprefix.go).
	reenableAt map[netip.Addr]time.Time
	reenable   *time.Timer

	synced       bool
	syncTimer    *time.Timer
	syncDeadline time.Time
	// restarting: peers added now belong to the restart this speaker
	// started from and claim forwarding state (Options.ForwardingStateKept).
	// It ends once the initial sync is over and the restart's peers have
	// been added.
	restarting bool

	learnedDirty  bool
	published     []Path
	publishedOnce bool
	// accepted counts, per peer, the paths in the RIB the import policy let
	// in (GoBGP's own "accepted" counter ignores the policy).
	accepted map[netip.Addr]uint64
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
		case <-r.reenableC():
			r.reenable = nil
			r.reenableDue()
		case <-r.s.inbox.ready:
			r.handleEvents()
		case reply := <-r.s.stateReq:
			reply <- r.peerStates()
		case <-r.syncTimer.C:
			if !r.synced {
				r.log.Warn("initial sync timed out: publishing learned paths without End-of-RIB from every peer",
					"timeout", r.s.opts.InitialSyncTimeout)
				r.synced, r.learnedDirty = true, true
				r.endRestartIfPeersAdded()
			}
		}
		if r.learnedDirty {
			r.publishLearned()
		}
	}
}
