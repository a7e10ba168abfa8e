package speaker

import (
	"fmt"
	"time"

	"github.com/osrg/gobgp/v4/api"
)

// BFD is single-hop Bidirectional Forwarding Detection (RFC 5880, 5881) on
// one session, run by GoBGP's own BFD (UDP 3784). When the peer stops
// answering for Interval*Multiplier, or says it is down, GoBGP resets the
// session (Cease), which is not a graceful restart: the peer's paths leave
// the RIB, and Learned(), at once. Until the peer answers BFD at all,
// nothing changes: the session stands on its hold time alone.
type BFD struct {
	// Enabled turns BFD on for the session.
	Enabled bool
	// Interval is both how often we send and the least interval we ask the
	// peer to send at; 0 means DefaultBFDInterval.
	Interval time.Duration
	// Multiplier is the number of intervals without a packet after which
	// the session is down; 0 means DefaultBFDMultiplier.
	Multiplier uint8
}

// BFD defaults, as GoBGP's documentation suggests for BGP peers.
const (
	DefaultBFDInterval   = 300 * time.Millisecond
	DefaultBFDMultiplier = 3
	// minBFDInterval and maxBFDInterval bound the interval: below 50ms a
	// busy node drops sessions that are fine; above 10s the hold time
	// detects as fast.
	minBFDInterval = 50 * time.Millisecond
	maxBFDInterval = 10 * time.Second
)

// withDefaults fills in the interval and multiplier of an enabled BFD.
func (b BFD) withDefaults() BFD {
	if !b.Enabled {
		return BFD{}
	}
	if b.Interval == 0 {
		b.Interval = DefaultBFDInterval
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultBFDMultiplier
	}
	return b
}

// DetectionTime is how long the peer may stay silent before the session
// is torn down; 0 when BFD is off.
func (b BFD) DetectionTime() time.Duration {
	b = b.withDefaults()
	return b.Interval * time.Duration(b.Multiplier)
}

// validateBFD checks the BFD settings of a peer.
func validateBFD(p Peer) error {
	b := p.BFD
	switch {
	case !b.Enabled:
		return nil
	case p.EBGPMultihop > 0:
		return fmt.Errorf("%w BFD: single-hop only (RFC 5881), not with eBGP multihop", ErrInvalid)
	case b.Interval != 0 && (b.Interval < minBFDInterval || b.Interval > maxBFDInterval):
		return fmt.Errorf("%w BFD interval %s: want %s to %s", ErrInvalid, b.Interval, minBFDInterval, maxBFDInterval)
	case b.Multiplier == 1:
		return fmt.Errorf("%w BFD multiplier 1: one late packet would reset the session; want 2 or more", ErrInvalid)
	}
	return nil
}

// toAPIBFD is GoBGP's BFD configuration for a peer (intervals in
// microseconds); nil when BFD is off.
func toAPIBFD(b BFD) *api.BfdPeerConfig {
	if !b.Enabled {
		return nil
	}
	b = b.withDefaults()
	us := uint32(b.Interval / time.Microsecond)
	return &api.BfdPeerConfig{
		Enabled:                  true,
		DesiredMinimumTxInterval: us,
		RequiredMinimumReceive:   us,
		DetectionMultiplier:      uint32(b.Multiplier),
	}
}
