package speaker

import "strings"

// ReasonMaxPrefixes begins PeerState.LastError of a session shut for
// exceeding Peer.MaxPrefixes (the rest says the limit and when it is
// tried again), for callers that classify why a session is down.
const ReasonMaxPrefixes = "maximum prefixes exceeded"

// IsMaxPrefixes reports whether a PeerState.LastError says the session
// was shut for exceeding its maximum prefixes.
func IsMaxPrefixes(lastError string) bool { return strings.HasPrefix(lastError, ReasonMaxPrefixes) }
