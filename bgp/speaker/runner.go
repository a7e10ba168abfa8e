package speaker

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// runner is the state owned by the goroutine running Run: the GoBGP server
// and what has been applied to it. Nothing else touches it.
type runner struct {
	s *Speaker
	// instance is the running GoBGP server; its srv is nil after a failed
	// restart, until the retry starts one.
	instance
	// global are the settings the server runs with.
	global Global
	log    *slog.Logger

	policy policyInput
	ads    map[netip.Prefix]adAttrs
	// adNextHops is the next hop our paths of each family carry
	// (crossFamilyNextHops); none means unspecified, next hop self.
	adNextHops map[bgp.Family]netip.Addr
	peers      map[netip.Addr]Peer
	status     map[netip.Addr]*peerStatus
	// last is the desired state seen by the latest reconcile.
	last desired

	backoff time.Duration
	retry   *time.Timer

	// heldDown holds the peers removed for exceeding their maximum
	// prefixes and when to add them again (maxprefix.go).
	heldDown map[netip.Addr]time.Time
	// carriedFlaps are flap counts of sessions a server restart took down,
	// for their peers when they are added again.
	carriedFlaps map[netip.Addr]uint64
	// held are the paths of sessions being re-created (held.go).
	held      map[netip.Addr]heldPaths
	heldTimer *time.Timer
	reenable  *time.Timer

	synced       bool
	syncTimer    *time.Timer
	syncDeadline time.Time
	// restarting: peers added now belong to the restart this speaker
	// started from and claim forwarding state (Options.ForwardingStateKept).
	// It ends once the initial sync is over and the restart's peers have
	// been added.
	restarting bool

	// staleTimer fires when a peer's MaxRestartTime ends (staletime.go).
	staleTimer *time.Timer

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
		case <-r.staleC():
			r.staleTimer = nil
			r.learnedDirty = true
			r.armStale()
		case <-r.heldC():
			r.heldTimer = nil
			r.learnedDirty = true
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
