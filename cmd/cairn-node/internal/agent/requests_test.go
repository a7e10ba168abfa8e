package agent

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
	"github.com/cairn-net/cairn/internal/controlplane/cptest"
)

// burstPods is how many pods start at once on node 1.
const burstPods = 50

// TestPodBurstAPIRequests counts, per node and per verb and resource, the
// requests three agents send to a real API server while 50 pods start at
// once on node 1. After start-up no agent lists IPAM blocks or claims (it
// watches them), and nodes 2 and 3, whose routes the burst does not
// change, send nothing at all.
func TestPodBurstAPIRequests(t *testing.T) {
	cp := cptest.ForTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	seedCluster(t, ctx, cp.Config)

	names := []string{"node-1", "node-2", "node-3"}
	agents := make([]*testAgent, len(names))
	for i, n := range names {
		agents[i] = startTestAgent(t, ctx, cp.Config, n)
	}
	for _, a := range agents {
		a.waitSynced(t, ctx)
	}
	startup := snapshots(agents)

	burstPodsOn(t, ctx, agents[0])
	// The burst is over for the cluster once node 1 announces its new block
	// and the others' caches hold every allocation in it.
	block := agents[0].waitAnnounced(t, ctx)
	for _, a := range agents[1:] {
		a.waitBlockAllocations(t, ctx, block, burstPods)
	}
	time.Sleep(time.Second) // let anything the burst set off reach the server
	after := snapshots(agents)

	for i, a := range agents {
		t.Logf("%s start-up requests: %s", a.name, formatCounts(startup[i]))
		t.Logf("%s requests during the burst: %s", a.name, formatCounts(diffCounts(after[i], startup[i])))
	}
	for i, a := range agents {
		burst := diffCounts(after[i], startup[i])
		for _, kind := range []string{"LIST ipamblocks", "LIST blockaffinities"} {
			if burst[kind] > 0 {
				t.Errorf("%s: %d × %s after start-up; the agent must read its informers", a.name, burst[kind], kind)
			}
		}
		if i == 0 {
			continue
		}
		for kind, n := range burst {
			if !strings.HasPrefix(kind, "WATCH ") {
				t.Errorf("%s: %d × %s during a burst on another node", a.name, n, kind)
			}
		}
	}
}

// seedCluster creates what the agents need: three Nodes, a pool, and a
// BGPPeer whose password is in a Secret.
func seedCluster(t *testing.T, ctx context.Context, cfg *rest.Config) {
	t.Helper()
	kube := kubernetes.NewForConfigOrDie(cfg)
	cairn := versioned.NewForConfigOrDie(cfg)
	for i := 1; i <= 3; i++ {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i), Labels: map[string]string{"rack": "r1"}},
			Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("172.30.1.1%d", i)}}},
		}
		if _, err := kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cairn-system"}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bgp-passwords", Namespace: "cairn-system"}, Data: map[string][]byte{"tor": []byte("s3cret")}}
	if _, err := kube.CoreV1().Secrets("cairn-system").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	peer := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1.BGPPeerSpec{
		PeerIP: "172.30.1.1", ASNumber: 65001, NodeSelector: "rack=r1",
		Password: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "bgp-passwords", Key: "tor"}},
	}}
	if _, err := cairn.CairnV1alpha1().BGPPeers().Create(ctx, peer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pool := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16", BlockSize: 26}}
	// The defaulting policy may still be waiting for the CRD's schema.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cairn.CairnV1alpha1().IPPools().Create(ctx, pool, metav1.CreateOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create pool: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// burstPodsOn starts burstPods pods at once on a's node, as the CNI plugin
// does: Allocate, then EndpointUp, over the agent's socket.
func burstPodsOn(t *testing.T, ctx context.Context, a *testAgent) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+a.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := agentv1.NewAgentClient(conn)
	var wg sync.WaitGroup
	errs := make(chan error, burstPods)
	for i := range burstPods {
		wg.Go(func() {
			id := fmt.Sprintf("c%03d", i)
			resp, err := client.Allocate(ctx, &agentv1.AllocateRequest{ContainerId: id, Ifname: "eth0", PodNamespace: "default",
				PodName: "pod-" + id, IpFamilies: []agentv1.IPFamily{agentv1.IPFamily_IP_FAMILY_V4}})
			if err != nil {
				errs <- fmt.Errorf("allocate %s: %w", id, err)
				return
			}
			if _, err := client.EndpointUp(ctx, &agentv1.EndpointUpRequest{ContainerId: id, Ifname: "eth0",
				HostIface: "crn" + id, Addresses: resp.Addresses}); err != nil {
				errs <- fmt.Errorf("endpoint up %s: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// waitSynced waits for the agent's first complete sync.
func (a *testAgent) waitSynced(t *testing.T, ctx context.Context) {
	t.Helper()
	waitFor(t, ctx, a.name+": first sync", func() bool {
		r := a.ctrl.lastResult()
		return !r.at.IsZero() && r.err == nil
	})
}

// waitAnnounced waits for the agent to announce a block and returns it.
func (a *testAgent) waitAnnounced(t *testing.T, ctx context.Context) netip.Prefix {
	t.Helper()
	var block netip.Prefix
	waitFor(t, ctx, a.name+": block announced", func() bool {
		a.speaker.mu.Lock()
		defer a.speaker.mu.Unlock()
		for _, ad := range a.speaker.ads {
			if ad.Prefix.Bits() == 26 {
				block = ad.Prefix
				return true
			}
		}
		return false
	})
	return block
}

// waitBlockAllocations waits until a's cache holds n allocations in block.
func (a *testAgent) waitBlockAllocations(t *testing.T, ctx context.Context, block netip.Prefix, n int) {
	t.Helper()
	waitFor(t, ctx, fmt.Sprintf("%s: %d allocations in %s", a.name, n, block), func() bool {
		bs, _ := a.blocks.List(labels.Everything())
		for _, b := range bs {
			if b.Spec.CIDR == block.String() {
				return len(b.Spec.Allocations) == n
			}
		}
		return false
	})
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// requestCounter counts API requests by verb and resource ("LIST
// ipamblocks", "UPDATE cairnnodestatuses/status") as they leave a client.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func newRequestCounter() *requestCounter { return &requestCounter{counts: map[string]int{}} }

// wrap is a rest.Config WrapTransport.
func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.counts[requestKind(r)]++
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// requestKind names a request by the API server's verb and the resource
// (with subresource) it addresses.
func requestKind(r *http.Request) string {
	// /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]] or
	// /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUB]]
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return r.Method + " " + r.URL.Path
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return r.Method + " " + r.URL.Path
	}
	resource, named := parts[0], len(parts) > 1
	if len(parts) > 2 {
		resource += "/" + parts[2]
	}
	verb := map[string]string{http.MethodPost: "CREATE", http.MethodPut: "UPDATE", http.MethodPatch: "PATCH", http.MethodDelete: "DELETE"}[r.Method]
	if r.Method == http.MethodGet {
		switch {
		case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
			verb = "WATCH"
		case named:
			verb = "GET"
		default:
			verb = "LIST"
		}
	}
	return verb + " " + resource
}

func snapshots(agents []*testAgent) []map[string]int {
	out := make([]map[string]int, len(agents))
	for i, a := range agents {
		out[i] = a.counter.snapshot()
	}
	return out
}

func diffCounts(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, n := range after {
		if d := n - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// countingConfig returns cfg sending every request through counter.
func countingConfig(cfg *rest.Config, counter *requestCounter) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = counter.wrap
	return cfg
}
