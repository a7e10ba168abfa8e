package peering

import (
	"strings"

	"github.com/cairn-net/cairn/bgp/speaker"
)

// Departed is what a node keeps of its sessions once its Node object is
// deleted from the cluster (the node is being decommissioned; a kubelet
// that still runs registers it again, and it rejoins): only sessions to
// routers (a BGPPeer's peerIP). The caller also announces nothing, so the
// routers learn by a withdrawal, not by a session loss they would take for
// a restart and keep the routes of for the restart time. Mesh and
// node-selected sessions go: the other nodes have already dropped theirs,
// and this node's labels, which chose them, are gone with its Node.
// Router sessions stay so that the node keeps what it learns (a default
// route) while its pods drain.
func Departed(previous []speaker.Peer) []speaker.Peer {
	var out []speaker.Peer
	for _, p := range previous {
		if routerSession(p.Name) {
			out = append(out, p)
		}
	}
	return out
}

// routerSession tells, from the names Peers gives, a session to a
// BGPPeer's peerIP ("peer:NAME") from mesh ("mesh:NODE") and node-selected
// ("peer:NAME:NODE") ones. Kubernetes names hold no colon.
func routerSession(name string) bool {
	rest, ok := strings.CutPrefix(name, "peer:")
	return ok && !strings.Contains(rest, ":")
}
