package peering

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

// DefaultASN is the cluster AS when no BGPConfiguration sets one.
const DefaultASN = 64512

// DefaultMaxPrefixes is the prefix limit of every session whose
// BGPConfiguration and BGPPeer set none. Sized from the most a legitimate
// peer sends: a route reflector sends every block of the cluster, and a
// 5,000-node cluster (Kubernetes' largest) with /26 blocks and 110 pods a
// node has about 10,000; twice that leaves room for borrowed addresses
// and Service /32s. A node of the mesh sends far fewer (its own blocks,
// borrowed addresses, Service addresses). It bounds what a flooding peer
// costs: 100,000 held prefixes cost the speaker about 120 MiB.
const DefaultMaxPrefixes = 20000

// maxPrefixes is the cluster's default prefix limit per session.
func maxPrefixes(cfg *v1.BGPConfiguration) uint32 {
	if cfg != nil && cfg.Spec.MaxPrefixes != nil && *cfg.Spec.MaxPrefixes > 0 {
		return uint32(*cfg.Spec.MaxPrefixes)
	}
	return DefaultMaxPrefixes
}

// Secrets resolves a password reference. Errors must not contain the
// secret's value. An error wrapping ErrPasswordUnavailable means the
// password cannot be read for now; any other means it is gone.
type Secrets func(ref v1.SecretKeyRef) (string, error)

// ErrPasswordUnavailable marks a password that cannot be read for now (its
// Secret not read yet, the API server slow or failing), as opposed to one
// whose Secret or key is gone. It never changes a session: the sessions it
// is for keep their previous settings (PeersInput.Previous), and a session
// that has none is not started without its password.
var ErrPasswordUnavailable = errors.New("password cannot be read for now")

