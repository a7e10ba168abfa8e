package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Retry backoff after a failed reconcile.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// reconcile converges GoBGP towards the desired state: policy first (so a
// new peer or path is never judged by a stale policy), then our paths, then
// the peers, which are only opened once SetAdvertisements was called.
func (r *runner) reconcile() {
	d := r.s.snapshot()
	r.last = d
	if err := r.applyGlobal(d); err != nil {
		r.scheduleRetry(err)
		return
	}
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

// scheduleRetry arms the next reconcile after a failure, waiting from
// minBackoff, doubled on each failure, up to maxBackoff; a success disarms
// it and resets the wait.
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

// retryC is the pending retry's channel; nil (never ready) when no
// retry is pending.
func (r *runner) retryC() <-chan time.Time {
	if r.retry == nil {
		return nil
	}
	return r.retry.C
}

// applyPolicy replaces the routing policy when its inputs changed, then has
// GoBGP re-evaluate what it already holds: soft reset in re-runs the import
// policy over every received path (including ones rejected before), from
// every peer when the pools changed, else from the peers whose import
// rules changed; soft reset out re-runs the export policy and withdraws
// what it now rejects, towards every peer when reflection changed, else
// only towards the peers whose export filters changed their verdict on
// what we advertise or whose export rules for reflected routes changed.
func (r *runner) applyPolicy(d desired) error {
	in := policyInputFor(d.pools, d.peers, r.global.ASN, adPrefixes(d.ads, r.ads))
	if in.equal(r.policy) {
		return nil
	}
	ctx := context.Background()
	if err := r.srv.SetPolicies(ctx, buildPolicy(in)); err != nil {
		return fmt.Errorf("set routing policy: %w", err)
	}
	importChanged := !slices.Equal(in.pools, r.policy.pools)
	exportChanged := !slices.Equal(in.reflectTo, r.policy.reflectTo)
	filtered := exportChangedFor(r.policy, in, r.ads)
	reimport := rulesChangedFor(r.policy.importRules, in.importRules)
	r.policy = in
	r.log.Info("routing policy updated", describePolicy(in)...)
	if len(r.peers) == 0 {
		return nil
	}
	var errs []error
	if importChanged {
		errs = append(errs, r.softReset(ctx, "all", api.ResetPeerRequest_DIRECTION_IN))
	} else {
		errs = append(errs, r.softResetPeers(ctx, reimport, api.ResetPeerRequest_DIRECTION_IN, "import filter changed: judging the peer's routes again")...)
	}
	if exportChanged {
		errs = append(errs, r.softReset(ctx, "all", api.ResetPeerRequest_DIRECTION_OUT))
	} else {
		errs = append(errs, r.softResetPeers(ctx, filtered, api.ResetPeerRequest_DIRECTION_OUT, "export filter changed: re-sending to the peer")...)
	}
	return errors.Join(errs...)
}

// softResetPeers soft resets those of addrs that GoBGP has (a peer still
// to be added is judged by the new policy anyway), saying why.
func (r *runner) softResetPeers(ctx context.Context, addrs []netip.Addr, dir api.ResetPeerRequest_Direction, why string) []error {
	var errs []error
	for _, a := range addrs {
		if p, ok := r.peers[a]; ok {
			r.log.Info(why, "peer", p.displayName(), "address", a.String(), "softReset", dir.String())
			errs = append(errs, r.softReset(ctx, a.String(), dir))
		}
	}
	return errs
}

// softReset has GoBGP re-run a policy for address ("all": every peer).
func (r *runner) softReset(ctx context.Context, address string, dir api.ResetPeerRequest_Direction) error {
	what := "re-apply import policy (soft reset in)"
	if dir == api.ResetPeerRequest_DIRECTION_OUT {
		what = "re-apply export policy (soft reset out)"
	}
	if err := r.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: address, Soft: true, Direction: dir}); err != nil {
		return fmt.Errorf("%s for %s: %w", what, address, err)
	}
	return nil
}

// applyAdvertisements adds, re-adds and withdraws our locally originated
// paths.
func (r *runner) applyAdvertisements(d desired) []error {
	nextHops := crossFamilyNextHops(d.peers, r.s.opts)
	pl := diffAdvertisements(d.ads, r.ads)
	// A path whose next hop changes is re-added, which replaces it.
	for p := range r.ads {
		fam := familyOf(p.Addr())
		if _, keep := d.ads[p]; keep && nextHops[fam] != r.adNextHops[fam] && !slices.Contains(pl.Replace, p) {
			pl.Replace = append(pl.Replace, p)
		}
	}
	r.adNextHops = nextHops
	var errs []error
	for _, p := range slices.Concat(pl.Add, pl.Replace) {
		path, err := advertisedPath(p, d.ads[p], nextHops[familyOf(p.Addr())])
		if err == nil {
			_, err = r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			// Forgotten, so the next try re-adds it whatever changed.
			delete(r.ads, p)
			errs = append(errs, fmt.Errorf("advertise %s: %w", p, err))
			continue
		}
		r.ads[p] = d.ads[p]
		r.log.Info("advertising prefix", "prefix", p.String(), "communities", d.ads[p].communities, "largeCommunities", d.ads[p].large)
	}
	for _, p := range pl.Remove {
		path, err := advertisedPath(p, adAttrs{}, nextHops[familyOf(p.Addr())])
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
// is nh, which GoBGP sends unchanged on every session; invalid means
// unspecified, which GoBGP replaces per session with the session's local
// address: next hop self.
func advertisedPath(p netip.Prefix, at adAttrs, nh netip.Addr) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, fmt.Errorf("encode prefix: %w", err)
	}
	fam := familyOf(p.Addr())
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if fam == bgp.RF_IPv4_UC {
		if !nh.IsValid() {
			nh = netip.IPv4Unspecified()
		}
		nha, err := bgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, fmt.Errorf("encode next hop: %w", err)
		}
		attrs = append(attrs, nha)
	} else {
		if !nh.IsValid() {
			nh = netip.IPv6Unspecified()
		}
		mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, fmt.Errorf("encode next hop: %w", err)
		}
		attrs = append(attrs, mp)
	}
	if len(at.communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(at.communities))
	}
	if len(at.large) > 0 {
		lc := make([]*bgp.LargeCommunity, len(at.large))
		for i, c := range at.large {
			lc[i] = bgp.NewLargeCommunity(c.GlobalAdmin, c.LocalData1, c.LocalData2)
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lc))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs}, nil
}
