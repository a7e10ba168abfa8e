package speaker

import (
	"context"
	"log/slog"
	"net/netip"
)

// A peer that is gone is not a peer restarting. GoBGP v4.8.0 treats a
// hold-timer expiry on a session that negotiated graceful restart as the
// peer restarting (RFC 8538 section 4, GoBGP issue 2174): it keeps the
// peer's paths, stale, for the peer's restart time on top of the hold time
// (210 s with the defaults). A peer whose agent restarts closes its TCP
// connection at once (the kernel does it for a killed process); one that
// goes silent until the hold timer expires has lost its link, its node or
// its power, and traffic sent to it is lost. So on hold-timer expiry the
// speaker drops the peer's paths (the neighbour is deleted from GoBGP and
// added again, which also withdraws them from route-reflector clients).
// A session torn down by BFD needs nothing of this: GoBGP resets it with a
// Cease, and drops the paths itself.
//
// GoBGP reports the expiry to nobody but its log: its peer event says
// "graceful restart", as for a closed connection. holdExpiryHandler sits in
// front of GoBGP's log handler and reports the record; the test
// TestHoldTimerExpiryDropsStalePaths pins that record to the GoBGP version.

// holdTimerExpiredMsg is GoBGP's log message (fsm.go, established state).
const holdTimerExpiredMsg = "hold timer expired"

// holdExpiryHandler reports GoBGP's hold-timer-expiry records, whatever
// the log level, and passes every record on to next if next wants it.
type holdExpiryHandler struct {
	next slog.Handler
	// peer is the "Key" attribute of GoBGP's per-peer loggers: the
	// neighbour address.
	peer   string
	report func(netip.Addr)
}

func (h *holdExpiryHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *holdExpiryHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == holdTimerExpiredMsg {
		if a, err := netip.ParseAddr(h.peer); err == nil {
			h.report(a.Unmap())
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *holdExpiryHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if a.Key == "Key" {
			c.peer = a.Value.String()
		}
	}
	c.next = h.next.WithAttrs(attrs)
	return &c
}

func (h *holdExpiryHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// onHoldExpired drops the paths of a peer whose hold timer expired while
// graceful restart would have kept them: the neighbour is deleted and
// added again with the same settings, keeping its flap count.
func (r *runner) onHoldExpired(a netip.Addr) {
	st, p := r.status[a], r.peers[a]
	if st == nil || st.state != StateEstablished || !st.grNegotiated {
		// Without graceful restart GoBGP drops the paths itself.
		return
	}
	flaps := st.flaps + 1
	r.log.Warn("BGP peer gone: hold timer expired; its routes are withdrawn now, not kept as a restarting peer's",
		"peer", p.displayName(), "address", a.String(), "holdTime", effectiveHoldTime(p))
	r.removePeer(a)
	local := r.peerLocal()
	local.restarting = false // a session of its own now, not the restart's
	if err := r.addPeer(a, p, local); err != nil {
		r.log.Error("could not add back the peer whose hold timer expired", "peer", p.displayName(), "err", err)
	}
	if st := r.status[a]; st != nil {
		st.flaps = flaps
		st.lastError = holdTimerExpiredMsg + ": the peer is gone, its routes withdrawn"
		st.holdExpired = true
	}
	r.learnedDirty = true
}
