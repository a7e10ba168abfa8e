package agent

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/bgp/peering"
)

// ownNodeReadTimeout bounds the read of the agent's own Node as it stops:
// a kubelet waits 30 s for a pod to end, and an API server that does not
// answer in time leaves graceful restart on (peering.Leaving).
const ownNodeReadTimeout = 5 * time.Second

// leaver is the speaker's stop mode.
type leaver interface{ SetLeaving(leaving bool) }

// decideLeaving tells the speaker, as the agent stops, whether its node is
// leaving the cluster: then its sessions close with a Cease and every peer
// withdraws its routes at once, where graceful restart (an agent restart)
// would keep them for the restart time. The Node is read from the API
// server, not the cache: a drain and delete sends SIGTERM right after the
// deletion, before the watch may have told the cache.
func decideLeaving(kube kubecore.Interface, node string, departed bool, spk leaver, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), ownNodeReadTimeout)
	defer cancel()
	n, err := kube.Nodes().Get(ctx, node, metav1.GetOptions{})
	leaving, why := peering.Leaving(peering.OwnNode{Node: n, Err: err, Departed: departed})
	if leaving {
		log.Info("stopping: this node is leaving the cluster, so its BGP sessions close with a Cease and peers withdraw its routes now", "why", why)
	} else {
		log.Info("stopping: peers keep this node's routes for the graceful-restart time if enabled", "why", why)
	}
	spk.SetLeaving(leaving)
}
