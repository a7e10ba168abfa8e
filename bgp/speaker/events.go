package speaker

import (
	"net/netip"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// peerEvent is a session state change, translated from GoBGP.
type peerEvent struct {
	Addr  netip.Addr
	State SessionState
	// Reason is why the session left Established or failed, if GoBGP says.
	Reason string
	// GRNegotiated is true when both sides sent the graceful-restart
	// capability, so the peer will send End-of-RIB.
	GRNegotiated bool
	At           time.Time
}

// eorEvent is an End-of-RIB marker received from a peer.
type eorEvent struct {
	Addr   netip.Addr
	Family bgp.Family
}

// event is one peer, End-of-RIB or hold-timer-expiry event; exactly one
// field is set.
type event struct {
	peer *peerEvent
	eor  *eorEvent
	// holdExpired is a peer whose hold timer expired (gone.go).
	holdExpired *netip.Addr
}

// eventBatch is everything that happened since the owner last looked.
type eventBatch struct {
	ribChanged bool
	// events keeps peer and End-of-RIB events in arrival order, so an EoR
	// from a previous session is never credited to the next one.
	events []event
}

// inbox is the hand-over point between GoBGP's watcher goroutine and the
// goroutine that owns the server. Callbacks append under a mutex and poke a
// one-slot channel: they never block and never call back into GoBGP.
// Peer and End-of-RIB events are rare and kept in order; path events only
// set a flag, because the owner re-reads the whole RIB anyway.
type inbox struct {
	mu    sync.Mutex
	batch eventBatch
	ready chan struct{}
}

func newInbox() *inbox {
	return &inbox{ready: make(chan struct{}, 1)}
}

func (b *inbox) wake() {
	select {
	case b.ready <- struct{}{}:
	default: // already woken; the owner will see everything
	}
}

// take returns and clears what has accumulated.
func (b *inbox) take() eventBatch {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.batch
	b.batch = eventBatch{}
	return out
}

func (b *inbox) ribChanged() {
	b.mu.Lock()
	b.batch.ribChanged = true
	b.mu.Unlock()
	b.wake()
}

func (b *inbox) peer(ev peerEvent) {
	b.mu.Lock()
	b.batch.events = append(b.batch.events, event{peer: &ev})
	b.batch.ribChanged = true // a session going down drops its paths
	b.mu.Unlock()
	b.wake()
}

func (b *inbox) eor(ev eorEvent) {
	b.mu.Lock()
	b.batch.events = append(b.batch.events, event{eor: &ev})
	b.mu.Unlock()
	b.wake()
}

// holdExpired records that a peer's hold timer expired; GoBGP's log
// handler calls it (holdExpiryHandler), before GoBGP reports the session
// down.
func (b *inbox) holdExpired(a netip.Addr) {
	b.mu.Lock()
	b.batch.events = append(b.batch.events, event{holdExpired: &a})
	b.mu.Unlock()
	b.wake()
}

// callbacks translates GoBGP watch events into the inbox.
func (b *inbox) callbacks() server.WatchEventMessageCallbacks {
	return server.WatchEventMessageCallbacks{
		OnBestPath:   func([]*apiutil.Path, time.Time) { b.ribChanged() },
		OnPathUpdate: func([]*apiutil.Path, time.Time) { b.ribChanged() },
		OnPathEor: func(p *apiutil.Path, _ time.Time) {
			b.eor(eorEvent{Addr: p.PeerAddress, Family: p.Family})
		},
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
			if ev.Type == apiutil.PEER_EVENT_STATE {
				b.peer(translatePeerEvent(ev, at))
			}
		},
	}
}

// watchOptions selects every event that can change the learned set or a
// session's state. Post-policy updates and Adj-RIB-In withdrawals cover
// changes that do not move GoBGP's own best path (a second ECMP path).
func watchOptions() []server.WatchOption {
	return []server.WatchOption{
		server.WatchBestPath(false),
		server.WatchPostUpdate(false, "", ""),
		server.WatchAdjInWithdraw(),
		server.WatchPeer(),
		server.WatchEor(false),
	}
}

func translatePeerEvent(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) peerEvent {
	st := ev.Peer.State
	out := peerEvent{
		Addr:         st.NeighborAddress,
		State:        stateFromFSM(st.SessionState),
		GRNegotiated: hasGR(st.LocalCap) && hasGR(st.RemoteCap),
		At:           at,
	}
	switch st.DisconnectReason {
	case api.PeerState_DISCONNECT_REASON_UNSPECIFIED, api.PeerState_DISCONNECT_REASON_IDLE_TIMER_EXPIRED:
		// Not a failure: GoBGP gives a reason for every transition, and
		// the idle hold timer expiring is just "try again now".
	default:
		out.Reason = st.DisconnectMessage
		if out.Reason == "" {
			out.Reason = st.DisconnectReason.String()
		}
	}
	if st.AdminState == api.PeerState_ADMIN_STATE_PFX_CT {
		out.Reason = maxPrefixReason
	}
	return out
}

// maxPrefixReason replaces what GoBGP reports when it shut a session for
// exceeding MaxPrefixes (the peer closing the connection: "read failed").
const maxPrefixReason = ReasonMaxPrefixes + ": session shut down (Cease), tried again after the idle time"

func hasGR(caps []bgp.ParameterCapabilityInterface) bool {
	for _, c := range caps {
		if c.Code() == bgp.BGP_CAP_GRACEFUL_RESTART {
			return true
		}
	}
	return false
}

func stateFromFSM(s bgp.FSMState) SessionState {
	switch s {
	case bgp.BGP_FSM_CONNECT:
		return StateConnect
	case bgp.BGP_FSM_ACTIVE:
		return StateActive
	case bgp.BGP_FSM_OPENSENT:
		return StateOpenSent
	case bgp.BGP_FSM_OPENCONFIRM:
		return StateOpenConfirm
	case bgp.BGP_FSM_ESTABLISHED:
		return StateEstablished
	default:
		return StateIdle
	}
}

func stateFromAPI(s api.PeerState_SessionState) SessionState {
	switch s {
	case api.PeerState_SESSION_STATE_CONNECT:
		return StateConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return StateActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return StateOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return StateEstablished
	default:
		return StateIdle
	}
}
