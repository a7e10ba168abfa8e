package apis

import (
	"context"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
	"github.com/cairn-net/cairn/internal/controlplane"
	"github.com/cairn-net/cairn/internal/controlplane/cptest"
)

func setup(t *testing.T) (*controlplane.ControlPlane, versioned.Interface, context.Context) {
	t.Helper()
	cp := cptest.ForTest(t)
	cs, err := versioned.NewForConfig(cp.Config)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return cp, cs, ctx
}

// One control plane serves every subtest: starting one costs seconds.
func TestCRDs(t *testing.T) {
	cp, cs, ctx := setup(t)
	t.Run("established", func(t *testing.T) { testEstablished(t, ctx, cp) })
	t.Run("round trip", func(t *testing.T) { testRoundTrip(t, ctx, cs) })
	t.Run("invalid objects rejected", func(t *testing.T) { testInvalid(t, ctx, cs) })
	t.Run("defaults", func(t *testing.T) { testDefaults(t, ctx, cs) })
	t.Run("immutable cidr and uses", func(t *testing.T) { testImmutable(t, ctx, cs) })
	t.Run("printer columns", func(t *testing.T) { testPrinterColumns(t, cp) })
}

func testEstablished(t *testing.T, ctx context.Context, cp *controlplane.ControlPlane) {
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := controlplane.RepoRoot()
	objs, err := controlplane.ReadManifests(filepath.Join(root, "deploy", "crds"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ippools", "ipamblocks", "blockaffinities", "ipamhandles", "bgpconfigurations", "bgppeers", "bgpfilters", "cairnnodestatuses"}
	got := map[string]bool{}
	for _, o := range objs {
		if err := controlplane.WaitEstablished(ctx, dyn, o.GetName(), 10*time.Second); err != nil {
			t.Error(err)
		}
		scope, _, _ := unstructuredString(o.Object, "spec", "scope")
		if scope != "Cluster" {
			t.Errorf("CRD %s has scope %q, want Cluster", o.GetName(), scope)
		}
		got[strings.TrimSuffix(o.GetName(), ".cairn.dev")] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("no CRD for %s", w)
		}
	}
}

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[f]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

func ptr[T any](v T) *T { return &v }

func testRoundTrip(t *testing.T, ctx context.Context, cs versioned.Interface) {
	c := cs.CairnV1alpha1()
	pool := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "rt-pool"}, Spec: v1.IPPoolSpec{
		CIDR: "10.244.0.0/16", BlockSize: 27, NATOutgoing: true, NodeSelector: "rack in (r1,r2)", DisableBGPExport: true, AssignmentMode: "Manual",
		AllowedUses: []v1.IPPoolUse{v1.IPPoolUseWorkload},
	}}
	gotPool, err := c.IPPools().Create(ctx, pool, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create IPPool: %v", err)
	}
	if !reflect.DeepEqual(gotPool.Spec, pool.Spec) {
		t.Errorf("IPPool spec changed on the way: got %+v want %+v", gotPool.Spec, pool.Spec)
	}
	meta.SetStatusCondition(&gotPool.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "InUse", Message: "pool in use"})
	gotPool.Status.Blocks = 3
	if _, err := c.IPPools().UpdateStatus(ctx, gotPool, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update IPPool status: %v", err)
	}
	back, err := c.IPPools().Get(ctx, "rt-pool", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !meta.IsStatusConditionTrue(back.Status.Conditions, v1.ConditionReady) || back.Status.Blocks != 3 {
		t.Errorf("IPPool status did not round-trip: %+v", back.Status)
	}

	block := &v1.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: "10-244-0-0-27"}, Spec: v1.IPAMBlockSpec{
		CIDR: "10.244.0.0/27", Pool: "rt-pool", Affinity: "node:node-1", Sequence: 7,
		Allocations: []v1.BlockAllocation{{Ordinal: 0, Handle: "h1", Sequence: 6, Node: "node-1", Namespace: "default", Pod: "web-0"}},
	}}
	roundTrip(t, "IPAMBlock", block.Spec, func() (any, error) {
		o, err := c.IPAMBlocks().Create(ctx, block, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		return o.Spec, nil
	})
	aff := &v1.BlockAffinity{ObjectMeta: metav1.ObjectMeta{Name: "node-1-10-244-0-0-27"}, Spec: v1.BlockAffinitySpec{Node: "node-1", CIDR: "10.244.0.0/27", State: v1.AffinityConfirmed}}
	roundTrip(t, "BlockAffinity", aff.Spec, func() (any, error) {
		o, err := c.BlockAffinities().Create(ctx, aff, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		return o.Spec, nil
	})
	handle := &v1.IPAMHandle{ObjectMeta: metav1.ObjectMeta{Name: "h1"}, Spec: v1.IPAMHandleSpec{HandleID: "h1", Blocks: map[string]int32{"10.244.0.0/27": 1}, ContainerID: "abc", Interface: "eth0", Node: "node-1", Namespace: "default", Pod: "web-0"}}
	roundTrip(t, "IPAMHandle", handle.Spec, func() (any, error) {
		o, err := c.IPAMHandles().Create(ctx, handle, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		return o.Spec, nil
	})
	cfg := &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.BGPConfigurationSpec{
		ASNumber: 4200000000, NodeToNodeMeshEnabled: ptr(false), ListenPort: 1179,
		ServiceClusterIPs:    []v1.ServiceIPBlock{{CIDR: "10.96.0.0/12"}},
		ServiceExternalIPs:   []v1.ServiceIPBlock{{CIDR: "192.0.2.0/24"}},
		Communities:          []v1.Community{{Name: "no-export", Value: "65535:65281"}},
		PrefixAdvertisements: []v1.PrefixAdvertisement{{CIDR: "10.244.0.0/16", Communities: []string{"no-export", "64512:100"}}},
		NodeMeshPassword:     &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "bgp", Key: "mesh"}},
		GracefulRestart:      &v1.GracefulRestart{Enabled: ptr(true), RestartTime: &metav1.Duration{Duration: 2 * time.Minute}},
		LogSeverityScreen:    "Info",
	}}
	roundTrip(t, "BGPConfiguration", cfg.Spec, func() (any, error) {
		o, err := c.BGPConfigurations().Create(ctx, cfg, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		return o.Spec, nil
	})
	peer := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1.BGPPeerSpec{
		NodeSelector: "rack=r1", PeerIP: "fd00::1", ASNumber: 65001, Port: 1179,
		Password: &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: "bgp", Key: "tor"}}, SourceAddress: v1.SourceAddressNone,
		TTLSecurity: 1, HoldTime: &metav1.Duration{Duration: 9 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: 3 * time.Second},
		KeepOriginalNextHop: true, MaxPrefixes: 1000, Filters: []string{"only-pods"},
	}}
	roundTrip(t, "BGPPeer", peer.Spec, func() (any, error) {
		o, err := c.BGPPeers().Create(ctx, peer, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		return o.Spec, nil
	})
	filter := &v1.BGPFilter{ObjectMeta: metav1.ObjectMeta{Name: "only-pods"}, Spec: v1.BGPFilterSpec{
		ImportV4: []v1.BGPFilterRule{{CIDR: "10.244.0.0/16", MatchOperator: "In", PrefixLength: &v1.PrefixLengthRange{Min: ptr(int32(16)), Max: ptr(int32(32))}, Action: "Accept"}, {Action: "Reject"}},
	}}
	roundTrip(t, "BGPFilter", filter.Spec, func() (any, error) {
		o, err := c.BGPFilters().Create(ctx, filter, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		return o.Spec, nil
	})
	st := &v1.CairnNodeStatus{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: v1.CairnNodeStatusSpec{Node: "node-1"}}
	created, err := c.CairnNodeStatuses().Create(ctx, st, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create CairnNodeStatus: %v", err)
	}
	created.Status = v1.CairnNodeStatusStatus{
		AgentVersion: "dev", LastUpdated: &metav1.Time{Time: time.Now().Truncate(time.Second)},
		BGP:    v1.NodeBGPStatus{Established: 1, NotEstablished: 1, Peers: []v1.BGPSessionStatus{{PeerIP: "10.0.0.1", Type: "Global", State: "Established", PrefixesReceived: 2}}},
		Blocks: []string{"10.244.0.0/27"},
		Routes: v1.NodeRouteStatus{Announced: []string{"10.244.0.0/27"}, Learned: []v1.LearnedRouteStatus{
			{Prefix: "10.244.0.32/27", NextHops: []string{"10.0.1.2"}, State: v1.LearnedRouteInstalled},
			{Prefix: "10.244.0.64/27", NextHops: []string{"10.244.0.5"}, State: v1.LearnedRouteRefused, Reason: "next hop is a local pod"},
		}, LearnedCount: 2, RefusedCount: 1},
	}
	updated, err := c.CairnNodeStatuses().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update CairnNodeStatus status: %v", err)
	}
	if updated.Status.BGP.Peers[0].State != "Established" || updated.Status.Routes.LearnedCount != 2 ||
		!reflect.DeepEqual(updated.Status.Routes, created.Status.Routes) {
		t.Errorf("CairnNodeStatus status did not round-trip: %+v", updated.Status)
	}
}

