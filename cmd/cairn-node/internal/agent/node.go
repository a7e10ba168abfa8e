package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/apis/kubecore"
	"github.com/cairn-net/cairn/felix"
)

// waitForNode waits for this node's Node object: the agent can start
// before the kubelet registered it, or while the API server is down.
func waitForNode(ctx context.Context, kube kubecore.Interface, name string, log *slog.Logger) (*corev1.Node, error) {
	delay := 200 * time.Millisecond
	for {
		n, err := kube.Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return n, nil
		}
		if apierrors.IsNotFound(err) {
			log.Info("waiting for the Node object", "err", err)
		} else {
			log.Warn("cannot read the Node object; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for Node %s: %w (last error: %v)", name, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// restoreEndpoints states every endpoint recorded before a restart, then
// tells felix the set is complete, so it never removes a live pod's route.
// Of several records naming one host veth (a pod's old sandbox whose DEL
// has not come, and its new one), only the newest is stated: the old one's
// addresses are not routed to the new pod's veth.
func restoreEndpoints(ctx context.Context, store *endpointStore, dp restorer, log *slog.Logger) error {
	recs := interfaceHolders(store.all())
	var wg sync.WaitGroup
	for _, r := range recs {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			ep := felix.Endpoint{HostIface: r.HostIface, Addrs: r.Addresses, Owner: r.attachment().String()}
			if err := dp.SetEndpoint(sctx, ep); err != nil {
				// The pod's veth may be gone while we were down; CNI DEL
				// or GC will release it.
				log.Warn("restoring an endpoint failed", "iface", r.HostIface, "container", r.ContainerID, "err", err)
			}
		})
	}
	wg.Wait()
	dp.EndpointsInSync()
	if len(recs) > 0 {
		log.Info("restored endpoints", "count", len(recs))
	}
	return ctx.Err()
}
