package agent

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/cairn-net/cairn/ipam/gc"
	"github.com/cairn-net/cairn/ipam/lbipam"
)

// lbLeaseName is the Lease whose holder gives Services of type
// LoadBalancer their addresses; apart from the GC's, so the two loops
// fail and move independently.
const lbLeaseName = "cairn-lbipam"

// lbIPAM is what the cluster-wide LoadBalancer address controller needs.
type lbIPAM struct {
	opts  Options
	kube  kubernetes.Interface
	pools cache.SharedIndexInformer
	// configs tell which addresses nodes announce: one given outside them
	// is reported (lbipam.ReasonNotAdvertised).
	configs cache.SharedIndexInformer
	log     *slog.Logger
}

// run campaigns for the Lease until ctx ends and serves LoadBalancer
// addresses while leading. A failure here must not stop the node's
// dataplane, so it is logged and retried rather than returned.
func (l lbIPAM) run(ctx context.Context) {
	log := l.log.With("component", "lbipam")
	leader := gc.LeaderOptions{Client: l.kube, Namespace: l.opts.SecretNamespace, Name: lbLeaseName,
		Identity: l.opts.NodeName, Logger: log}
	for ctx.Err() == nil {
		err := gc.RunLeaderElected(ctx, leader, l.lead)
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("LoadBalancer IPAM leader election failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
	}
}

// lead serves until leadership ends. The controller watches Services
// itself, only while leading, and starts each term from their statuses.
// Run returns early only if its watch cannot start; the Lease is still
// held then, so it starts again rather than lead without serving.
func (l lbIPAM) lead(ctx context.Context) {
	log := l.log.With("component", "lbipam")
	recorder, stop := lbipam.NewRecorder(l.kube, l.opts.NodeName)
	defer stop()
	for {
		c, err := lbipam.New(lbipam.Options{Kube: l.kube, Pools: l.pools, Configs: l.configs, Recorder: recorder, Logger: l.log})
		if err != nil {
			log.Error("LoadBalancer IPAM disabled", "err", err)
			return
		}
		err = c.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		log.Warn("LoadBalancer IPAM stopped; starting again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}
