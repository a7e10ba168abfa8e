package speaker

// ReasonMaxPrefixes is PeerState.LastError of a session shut for
// exceeding Peer.MaxPrefixes, for callers that classify why a session is
// down.
const ReasonMaxPrefixes = maxPrefixReason
