package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// BFDSession is one BFD session as a router sees it.
type BFDSession struct {
	Peer netip.Addr `json:"peer"`
	// Local is the router's source address of the session, where the
	// router says (FRR); invalid otherwise (BIRD).
	Local netip.Addr `json:"local,omitzero"`
	// State is the router's word for it, lower case: up, down, init,
	// admin-down.
	State string `json:"state"`
	// Detail is the router's extra word (FRR: diagnostics and uptime).
	Detail string `json:"detail,omitempty"`
}

// Up reports whether the session is up.
func (s BFDSession) Up() bool { return s.State == "up" }

// RouterBFD lists the BFD sessions of the router named name.
func (l *Lab) RouterBFD(ctx context.Context, name string) ([]BFDSession, error) {
	for _, r := range l.st.Plan.Routers() {
		if r.Name == name {
			return l.drv.bfdSessions(ctx, r, routerDir(l.st.Dir, r.Name))
		}
	}
	return nil, fmt.Errorf("no router %q in the lab", name)
}

// WaitBFDUp waits until every router's BFD session with each peer that
// runs BFD is up, from the address the router peers from.
//
// FRR's bgpd registers a BFD session for a neighbour before it knows the
// session's source address and interface (0.0.0.0, none), and registers
// it again with both once the BGP session is Established: bfdd deletes
// the first BFD session and starts a new one with a new discriminator.
// The node's GoBGP, bound to the old one, sees it go down and resets the
// BGP session it just established (then waits its idle hold time, 30 s,
// before connecting again). The new session can come up only after that
// reset: so "up from the router's address" means the reset, if any, is
// behind, and a BGP session Established after it stays up. A lab that
// converged inside that window (BGP Established, the reset not yet come)
// looks settled and is not.
func (l *Lab) WaitBFDUp(ctx context.Context, timeout time.Duration) error {
	return until(ctx, timeout, 200*time.Millisecond, "the routers' BFD sessions to come up", func(ctx context.Context) (bool, error) {
		for _, r := range l.st.Plan.Routers() {
			sessions, err := l.drv.bfdSessions(ctx, r, routerDir(l.st.Dir, r.Name))
			if err != nil {
				return false, err
			}
			for _, p := range r.Peers {
				if p.BFD && !bfdUpFrom(sessions, p) {
					return false, fmt.Errorf("BFD %s -> %s (%s) is not up from %s: %v", r.Name, p.Name, p.Addr, p.Local, sessions)
				}
			}
		}
		return true, nil
	})
}

// waitSettled is Up's last wait: converged and, in a lab that runs BFD,
// BFD up at the routers and converged again after it (WaitBFDUp says
// why). A BFD lab gets a minute more: a node's first session with an FRR
// ToR is reset once by BFD (WaitBFDUp), and GoBGP (v4.8.0) may reset the
// next one as soon as it is up: a BFD session that goes down after its
// BGP session already did (the peer's Cease came first) leaves GoBGP's
// reset queued until the next session is Established. Each reset costs
// GoBGP's 30 s idle hold.
func (l *Lab) waitSettled(ctx context.Context, timeout time.Duration) error {
	if !l.st.Plan.BGP.BFD {
		return l.WaitConverged(ctx, timeout)
	}
	return l.WaitSettled(ctx, timeout+time.Minute, true)
}

// bfdUpFrom reports whether sessions hold an up session with peer p from
// the address the router peers with it from (when the router says).
func bfdUpFrom(sessions []BFDSession, p Peer) bool {
	for _, s := range sessions {
		if s.Peer == p.Addr && s.Up() && (!s.Local.IsValid() || s.Local == p.Local) {
			return true
		}
	}
	return false
}

func (d frrDriver) bfdSessions(ctx context.Context, rp RouterPlan, dir string) ([]BFDSession, error) {
	if !frrUsesBFD(rp) {
		return nil, nil // no bfdd to ask
	}
	out, err := run(ctx, append(d.cli(rp, dir), "-c", "show bfd peers json")...)
	if err != nil {
		return nil, fmt.Errorf("ask FRR on %s for its BFD sessions: %w", rp.Name, err)
	}
	return parseFRRBFD(out)
}

// parseFRRBFD reads `show bfd peers json`.
func parseFRRBFD(out []byte) ([]BFDSession, error) {
	var peers []struct {
		Peer       string `json:"peer"`
		Local      string `json:"local"`
		Status     string `json:"status"`
		Uptime     int    `json:"uptime"`
		Downtime   int    `json:"downtime"`
		Diagnostic string `json:"diagnostic"`
		RemoteDiag string `json:"remote-diagnostic"`
		ID         uint32 `json:"id"`
		RemoteID   uint32 `json:"remote-id"`
	}
	if err := json.Unmarshal(out, &peers); err != nil {
		return nil, fmt.Errorf("decode FRR's BFD sessions: %w: %s", err, out)
	}
	var sessions []BFDSession
	for _, p := range peers {
		peer, err := netip.ParseAddr(p.Peer)
		if err != nil {
			return nil, fmt.Errorf("FRR BFD session with peer %q: %w", p.Peer, err)
		}
		s := BFDSession{Peer: peer, State: p.Status,
			Detail: fmt.Sprintf("id %d, remote id %d, up %ds, down %ds, diagnostic %s, remote diagnostic %s",
				p.ID, p.RemoteID, p.Uptime, p.Downtime, p.Diagnostic, p.RemoteDiag)}
		// FRR says 0.0.0.0 (or nothing) before bgpd knows the source: an
		// unspecified address, which is nobody's source.
		s.Local = netip.IPv4Unspecified()
		if local, err := netip.ParseAddr(p.Local); err == nil {
			s.Local = local
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}

func (d birdDriver) bfdSessions(ctx context.Context, rp RouterPlan, dir string) ([]BFDSession, error) {
	if birdBFD(rp) == "" {
		return nil, nil // no bfd protocol to ask
	}
	out, err := run(ctx, append(d.cli(rp, dir), "show", "bfd", "sessions")...)
	if err != nil {
		return nil, fmt.Errorf("ask BIRD on %s for its BFD sessions: %w", rp.Name, err)
	}
	return parseBirdBFD(string(out)), nil
}

// parseBirdBFD reads `birdc show bfd sessions`: a line per session,
// "IP address, Interface, State, Since, Interval, Timeout".
func parseBirdBFD(out string) []BFDSession {
	var sessions []BFDSession
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		peer, err := netip.ParseAddr(f[0])
		if err != nil {
			continue // banner, protocol name, header
		}
		sessions = append(sessions, BFDSession{Peer: peer, State: strings.ToLower(f[2]), Detail: strings.Join(f[1:], " ")})
	}
	return sessions
}

// bfdSessions of the gobgpd ToR: none, the lab refuses BFD with it
// (gobgpdSupports).
func (gobgpdDriver) bfdSessions(context.Context, RouterPlan, string) ([]BFDSession, error) {
	return nil, nil
}
