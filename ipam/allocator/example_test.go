package allocator_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/memstore"
)

// The node agent's use of the allocator: one per node, the store being
// kubestore.NewForConfig(cfg) in production.
func Example() {
	ctx := context.Background()
	store := memstore.New()
	_, _ = store.Pools().Create(ctx, &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "default-v4"}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16"}})

	a, err := allocator.New(store, allocator.Options{
		Node:       "node-1",
		NodeLabels: func(context.Context) (map[string]string, error) { return map[string]string{"rack": "r1"}, nil },
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go a.Run(runCtx, 30*time.Second) // resync claims, release blocks empty for EmptyBlockGrace

	// CNI ADD
	addrs, err := a.AutoAssign(ctx, allocator.Request{
		HandleID: ipam.HandleID("node-1", "3f2a9c", "eth0"), ContainerID: "3f2a9c", Interface: "eth0",
		Namespace: "default", Pod: "web-0", IPv4: 1,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(addrs), addrs[0].Bits())

	// What BGP announces and felix blackholes; re-read on every signal.
	<-a.Changes()
	owned, borrowed, _ := a.Routes(ctx)
	fmt.Println(len(owned), owned[0].Bits(), owned[0].Contains(addrs[0].Addr()), len(borrowed))

	// CNI DEL, as often as the runtime likes.
	fmt.Println(a.ReleaseByHandle(ctx, ipam.HandleID("node-1", "3f2a9c", "eth0")))
	// Output:
	// 1 32
	// 1 26 true 0
	// <nil>
}
