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
	"k8s.io/client-go/kubernetes"

	"github.com/cairn-net/cairn/felix"
)

// waitForNode waits for this node's Node object: the agent can start
// before the kubelet registered it, or while the API server is down.
func waitForNode(ctx context.Context, kube kubernetes.Interface, name string, log *slog.Logger) (*corev1.Node, error) {
	delay := 200 * time.Millisecond
	for {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
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
func restoreEndpoints(ctx context.Context, store *endpointStore, dp restorer, log *slog.Logger) error {
	var recs []endpointRecord
	for _, r := range store.all() {
		if r.HostIface != "" { // allocated, but ADD never finished
			recs = append(recs, r)
		}
	}
	var wg sync.WaitGroup
	for _, r := range recs {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := dp.SetEndpoint(sctx, felix.Endpoint{HostIface: r.HostIface, Addrs: r.Addresses}); err != nil {
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
