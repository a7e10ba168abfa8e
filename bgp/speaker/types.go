package speaker

import (
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// Options are the speaker's settings. ASN, ListenPort and GracefulRestart
// are only the initial global settings: SetGlobal changes them while the
// speaker runs. The rest is fixed for its lifetime.
type Options struct {
	// RouterID is the BGP identifier; GoBGP requires an IPv4 address. It is
	// also the default route-reflector cluster ID.
	RouterID netip.Addr
	// ASN is the local autonomous system number (4-byte ASNs allowed).
	ASN uint32
	// ListenPort is the TCP port to accept sessions on; 0 means do not
	// listen (outgoing sessions only). Negative values are invalid.
	ListenPort int32
	// ListenAddresses restricts the listener; empty means all addresses.
	ListenAddresses []string
	// Logger receives the speaker's and GoBGP's logs; nil discards them.
	Logger *slog.Logger
	// GracefulRestart enables RFC 4724 on every session when non-nil and
	// Enabled.
	GracefulRestart *GROptions
	// InitialSyncTimeout bounds how long the first publication on Learned()
	// waits for End-of-RIB from every peer; 0 means DefaultInitialSyncTimeout.
	InitialSyncTimeout time.Duration
	// MaxPrefixRestart is how long a session shut down for exceeding its
	// Peer.MaxPrefixes stays down (its paths dropped) before it is tried
	// again; 0 means DefaultMaxPrefixRestart.
	MaxPrefixRestart time.Duration
	// ForwardingStateKept says the node kept forwarding across the restart
	// that started this speaker (its routes were still in the kernel). With
	// graceful restart, the sessions opened during the initial sync then
	// claim it (RFC 4724 Restart State and Forwarding State bits), so peers
	// keep our routes until our End-of-RIB instead of flushing them when
	// the session comes back; our updates are deferred until every peer has
	// sent End-of-RIB, at most until the initial sync times out. Sessions
	// added after the initial sync never claim it. Ignored without
	// graceful restart. Claiming it wrongly would keep peers sending
	// traffic to a node that drops it, so set it only from evidence.
	ForwardingStateKept bool
	// NextHop4 and NextHop6 are the node's own addresses: when valid, the
	// next hop of every advertisement of that family on every session.
	// A session that carries the other family too (Peer.BothFamilies) has
	// no local address of that family, so its advertisements need one.
	// Invalid means each session's local address (next hop self).
	NextHop4, NextHop6 netip.Addr
}

// Global are the settings GoBGP applies to the whole speaker rather than to
// one session. They change while the speaker runs (SetGlobal): a change of
// AS number or listen port restarts the GoBGP server (every session of
// this speaker is re-established, graceful restart keeping the routes on
// both sides); a change of graceful restart alone re-creates every session
// (the capability is only exchanged in OPEN) without a restart.
type Global struct {
	// ASN is the local autonomous system number (4-byte ASNs allowed).
	ASN uint32
	// ListenPort is the TCP port to accept sessions on; 0 means do not
	// listen (outgoing sessions only).
	ListenPort int32
	// GracefulRestart configures RFC 4724 on every session; the zero
	// value is off.
	GracefulRestart GROptions
	// MaxPrefixRestart is how long a session shut down for exceeding its
	// Peer.MaxPrefixes stays down before it is tried again; 0 means
	// Options.MaxPrefixRestart. A change applies to the next shutdown
	// without touching any session.
	MaxPrefixRestart time.Duration
}

// GROptions configure graceful restart (RFC 4724).
type GROptions struct {
	// Enabled advertises the graceful-restart capability and End-of-RIB.
	Enabled bool
	// RestartTime is how long peers keep our routes while we restart;
	// 0 means DefaultRestartTime. At most 4095s (12-bit field).
	RestartTime time.Duration
}

// Peer is one BGP neighbour as the node agent wants it.
type Peer struct {
	// Name identifies the peer in logs and status (for example the BGPPeer
	// or Node name); the address is used when empty.
	Name string
	// Address is the neighbour's IP address; it is the peer's identity. A
	// session carries this address's family (an IPv4 peer gets the IPv4
	// advertisements, an IPv6 peer the IPv6 ones), and the other one too
	// with BothFamilies.
	Address netip.Addr
	// BothFamilies makes the session carry IPv4 and IPv6 unicast (MP-BGP,
	// RFC 4760), whatever the family of Address: IPv6 blocks over an IPv4
	// session, say. It needs Options.NextHop6 (or NextHop4 on an IPv6
	// session) for the other family's next hop.
	BothFamilies bool
	// ASN is the neighbour's AS; equal to Options.ASN means iBGP.
	ASN uint32
	// Port is the neighbour's TCP port; 0 means 179.
	Port uint16
	// Password is the TCP-MD5 key (RFC 2385). It is never logged and never
	// put in an error or a status. GoBGP v4.8.0 never removes a key from
	// its listener, so after a password is removed the peer can only be
	// reached by our outgoing connections (not when Passive).
	Password string
	// TTLSecurity is the GTSM hop count (RFC 5082): packets must arrive with
	// TTL >= 256-TTLSecurity. 0 disables it. Exclusive with EBGPMultihop.
	// IPv4 only: GoBGP v4.8.0 cannot apply it to its IPv6 listener.
	TTLSecurity uint8
	// EBGPMultihop is the TTL for eBGP sessions to non-adjacent peers;
	// 0 means directly connected (TTL 1).
	EBGPMultihop uint8
	// HoldTime and KeepaliveTime are the session timers; 0 means GoBGP's
	// defaults (90s, and a third of the hold time).
	HoldTime, KeepaliveTime time.Duration
	// MaxPrefixes shuts the session down (Cease, max prefixes) when the peer
	// sends more prefixes than this per address family; 0 means no limit.
	// Its paths are dropped at once, graceful restart or not (the peer is
	// removed from GoBGP), and it is added again after
	// Options.MaxPrefixRestart, or when its configuration changes.
	MaxPrefixes uint32
	// MaxRestartTime, when positive, bounds how long the peer's paths are
	// used, stale, after its session went down with graceful restart: at
	// most this, or the restart time the peer announced if shorter (GoBGP
	// applies that one). 0 means the peer's own restart time.
	MaxRestartTime time.Duration
	// RouteReflectorClient makes this speaker a route reflector for the
	// peer (iBGP only).
	RouteReflectorClient bool
	// RouteReflectorClusterID is the cluster ID (dotted IPv4) used when
	// reflecting to this client; empty means the router ID.
	RouteReflectorClusterID string
	// SameCluster marks another route reflector of this speaker's cluster
	// (iBGP, one session per family). Only the routes it originates (next
	// hop its session address) are imported from it: what it reflects
	// carries our cluster ID, which RFC 4456 section 8 says to ignore and
	// GoBGP does not check on receipt. Such a copy, once a reflector's
	// best path, keeps the reflector's clients from ever hearing the
	// withdrawal of the original (policy.go).
	SameCluster bool
	// KeepOriginalNextHop asks that the next hop of routes sent to this
	// peer is not rewritten. Cairn sends its own routes (next hop self by
	// definition) and reflects iBGP routes (never rewritten by GoBGP), so
	// this changes nothing today; it is kept for BGPPeer compatibility.
	KeepOriginalNextHop bool
	// SourceAddress, when valid, is the local address of the session.
	SourceAddress netip.Addr
	// Passive waits for the neighbour to connect instead of connecting.
	Passive bool
	// ConnectRetry is how long after a failed outgoing connection the next
	// one is tried; 0 means 5 s. GoBGP tries the first 1.5 to 2 s after
	// the peer is added, waits 0.75 to 1 times this between tries, and
	// never less than 2 s (whole seconds).
	ConnectRetry time.Duration
	// BFD detects a failed peer faster than the hold time (bfd.go).
	BFD BFD
	// Filters, when not nil, narrow what is taken from and sent to the
	// peer (filter.go). They are not session settings: a change applies
	// without resetting the session. Treat them as immutable once given
	// to SetPeers.
	Filters *Filters
}

// session is p without what can change on a running session (its
// filters): two peers with equal sessions need no re-created neighbour.
func (p Peer) session() Peer {
	p.Filters = nil
	return p
}

// importRules and exportRules are the peer's rules of one direction.
func (p Peer) importRules() []FilterRule {
	if p.Filters == nil {
		return nil
	}
	return p.Filters.Import
}

func (p Peer) exportRules() []FilterRule {
	if p.Filters == nil {
		return nil
	}
	return p.Filters.Export
}

// displayName is how the peer is named in logs and status.
func (p Peer) displayName() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Address.String()
}

