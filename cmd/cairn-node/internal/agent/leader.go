package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/ipam/gc"
)

// campaign runs lead each time this agent holds Lease lease (one leader
// among all agents), until ctx ends. A failure of the election must not
// stop the node's dataplane, so it is logged and retried rather than
// returned. log names the loop.
func campaign(ctx context.Context, opts Options, kube kubecore.Interface, lease string, log *slog.Logger, lead func(ctx context.Context)) {
	leader := gc.LeaderOptions{Client: kube, Namespace: opts.SecretNamespace, Name: lease, Identity: opts.NodeName, Logger: log}
	for ctx.Err() == nil {
		err := gc.RunLeaderElected(ctx, leader, lead)
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("leader election failed; retrying", "lease", lease, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
	}
}

// term is one term of a leader's controller: Run until the term ends.
type term interface {
	Run(ctx context.Context) error
}

// serveTerm runs a controller that newTerm makes until ctx ends (the
// term is over). Run returns early only if its watches cannot start; the
// Lease is still held then, so a new one starts again rather than lead
// without serving. A controller that cannot be made disables the loop.
func serveTerm(ctx context.Context, log *slog.Logger, newTerm func() (term, error)) {
	for {
		c, err := newTerm()
		if err != nil {
			log.Error("disabled", "err", err)
			return
		}
		err = c.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		log.Warn("stopped; starting again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}