// SecretNames lists, sorted and once each, the Secrets that passwords in
// config (which may be nil) and peers refer to: the only ones Peers may
// ask Secrets for.
func SecretNames(config *v1.BGPConfiguration, peers []v1.BGPPeer) []string {
	var out []string
	add := func(pw *v1.BGPPassword) {
		if pw != nil && pw.SecretKeyRef != nil && pw.SecretKeyRef.Name != "" {
			out = append(out, pw.SecretKeyRef.Name)
		}
	}
	if config != nil {
		add(config.Spec.NodeMeshPassword)
	}
	for i := range peers {
		add(peers[i].Spec.Password)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// PeersInput is everything that decides one node's peers.
type PeersInput struct {
	Self  NodeInfo
	Nodes []NodeInfo
	// Config is the cluster's "default" BGPConfiguration; nil means all
	// defaults (mesh on).
	Config *v1.BGPConfiguration
	Peers  []v1.BGPPeer
	// Filters are every BGPFilter; the peers' filters name them.
	Filters []v1.BGPFilter
	// Previous are the peers Peers returned last time: a session whose
	// password is unavailable keeps its settings from there.
	Previous []speaker.Peer
}

// Peers computes the node's BGP neighbours: the full mesh to every other
// node (unless disabled), then each BGPPeer that selects this node, to a
// router (peerIP) or to the nodes its peerSelector picks. An explicit
// BGPPeer replaces a mesh session to the same address. Problems with one
// object (a bad selector, a missing secret) are returned and that object is
// skipped; the rest still applies. A password that is unavailable for now
// (ErrPasswordUnavailable) is returned as a problem too, but its sessions
// stay as in in.Previous. A BGPPeer's filters apply to every session it
// makes; one it names that is missing or invalid is a problem, and those
// sessions refuse every prefix meanwhile (peerFilters). The result is
// sorted by address.
func Peers(in PeersInput, secrets Secrets) ([]speaker.Peer, []error) {
	var errs []error
	filters := map[string]*v1.BGPFilter{}
	for i := range in.Filters {
		filters[in.Filters[i].Name] = &in.Filters[i]
	}
	byAddr := map[netip.Addr]speaker.Peer{}
	// A node has a session per family of its addresses, under one name.
	type key struct {
		name string
		addr netip.Addr
	}
	previous := map[key]speaker.Peer{}
	for _, p := range in.Previous {
		previous[key{p.Name, p.Address}] = p
	}
	if meshEnabled(in.Config) {
		meshPassword, held := "", false
		if in.Config != nil && in.Config.Spec.NodeMeshPassword != nil {
			pw, err := resolve(secrets, in.Config.Spec.NodeMeshPassword)
			if err != nil {
				errs = append(errs, fmt.Errorf("node mesh password: %w", err))
			}
			meshPassword, held = pw, errors.Is(err, ErrPasswordUnavailable)
		}
		for _, n := range in.Nodes {
			if n.Name == in.Self.Name {
				continue
			}
			for _, addr := range sharedFamilies(in.Self, n) {
				p := speaker.Peer{Name: "mesh:" + n.Name, Address: addr, ASN: n.ASN, Port: meshPort(n.Port), Password: meshPassword, MaxPrefixes: maxPrefixes(in.Config)}
				p.HoldTime, p.BFD = meshTimers(in.Config)
				p.Passive, p.ConnectRetry = meshListens(in.Self.AddrOf(addr), addr), nodeConnectRetry
				if held {
					var ok bool
					if p, ok = previous[key{p.Name, p.Address}]; !ok {
						continue
					}
				}
				byAddr[p.Address] = p
			}
		}
	}
	for i := range in.Peers {
		p := &in.Peers[i]
		selected, err := selectsNode(p, in.Self)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !selected {
			continue
		}
		peers, err := expand(p, in, secrets)
		if errors.Is(err, ErrPasswordUnavailable) {
			peers = heldPeers(p.Name, in.Previous)
		}
		if err != nil {
			errs = append(errs, err)
		}
		f, err := peerFilters(p, filters)
		if err != nil {
			errs = append(errs, err)
		}
		for _, sp := range peers {
			sp.Filters = f
			byAddr[sp.Address] = sp
		}
	}
	out := make([]speaker.Peer, 0, len(byAddr))
	for _, p := range byAddr {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Less(out[j].Address) })
	return out, errs
}

// heldPeers are the sessions a BGPPeer had last time (see expand for their
// names).
func heldPeers(name string, previous []speaker.Peer) []speaker.Peer {
	var out []speaker.Peer
	for _, p := range previous {
		if p.Name == "peer:"+name || strings.HasPrefix(p.Name, "peer:"+name+":") {
			out = append(out, p)
		}
	}
	return out
}

// meshTimers are the hold time and BFD of node-to-node sessions.
func meshTimers(cfg *v1.BGPConfiguration) (time.Duration, speaker.BFD) {
	if cfg == nil {
		return 0, speaker.BFD{}
	}
	var hold time.Duration
	if cfg.Spec.NodeMeshHoldTime != nil {
		hold = cfg.Spec.NodeMeshHoldTime.Duration
	}
	return hold, bfd(cfg.Spec.NodeMeshBFD)
}

// bfd is the speaker's BFD for a BFD field; off unless enabled. The API
// server bounds the values (interval 50ms to 10s, multiplier 2 to 255);
// a multiplier beyond a byte is clamped rather than wrapped.
func bfd(b *v1.BFD) speaker.BFD {
	if b == nil || !b.Enabled {
		return speaker.BFD{}
	}
	out := speaker.BFD{Enabled: true, Multiplier: uint8(min(max(b.Multiplier, 0), 255))}
	if b.Interval != nil {
		out.Interval = b.Interval.Duration
	}
	return out
}

// meshListens reports whether this end of a session between two nodes
// (the mesh, or a BGPPeer's peerSelector: reflectors and their clients)
// only listens: of each pair, the one with the lower address dials and
// the other waits. Both ends dialling at once is a connection collision
// (RFC 4271 section 6.8), and GoBGP's resolution can leave the two ends
// in OpenConfirm on different connections: seen after a cut link, when
// both ends' hold timers expired together and both re-added the peer,
// the session cycled for minutes instead of coming back. With one
// dialler there is one connection and nothing to resolve; the dialler
// retries every nodeConnectRetry. Sessions to routers stay active:
// their collision handling is their own.
func meshListens(self, peer netip.Addr) bool {
	return self.IsValid() && self.Compare(peer) > 0
}

// nodeConnectRetry is how soon the dialling end of a session between two
// nodes tries again after a failed connection: GoBGP's floor, in place of
// the 5 s of other sessions. Nodes start together (a cluster's first
// start, a DaemonSet's rollout), so the dialler's first try often finds
// the other end not yet listening, or not yet knowing it (GoBGP refuses
// connections from peers it was not given); every session then waited
// for the next try. In a 20-node lab, at load 30, sessions came up a
// median 2.1 s and at worst 5.0 s after both ends' speakers had
// started, the last of them 11.1 s after the first agent started. Only
// the dialler tries, at most one connection every 2 s per peer.
const nodeConnectRetry = 2 * time.Second

// meshPort is the port to dial a node on: 0 (the speaker's 179) unless the
// node listens elsewhere.
func meshPort(p uint16) uint16 {
	if p == DefaultListenPort {
		return 0
	}
	return p
}

func meshEnabled(cfg *v1.BGPConfiguration) bool {
	return cfg == nil || cfg.Spec.NodeToNodeMeshEnabled == nil || *cfg.Spec.NodeToNodeMeshEnabled
}

// selectsNode reports whether a BGPPeer applies to the node: named by
// node, matched by nodeSelector, or global when both are empty.
func selectsNode(p *v1.BGPPeer, self NodeInfo) (bool, error) {
	switch {
	case p.Spec.Node != "":
		return p.Spec.Node == self.Name, nil
	case p.Spec.NodeSelector != "":
		sel, err := labels.Parse(p.Spec.NodeSelector)
		if err != nil {
			return false, fmt.Errorf("BGPPeer %s nodeSelector %q: %w", p.Name, p.Spec.NodeSelector, err)
		}
		return sel.Matches(labels.Set(self.Labels)), nil
	default:
		return true, nil
	}
}

func expand(p *v1.BGPPeer, in PeersInput, secrets Secrets) ([]speaker.Peer, error) {
	base, err := sessionSettings(p, secrets)
	if base.MaxPrefixes == 0 {
		base.MaxPrefixes = maxPrefixes(in.Config)
	}
	if err != nil {
		return nil, err
	}
	if p.Spec.PeerIP != "" {
		addr, err := netip.ParseAddr(p.Spec.PeerIP)
		if err != nil {
			return nil, fmt.Errorf("BGPPeer %s peerIP: %w", p.Name, err)
		}
		if p.Spec.ASNumber < 1 || p.Spec.ASNumber > 1<<32-1 {
			return nil, fmt.Errorf("BGPPeer %s asNumber %d out of range", p.Name, p.Spec.ASNumber)
		}
		if slices.Contains(in.Self.Addrs(), addr.Unmap()) {
			// A session to ourselves never comes up and only spins.
			return nil, fmt.Errorf("BGPPeer %s peerIP %s is this node's own address", p.Name, addr)
		}
		base.Name, base.Address, base.ASN = "peer:"+p.Name, addr, uint32(p.Spec.ASNumber)
		base.SourceAddress = source(p, in.Self, addr)
		return []speaker.Peer{base}, nil
	}
	sel, err := labels.Parse(p.Spec.PeerSelector)
	if err != nil {
		return nil, fmt.Errorf("BGPPeer %s peerSelector %q: %w", p.Name, p.Spec.PeerSelector, err)
	}
	var out []speaker.Peer
	for _, n := range in.Nodes {
		if n.Name == in.Self.Name || !sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		addrs := sharedFamilies(in.Self, n)
		if base.BothFamilies && len(addrs) > 1 {
			addrs = addrs[:1] // one session carries both families
		}
		for _, addr := range addrs {
			sp := base
			sp.Name, sp.Address, sp.ASN = "peer:"+p.Name+":"+n.Name, addr, n.ASN
			if p.Spec.Port == 0 {
				sp.Port = meshPort(n.Port) // the port that node listens on
			}
			sp.SourceAddress = source(p, in.Self, addr)
			// Between two nodes, one dials: the same rule as the mesh.
			sp.Passive = sp.Passive || meshListens(in.Self.AddrOf(addr), addr)
			sp.ConnectRetry = nodeConnectRetry
			// A reflector treats non-reflector nodes in its AS as clients.
			if in.Self.RRClusterID != "" && n.RRClusterID == "" && n.ASN == in.Self.ASN {
				sp.RouteReflectorClient = true
				sp.RouteReflectorClusterID = in.Self.RRClusterID
			}
			// Another reflector of its cluster: only its own routes (RFC
			// 4456 section 8). Over one session for both families its
			// other family's next hop is not the session address, so such
			// a session is left as it was.
			if in.Self.RRClusterID != "" && n.RRClusterID == in.Self.RRClusterID && n.ASN == in.Self.ASN && !sp.BothFamilies {
				sp.SameCluster = true
			}
			out = append(out, sp)
		}
	}
	return out, nil
}

func sessionSettings(p *v1.BGPPeer, secrets Secrets) (speaker.Peer, error) {
	var sp speaker.Peer
	if p.Spec.Port != 0 {
		sp.Port = uint16(p.Spec.Port)
	}
	if p.Spec.Password != nil {
		pw, err := resolve(secrets, p.Spec.Password)
		if err != nil {
			return sp, fmt.Errorf("BGPPeer %s password: %w", p.Name, err)
		}
		sp.Password = pw
	}
	if p.Spec.TTLSecurity > 0 {
		sp.TTLSecurity = uint8(p.Spec.TTLSecurity)
	}
	if p.Spec.EBGPMultihop > 1 {
		sp.EBGPMultihop = uint8(min(p.Spec.EBGPMultihop, 255))
	}
	if p.Spec.HoldTime != nil {
		sp.HoldTime = p.Spec.HoldTime.Duration
	}
	if p.Spec.KeepaliveTime != nil {
		sp.KeepaliveTime = p.Spec.KeepaliveTime.Duration
	}
	if p.Spec.MaxRestartTime != nil && p.Spec.MaxRestartTime.Duration > 0 {
		sp.MaxRestartTime = p.Spec.MaxRestartTime.Duration
	}
	if p.Spec.MaxPrefixes > 0 {
		sp.MaxPrefixes = uint32(p.Spec.MaxPrefixes)
	}
	sp.KeepOriginalNextHop = p.Spec.KeepOriginalNextHop
	sp.BothFamilies = p.Spec.DualStackAddressFamily
	sp.BFD = bfd(p.Spec.BFD)
	return sp, nil
}

// source is the local address of a session to peer: the node's address of
// the peer's family (an IPv6 peerIP gets the node's IPv6 address, never
// its IPv4 one), or none when sourceAddress is None or the node has no
// address of that family (the kernel then picks one).
func source(p *v1.BGPPeer, self NodeInfo, peer netip.Addr) netip.Addr {
	if p.Spec.SourceAddress == v1.SourceAddressNone {
		return netip.Addr{}
	}
	return self.AddrOf(peer)
}

func resolve(secrets Secrets, pw *v1.BGPPassword) (string, error) {
	if pw.SecretKeyRef == nil {
		return "", errors.New("password has no secretKeyRef")
	}
	if pw.SecretKeyRef.Name == "" || pw.SecretKeyRef.Key == "" {
		// The API server refuses this; an object stored before that rule
		// must still not make the agent look up a Secret named "".
		return "", errors.New("password secretKeyRef needs both name and key")
	}
	if secrets == nil {
		return "", errors.New("no secret reader configured")
	}
	return secrets(*pw.SecretKeyRef)
}