// Advertisement is one prefix this node announces, with next hop self.
type Advertisement struct {
	// Prefix is an owned block, a borrowed /32 (/128) or a service range.
	Prefix netip.Prefix
	// Communities are RFC 1997 communities (ASN<<16 | value) to attach.
	Communities []uint32
	// LargeCommunities are RFC 8092 large communities to attach.
	LargeCommunities []LargeCommunity
}

// LargeCommunity is an RFC 8092 large community,
// GlobalAdmin:LocalData1:LocalData2.
type LargeCommunity struct {
	GlobalAdmin, LocalData1, LocalData2 uint32
}

// adAttrs are the attributes Cairn attaches to one of its own prefixes.
type adAttrs struct {
	communities []uint32
	large       []LargeCommunity
}

func (a adAttrs) equal(b adAttrs) bool {
	return slices.Equal(a.communities, b.communities) && slices.Equal(a.large, b.large)
}

// Path is one learned route: a prefix reachable through a next hop,
// learned from a peer.
type Path struct {
	Prefix      netip.Prefix
	NextHop     netip.Addr
	Peer        netip.Addr
	Communities []uint32
}

// equalPath reports whether two paths are the same in every field.
func equalPath(a, b Path) bool {
	return a.Prefix == b.Prefix && a.NextHop == b.NextHop && a.Peer == b.Peer &&
		slices.Equal(a.Communities, b.Communities)
}