func roundTrip(t *testing.T, kind string, want any, create func() (any, error)) {
	t.Helper()
	got, err := create()
	if err != nil {
		t.Errorf("create %s: %v", kind, err)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s spec changed on the way:\n got %+v\nwant %+v", kind, got, want)
	}
}

func testDefaults(t *testing.T, ctx context.Context, cs versioned.Interface) {
	c := cs.CairnV1alpha1()
	v4, err := c.IPPools().Create(ctx, &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "def-v4"}, Spec: v1.IPPoolSpec{CIDR: "10.50.0.0/16"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create IPv4 pool: %v", err)
	}
	if v4.Spec.BlockSize != 26 || v4.Spec.NATOutgoing || v4.Spec.Disabled || v4.Spec.AssignmentMode != "Automatic" ||
		!reflect.DeepEqual(v4.Spec.AllowedUses, []v1.IPPoolUse{v1.IPPoolUseWorkload}) {
		t.Errorf("IPv4 pool defaults: got %+v, want blockSize 26, natOutgoing/disabled false, Automatic, allowedUses [Workload]", v4.Spec)
	}
	v6, err := c.IPPools().Create(ctx, &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "def-v6"}, Spec: v1.IPPoolSpec{CIDR: "fd00:10:244::/56"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create IPv6 pool: %v", err)
	}
	if v6.Spec.BlockSize != 122 {
		t.Errorf("IPv6 pool blockSize = %d, want 122", v6.Spec.BlockSize)
	}
	// A LoadBalancer pool smaller than a block: it is never cut into
	// blocks, so the policy gives it no blockSize (a field nothing reads).
	lb, err := c.IPPools().Create(ctx, &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "def-lb"},
		Spec: v1.IPPoolSpec{CIDR: "192.0.2.0/29", AllowedUses: []v1.IPPoolUse{v1.IPPoolUseLoadBalancer}}}, metav1.CreateOptions{})
	if err != nil {
		t.Errorf("create a /29 LoadBalancer pool: %v", err)
	} else if !reflect.DeepEqual(lb.Spec.AllowedUses, []v1.IPPoolUse{v1.IPPoolUseLoadBalancer}) || lb.Spec.BlockSize != 0 {
		t.Errorf("LoadBalancer pool: allowedUses %v, blockSize %d; want [LoadBalancer] and no blockSize", lb.Spec.AllowedUses, lb.Spec.BlockSize)
	}
	cfg, err := c.BGPConfigurations().Create(ctx, &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "node.defaults"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create BGPConfiguration: %v", err)
	}
	if cfg.Spec.ASNumber != 64512 || cfg.Spec.NodeToNodeMeshEnabled == nil || !*cfg.Spec.NodeToNodeMeshEnabled || cfg.Spec.ListenPort != 179 {
		t.Errorf("BGPConfiguration defaults: got asNumber %d mesh %v listenPort %d, want 64512 true 179",
			cfg.Spec.ASNumber, cfg.Spec.NodeToNodeMeshEnabled, cfg.Spec.ListenPort)
	}
	peer, err := c.BGPPeers().Create(ctx, &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "def-peer"}, Spec: v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create BGPPeer: %v", err)
	}
	if peer.Spec.SourceAddress != v1.SourceAddressUseNodeIP {
		t.Errorf("BGPPeer sourceAddress = %q, want UseNodeIP", peer.Spec.SourceAddress)
	}
}

