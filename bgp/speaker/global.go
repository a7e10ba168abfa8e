package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// applyGlobal brings the server's global settings to d.global. GoBGP cannot
// change the AS number or the listener of a running server, so a change of
// either restarts it: this speaker's sessions are re-established, and with
// graceful restart both sides keep their routes meanwhile (the peers ours,
// felix the learned ones), as for an agent restart. Graceful restart is a
// capability of each session's OPEN: a change of it alone re-creates every
// session, without a restart. Nothing else is touched: the max-prefix
// restart time alone changes no session.
func (r *runner) applyGlobal(d desired) error {
	g := d.global
	switch {
	case r.srv != nil && g.sessionSettings() == r.global.sessionSettings():
		r.global = g // the max-prefix restart time, if anything
		return nil
	case r.srv != nil && g.ASN == r.global.ASN && g.ListenPort == r.global.ListenPort:
		r.log.Info("graceful-restart settings changed: re-creating every session",
			"gracefulRestart", g.GracefulRestart.Enabled, "restartTime", g.GracefulRestart.RestartTime)
		for a := range r.peers {
			r.holdPaths(a)
			r.carryFlaps(a)
			r.removePeer(a)
		}
		r.global = g
		return nil
	}
	return r.restartServer(g)
}

// sessionSettings are the settings that the server or its sessions run
// with: g less the max-prefix restart time, which only the runner reads.
func (g Global) sessionSettings() Global {
	g.MaxPrefixRestart = 0
	return g
}

// maxPrefixRestart is how long a session shut for exceeding its maximum
// prefixes stays down.
func (r *runner) maxPrefixRestart() time.Duration {
	if r.global.MaxPrefixRestart > 0 {
		return r.global.MaxPrefixRestart
	}
	return r.s.opts.MaxPrefixRestart
}

// restartServer replaces the GoBGP server with one running g. The node kept
// forwarding throughout (felix never left the kernel), so the new sessions
// claim forwarding state and learned routes are published again only once
// the new initial sync is done.
func (r *runner) restartServer(g Global) error {
	old := r.global
	r.log.Info("restarting the BGP server: the AS number or listen port changed; this node's sessions are re-established",
		"asn", g.ASN, "previousASN", old.ASN, "listenPort", g.ListenPort, "previousListenPort", old.ListenPort,
		"gracefulRestart", old.GracefulRestart.Enabled)
	flaps := r.flapsAcrossRestart()
	r.stopServer(old.GracefulRestart.Enabled)
	r.s.inbox.take() // the old server's events
	sv, err := r.s.startServer(context.Background(), g)
	if err != nil {
		// r.srv stays nil: the retry starts one.
		return fmt.Errorf("restart BGP server (AS %d, listen port %d): %w", g.ASN, g.ListenPort, err)
	}
	r.instance, r.global = sv, g
	r.forgetApplied(true)
	r.carriedFlaps = flaps
	return nil
}

// flapsAcrossRestart is every session's flap count, with the restart about
// to take established ones down counted.
func (r *runner) flapsAcrossRestart() map[netip.Addr]uint64 {
	for a := range r.status {
		r.carryFlaps(a)
	}
	return r.carriedFlaps
}