// SessionState is a BGP finite-state-machine state (RFC 4271 section 8).
type SessionState string

// The BGP session states.
const (
	StateIdle        SessionState = "Idle"
	StateConnect     SessionState = "Connect"
	StateActive      SessionState = "Active"
	StateOpenSent    SessionState = "OpenSent"
	StateOpenConfirm SessionState = "OpenConfirm"
	StateEstablished SessionState = "Established"
)

// PeerState is the observed state of one configured peer.
type PeerState struct {
	Name    string
	Address netip.Addr
	ASN     uint32
	State   SessionState
	// Uptime is how long the session has been Established; 0 otherwise.
	Uptime time.Duration
	// Received counts prefixes received, Accepted those the import policy
	// let in, Advertised those sent (all address families of the session).
	Received, Accepted, Advertised uint64
	// LastError is the last reason the session went down or could not be
	// configured; it never contains the password.
	LastError string
	// Flaps counts the times the session left Established since the peer
	// was configured.
	Flaps uint64
	// BFD is the state of the session's BFD; empty when it runs none.
	BFD BFDState
}

// BFDState is a BFD session's state (RFC 5880 section 4.1).
type BFDState string

// BFD states.
const (
	BFDUp        BFDState = "Up"
	BFDDown      BFDState = "Down"
	BFDInit      BFDState = "Init"
	BFDAdminDown BFDState = "AdminDown"
)

// Holding says which node may announce routes inside one IPAM block or
// for one borrowed address (see Speaker.SetHoldings).
type Holding struct {
	// Prefix is an IPAM block, or the host prefix (/32, /128) of an
	// address borrowed from a block by a node other than its owner.
	Prefix netip.Prefix
	// NextHops are the addresses of the node that holds it, every family
	// it has; empty when no node does (or its address is unknown).
	NextHops []netip.Addr
	// Local marks a block or address this node holds.
	Local bool
	// Borrowed marks the host prefix of a borrowed address (Prefix is then
	// inside a block listed too); otherwise Prefix is a block.
	Borrowed bool
}
