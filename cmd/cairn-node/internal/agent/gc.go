package agent

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
	"github.com/cairn-net/cairn/ipam/gc"
	"github.com/cairn-net/cairn/ipam/kubestore"
)

// gcLeaseName is the Lease the agents compete for; its holder runs the
// cluster-wide IPAM garbage collection.
const gcLeaseName = "cairn-ipam-gc"

// runIPAMGC campaigns for the GC Lease until ctx ends and collects while
// leading. A failure here must not stop the node's dataplane, so it is
// logged and retried rather than returned.
func runIPAMGC(ctx context.Context, cfg Config, kube kubernetes.Interface, cairn versioned.Interface, log *slog.Logger) {
	log = log.With("component", "ipam-gc")
	collector, err := gc.New(gc.Options{Store: kubestore.New(cairn), Owners: gc.ClientOwners{Client: kube}, Grace: cfg.IPAMGCGrace, Logger: log})
	if err != nil {
		log.Error("IPAM garbage collection disabled", "err", err)
		return
	}
	lead := func(ctx context.Context) {
		log.Info("leading IPAM garbage collection")
		collector.Run(ctx, cfg.IPAMGCInterval)
	}
	for ctx.Err() == nil {
		err := gc.RunLeaderElected(ctx, gc.LeaderOptions{Client: kube, Namespace: cfg.SecretNamespace, Name: gcLeaseName, Identity: cfg.NodeName, Logger: log}, lead)
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("IPAM GC leader election failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
	}
}