func testImmutable(t *testing.T, ctx context.Context, cs versioned.Interface) {
	c := cs.CairnV1alpha1().IPPools()
	p, err := c.Create(ctx, &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "immutable"}, Spec: v1.IPPoolSpec{CIDR: "10.60.0.0/16"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.CIDR = "10.61.0.0/16"
	_, err = c.Update(ctx, p, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.cidr") || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("changing cidr: got %v, want Invalid naming spec.cidr as immutable", err)
	}
	p.Spec.CIDR = "10.60.0.0/16"
	p.Spec.AllowedUses = []v1.IPPoolUse{v1.IPPoolUseLoadBalancer}
	_, err = c.Update(ctx, p, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.allowedUses") || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("turning a pod pool into a LoadBalancer pool: got %v, want Invalid naming spec.allowedUses as immutable", err)
	}
	p.Spec.AllowedUses = nil // the default, Workload: unchanged
	p.Spec.Disabled = true
	if _, err := c.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Errorf("disabling a pool must be allowed: %v", err)
	}
}

func testPrinterColumns(t *testing.T, cp *controlplane.ControlPlane) {
	bin, err := controlplane.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(bin, "kubectl")
	cacheDir := t.TempDir() // kubectl's discovery cache: this API server's only, not ~/.kube/cache
	for _, tc := range []struct {
		resource string
		header   []string
		row      []string
	}{
		{"ippools", []string{"NAME", "CIDR", "BLOCKSIZE", "NATOUTGOING", "DISABLED"}, []string{"rt-pool", "10.244.0.0/16", "27", "true", "false"}},
		{"bgppeers", []string{"NAME", "PEERIP", "ASN", "NODE", "NODESELECTOR"}, []string{"tor", "fd00::1", "65001", "rack=r1"}},
	} {
		out, err := exec.Command(kubectl, "--kubeconfig", cp.Kubeconfig, "--cache-dir", cacheDir, "get", tc.resource).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get %s: %v\n%s", tc.resource, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if fields := strings.Fields(lines[0]); !reflect.DeepEqual(fields[:len(tc.header)], tc.header) {
			t.Errorf("kubectl get %s header = %v, want it to start with %v", tc.resource, fields, tc.header)
		}
		found := false
		for _, l := range lines[1:] {
			if strings.Join(strings.Fields(l), " ") != "" && strings.HasPrefix(l, tc.row[0]+" ") {
				found = containsInOrder(strings.Fields(l), tc.row)
			}
		}
		if !found {
			t.Errorf("kubectl get %s has no row with %v:\n%s", tc.resource, tc.row, out)
		}
	}
}

func containsInOrder(fields, want []string) bool {
	i := 0
	for _, f := range fields {
		if i < len(want) && f == want[i] {
			i++
		}
	}
	return i == len(want)
}
