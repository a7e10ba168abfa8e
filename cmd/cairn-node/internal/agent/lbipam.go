package agent

import (
	"context"
	"log/slog"

	"k8s.io/client-go/tools/cache"

	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/ipam/lbipam"
)

// lbLeaseName is the Lease whose holder gives Services of type
// LoadBalancer their addresses; apart from the GC's, so the two loops
// fail and move independently.
const lbLeaseName = "cairn-lbipam"

// lbIPAM is what the cluster-wide LoadBalancer address controller needs.
type lbIPAM struct {
	opts  Options
	kube  kubecore.Interface
	pools cache.SharedIndexInformer
	// configs tell which addresses nodes announce: one given outside them
	// is reported (lbipam.ReasonNotAdvertised).
	configs cache.SharedIndexInformer
	log     *slog.Logger
}

// run campaigns for the Lease until ctx ends and serves LoadBalancer
// addresses while leading.
func (l lbIPAM) run(ctx context.Context) {
	campaign(ctx, l.opts, l.kube, lbLeaseName, l.log.With("component", "lbipam"), l.lead)
}

// lead serves until leadership ends. The controller watches Services
// itself, only while leading, and starts each term from their statuses.
// Run returns early only if its watch cannot start; the Lease is still
// held then, so it starts again rather than lead without serving.
func (l lbIPAM) lead(ctx context.Context) {
	recorder, stop := lbipam.NewRecorder(l.kube, l.opts.NodeName)
	defer stop()
	serveTerm(ctx, l.log.With("component", "lbipam"), func() (term, error) {
		return lbipam.New(lbipam.Options{Kube: l.kube, Pools: l.pools, Configs: l.configs, Recorder: recorder, Logger: l.log})
	})
}
