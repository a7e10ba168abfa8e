package peering

import "strings"

// Session names, as Peers gives them: "mesh:<node>" for the node mesh,
// "peer:<BGPPeer>" for a router, "peer:<BGPPeer>:<node>" for a node a
// BGPPeer's peerSelector picks. Kubernetes names hold no ':', so the
// BGPPeer's name is always recoverable.
const (
	meshPrefix = "mesh:"
	peerPrefix = "peer:"
)

// BGPPeerOf is the name of the BGPPeer a session comes from; empty for a
// mesh session or a name Peers does not give.
func BGPPeerOf(session string) string {
	rest, ok := strings.CutPrefix(session, peerPrefix)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, ":")
	return name
}

// IsMesh reports whether a session is one of the node mesh's.
func IsMesh(session string) bool { return strings.HasPrefix(session, meshPrefix) }

// IsNodeSession reports whether a session is between two nodes: the
// mesh's, or one a BGPPeer's peerSelector makes.
func IsNodeSession(session string) bool {
	rest, ok := strings.CutPrefix(session, peerPrefix)
	return IsMesh(session) || ok && strings.Contains(rest, ":")
}
