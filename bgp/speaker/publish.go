package speaker

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// publishLearned re-reads the RIB and, when the selection changed, replaces
// whatever is waiting in the Learned channel with it.
func (r *runner) publishLearned() {
	r.learnedDirty = false
	cands, err := r.candidates()
	if err != nil {
		r.log.Error("could not read the RIB; learned paths not updated", "err", err)
		return
	}
	f := learnedFilter{localASN: r.global.ASN, pools: r.last.pools, holdings: r.last.holdings, peers: r.last.peers, own: r.last.ads, staleDead: r.backWithoutGR()}
	kept, err := r.keptOutByRules()
	if err != nil {
		r.log.Warn("could not read what import filters keep out; RefusedPaths may miss it", "err", err)
	}
	var refused refusedSet
	r.accepted, refused.paths, refused.total = judgeImports(slices.Concat(cands, kept), f, maxRefusedListed)
	r.s.refused.Store(&refused)
	if !r.synced {
		return
	}
	cands = append(cands, r.heldCandidates()...)
	paths := selectLearned(cands, f)
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
	r.staleExpired(time.Now(), out)
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
	if r.srv == nil {
		return nil, errors.New("no BGP server running: its restart failed and is retried")
	}
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

// keptOutByRules lists the paths that peers with import rules sent and the
// rules refuse. GoBGP's import policy keeps them out of the RIB, so only
// the peer's Adj-RIB-In still has them; they are read for RefusedPaths.
func (r *runner) keptOutByRules() ([]candidate, error) {
	var out []candidate
	var errs []error
	for a, p := range r.peers {
		rules := r.last.peers[a].importRules()
		if len(rules) == 0 {
			continue
		}
		for _, fam := range sessionFamilies(p) {
			err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: a.String(), Family: fam},
				func(_ bgp.NLRI, paths []*apiutil.Path) {
					for _, ap := range paths {
						if c, ok := candidateFromAPI(ap); ok && filterRefusal(rules, c.Prefix) != "" {
							out = append(out, c)
						}
					}
				})
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s paths received from %s: %w", fam, a, err))
			}
		}
	}
	return out, errors.Join(errs...)
}
