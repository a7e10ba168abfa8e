package speaker

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// plan is what to change to turn actual into desired.
type plan[K any] struct {
	Add, Replace, Remove []K
}

// empty reports whether nothing needs to change.
func (p plan[K]) empty() bool {
	return len(p.Add) == 0 && len(p.Replace) == 0 && len(p.Remove) == 0
}

// diffKeyed compares desired with actual by key: keys only in desired are
// added, keys in both whose values differ are replaced, keys only in actual
// are removed (actual minus desired). Each list is sorted by cmp so the plan
// is deterministic.
func diffKeyed[K comparable, V any](desired, actual map[K]V, equal func(a, b V) bool, cmp func(a, b K) int) plan[K] {
	var out plan[K]
	for k, d := range desired {
		a, ok := actual[k]
		switch {
		case !ok:
			out.Add = append(out.Add, k)
		case !equal(d, a):
			out.Replace = append(out.Replace, k)
		}
	}
	for k := range actual {
		if _, ok := desired[k]; !ok {
			out.Remove = append(out.Remove, k)
		}
	}
	slices.SortFunc(out.Add, cmp)
	slices.SortFunc(out.Replace, cmp)
	slices.SortFunc(out.Remove, cmp)
	return out
}

// diffPeers plans neighbour changes. Any change to a peer's session replaces
// it (delete then add); a change of its filters alone does not (the routing
// policy and the import rules apply those, see applyPolicy): GoBGP's UpdatePeer re-creates the neighbour for almost every
// change anyway (AS, password, transport, capabilities) and keeps old
// timers until the next session. The replaced session's paths are held
// meanwhile (held.go), so the dataplane does not see it.
func diffPeers(desired, actual map[netip.Addr]Peer) plan[netip.Addr] {
	return diffKeyed(desired, actual, func(a, b Peer) bool { return a.session() == b.session() }, netip.Addr.Compare)
}

// diffAdvertisements plans path changes; a prefix whose communities changed
// is re-added, which replaces the path in GoBGP's RIB in place.
func diffAdvertisements(desired, actual map[netip.Prefix]adAttrs) plan[netip.Prefix] {
	return diffKeyed(desired, actual, adAttrs.equal, netip.Prefix.Compare)
}

// peerLocal is the part of the speaker's configuration a neighbour needs.
type peerLocal struct {
	asn      uint32
	routerID netip.Addr
	gr       *GROptions // nil or validated
	// restarting claims the restart and forwarding-state bits for the
	// session; deferral bounds how long GoBGP holds our updates back while
	// it waits for End-of-RIB from every peer.
	restarting bool
	deferral   time.Duration
}

// deferralSeconds is a deferral in GoBGP's unit: whole seconds, rounded up,
// at least 1 (GoBGP replaces 0 with 360 s), at most its 16-bit field.
func deferralSeconds(d time.Duration) uint32 {
	secs := (d + time.Second - 1) / time.Second
	return uint32(min(max(secs, 1), math.MaxUint16))
}

// familyOf is the address family of an address: a prefix's, or the one
// a session to a peer at that address carries by default.
func familyOf(a netip.Addr) bgp.Family {
	if a.Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// sessionFamilies are the families a session carries: its address's, and
// with BothFamilies the other one after it. The other family's paths get
// the node's address of that family as next hop (Options.NextHop4/6), as
// the session's local address is of the wrong family.
func sessionFamilies(p Peer) []bgp.Family {
	own := familyOf(p.Address)
	if !p.BothFamilies {
		return []bgp.Family{own}
	}
	if own == bgp.RF_IPv4_UC {
		return []bgp.Family{own, bgp.RF_IPv6_UC}
	}
	return []bgp.Family{own, bgp.RF_IPv4_UC}
}

func apiFamily(f bgp.Family) *api.Family {
	return &api.Family{Afi: api.Family_Afi(f.Afi()), Safi: api.Family_Safi(f.Safi())}
}

// toAPIPeer translates a validated Peer into GoBGP's neighbour config.
func toAPIPeer(p Peer, local peerLocal) *api.Peer {
	grOn := local.gr != nil && local.gr.Enabled
	out := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
			Description:     p.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      uint64(cmp.Or(p.ConnectRetry, connectRetry).Seconds()),
			HoldTime:          uint64(p.HoldTime.Seconds()),
			KeepaliveInterval: uint64(p.KeepaliveTime.Seconds()),
		}},
		Transport: &api.Transport{
			PassiveMode: p.Passive,
			RemotePort:  uint32(p.Port),
		},
		Bfd: toAPIBFD(p.BFD),
	}
	for _, f := range sessionFamilies(p) {
		fam := apiFamily(f)
		out.AfiSafis = append(out.AfiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: fam, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: grOn}},
			PrefixLimits:      &api.PrefixLimit{Family: fam, MaxPrefixes: p.MaxPrefixes},
		})
	}
	if p.HoldTime != 0 && p.KeepaliveTime == 0 {
		out.Timers.Config.KeepaliveInterval = uint64((p.HoldTime / 3).Seconds())
	}
	if p.SourceAddress.IsValid() {
		out.Transport.LocalAddress = p.SourceAddress.String()
	}
	if p.TTLSecurity > 0 {
		out.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: 256 - uint32(p.TTLSecurity)}
	}
	if p.EBGPMultihop > 0 {
		out.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.EBGPMultihop)}
	}
	if p.RouteReflectorClient {
		id := p.RouteReflectorClusterID
		if id == "" {
			id = local.routerID.String()
		}
		out.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: id}
	}
	if grOn {
		out.GracefulRestart = &api.GracefulRestart{
			Enabled:     true,
			RestartTime: uint32(local.gr.RestartTime.Seconds()),
		}
		if local.restarting {
			// GoBGP sets R, and F for every family with MpGracefulRestart,
			// from LocalRestarting, and sends nothing to the peer until
			// End-of-RIB came from all peers or the deferral expired.
			out.GracefulRestart.LocalRestarting = true
			out.GracefulRestart.DeferralTime = deferralSeconds(local.deferral)
		}
	}
	return out
}

// crossFamilyNextHops is the next hop our paths of each family carry: the
// node's address of that family (Options.NextHop4/6) when some session of
// the other family carries it too (Peer.BothFamilies), where next hop self
// would be an address of the wrong family; otherwise none (next hop self,
// each session's local address, as always).
func crossFamilyNextHops(peers map[netip.Addr]Peer, opts Options) map[bgp.Family]netip.Addr {
	out := map[bgp.Family]netip.Addr{}
	for a, p := range peers {
		for _, f := range sessionFamilies(p)[1:] {
			if nh := opts.nextHop(familyAddr(f)); nh.IsValid() && f != familyOf(a) {
				out[f] = nh
			}
		}
	}
	return out
}

// familyAddr is an address of family f, for asking per-family questions.
func familyAddr(f bgp.Family) netip.Addr {
	if f == bgp.RF_IPv4_UC {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}
