package agent

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/cairn-net/cairn/cmd/cairn-node/internal/objstatus"
	"github.com/cairn-net/cairn/ipam/gc"
)

// statusLeaseName is the Lease whose holder writes the status of the
// objects users write; apart from the other leaders', so each loop fails
// and moves on its own.
const statusLeaseName = "cairn-status"

// objectStatus is what the cluster-wide status controller needs.
type objectStatus struct {
	opts Options
	kube kubernetes.Interface
	base objstatus.Options
	log  *slog.Logger
}

// newObjectStatus prepares the status controller; its metrics are
// registered once, for every term.
func newObjectStatus(a *agent) (objectStatus, error) {
	m, err := objstatus.NewMetrics(a.metrics.reg)
	if err != nil {
		return objectStatus{}, err
	}
	return objectStatus{opts: a.opts, kube: a.cl.kube, log: a.log.With("component", "status"),
		base: objstatus.Options{Cairn: a.cl.cairn, Pools: a.inf.pools, Peers: a.inf.peers, Configs: a.inf.configs,
			Blocks: a.inf.blocks, Services: a.inf.services, Nodes: a.inf.nodes, Metrics: m, Logger: a.log}}, nil
}

// run campaigns for the Lease until ctx ends and writes statuses while
// leading. A failure here must not stop the node's dataplane, so it is
// logged and retried rather than returned.
func (s objectStatus) run(ctx context.Context) {
	leader := gc.LeaderOptions{Client: s.kube, Namespace: s.opts.SecretNamespace, Name: statusLeaseName,
		Identity: s.opts.NodeName, Logger: s.log}
	for ctx.Err() == nil {
		err := gc.RunLeaderElected(ctx, leader, s.lead)
		if err == nil || ctx.Err() != nil {
			return
		}
		s.log.Warn("object status leader election failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
	}
}

// lead writes statuses until leadership ends; a term whose watches cannot
// start is started again while the Lease is held.
func (s objectStatus) lead(ctx context.Context) {
	recorder, stop := objstatus.NewRecorder(s.kube, s.opts.NodeName)
	defer stop()
	for {
		o := s.base
		o.Recorder = recorder
		c, err := objstatus.New(o)
		if err != nil {
			s.log.Error("object status disabled", "err", err)
			return
		}
		err = c.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("object status stopped; starting again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}
