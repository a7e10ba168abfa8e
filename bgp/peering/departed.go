package peering

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

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

// OwnNode is what a stopping agent knows of its own Node.
type OwnNode struct {
	// Node as the API server has it now, read as the agent stops; nil
	// when the read failed.
	Node *corev1.Node
	// Err is the read's error: NotFound means the Node is gone.
	Err error
	// Departed: the agent's cache had already seen the Node deleted
	// (the sessions Departed keeps).
	Departed bool
}

// AutoscalerDeletionTaint is the taint the cluster autoscaler puts on a
// node it drains to delete; the Node object may only go after the
// machine, so at the agent's stop it is often the only sign.
const AutoscalerDeletionTaint = "ToBeDeletedByClusterAutoscaler"

// Leaving decides how a stopping agent closes its BGP sessions: whether
// its node is leaving the cluster. A leaving node closes them with a
// Cease, so every peer (the ToR above all, which knows nothing of Nodes)
// withdraws its routes at once; otherwise graceful restart keeps them at
// the peers for the restart time, which an agent restart or upgrade needs
// (and which for a removed node is the stale-route bug: routes to a
// machine that is gone). The Node read now wins over the cache: a Node
// deleted and registered again is not leaving. A Node that cannot be read
// counts as staying unless the cache saw it go: an API server outage
// during a rollout must not flap every route of the cluster.
func Leaving(n OwnNode) (leaving bool, why string) {
	switch {
	case n.Err != nil && apierrors.IsNotFound(n.Err):
		return true, "its Node was deleted"
	case n.Err != nil && n.Departed:
		return true, fmt.Sprintf("its Node was deleted (seen earlier; reading it now failed: %v)", n.Err)
	case n.Err != nil:
		return false, fmt.Sprintf("its Node could not be read (%v): taken for a restart", n.Err)
	case n.Node == nil:
		return false, "its Node is unknown: taken for a restart"
	case n.Node.DeletionTimestamp != nil:
		return true, "its Node is being deleted"
	case hasTaint(n.Node, AutoscalerDeletionTaint):
		return true, "the cluster autoscaler is deleting its node (taint " + AutoscalerDeletionTaint + ")"
	default:
		return false, "its Node exists: an agent restart"
	}
}

func hasTaint(n *corev1.Node, key string) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == key })
}
