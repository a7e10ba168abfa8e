package agent

import (
	"context"
	"log/slog"

	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/cmd/cairn-node/internal/objstatus"
)

// statusLeaseName is the Lease whose holder writes the status of the
// objects users write; apart from the other leaders', so each loop fails
// and moves on its own.
const statusLeaseName = "cairn-status"

// objectStatus is what the cluster-wide status controller needs.
type objectStatus struct {
	opts Options
	kube kubecore.Interface
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
// leading.
func (s objectStatus) run(ctx context.Context) {
	campaign(ctx, s.opts, s.kube, statusLeaseName, s.log, s.lead)
}

// lead writes statuses until leadership ends (see serveTerm).
func (s objectStatus) lead(ctx context.Context) {
	recorder, stop := objstatus.NewRecorder(s.kube, s.opts.NodeName)
	defer stop()
	serveTerm(ctx, s.log, func() (term, error) {
		o := s.base
		o.Recorder = recorder
		return objstatus.New(o)
	})
}
