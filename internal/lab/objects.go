package lab

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnclient "github.com/cairn-net/cairn/apis/client/clientset/versioned"
)

// Names and labels the lab puts on API objects.
const (
	// ASAnnotation overrides the cluster AS for one node.
	ASAnnotation = "cairn.dev/as-number"
	// RackLabel names a node's rack.
	RackLabel = "rack"
	// LabLabel marks every object the lab created.
	LabLabel = "cairn.dev/lab"
	// PoolName is the lab's IPPool.
	PoolName = "lab-pool"
	// LBPoolName is the lab's LoadBalancer IPPool (LoadBalancerPoolCIDR).
	LBPoolName = "lab-lb-pool"
	// PodNamespace is the Kubernetes namespace of the lab's pods.
	PodNamespace = "default"
	// AgentNamespace is where cairn-node runs in a real cluster.
	AgentNamespace = "cairn-system"
)

// clients bundles the lab's API clients.
type clients struct {
	kube  kubernetes.Interface
	cairn cairnclient.Interface
}

func newClients(st *State) (*clients, error) {
	cfg, err := restConfig(st)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cc, err := cairnclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cairn client: %w", err)
	}
	return &clients{kube: kube, cairn: cc}, nil
}

// createClusterObjects writes what an operator would: the Node objects
// (with real nodes, only their labels and annotations: kubelets report the
// status), the pods' IPPool and a LoadBalancer one, the BGP configuration
// and the BGPPeers to the top-of-rack routers, and the service account
// that pods need to pass admission.
func createClusterObjects(ctx context.Context, c *clients, p Plan, kubelets bool) error {
	// The agents' own namespace, as deploy/node/rbac.yaml creates it: it
	// holds the IPAM garbage-collection Lease and BGP password Secrets.
	sys := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: AgentNamespace}}
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, sys, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", AgentNamespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: PodNamespace}}
	if _, err := c.kube.CoreV1().ServiceAccounts(PodNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s/default: %w", PodNamespace, err)
	}
	for _, n := range p.Nodes() {
		if err := createNode(ctx, c.kube, n, kubelets); err != nil {
			return err
		}
	}
	pool := &cairnv1.IPPool{
		ObjectMeta: labMeta(PoolName),
		Spec:       cairnv1.IPPoolSpec{CIDR: PoolCIDR, BlockSize: int32(p.BlockSize)},
	}
	lbPool := &cairnv1.IPPool{
		ObjectMeta: labMeta(LBPoolName),
		Spec:       cairnv1.IPPoolSpec{CIDR: LoadBalancerPoolCIDR, AllowedUses: []cairnv1.IPPoolUse{cairnv1.IPPoolUseLoadBalancer}},
	}
	for _, p := range []*cairnv1.IPPool{pool, lbPool} {
		if _, err := c.cairn.CairnV1alpha1().IPPools().Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create IPPool %s: %w", p.Name, err)
		}
	}
	mesh := p.BGP.MeshEnabled
	bgpConf := &cairnv1.BGPConfiguration{
		ObjectMeta: labMeta("default"),
		Spec: cairnv1.BGPConfigurationSpec{
			ASNumber: p.BGP.ASNumber, NodeToNodeMeshEnabled: &mesh, ListenPort: 179,
			// Services are reachable from outside the cluster, as a
			// Calico user would set it up; the routers accept exactly
			// these ranges from nodes.
			ServiceClusterIPs:      serviceBlocks(ServiceClusterCIDR),
			ServiceExternalIPs:     serviceBlocks(ServiceExternalCIDR),
			ServiceLoadBalancerIPs: serviceBlocks(ServiceLoadBalancerCIDR),
		},
	}
	if p.BGP.BFD {
		bgpConf.Spec.NodeMeshBFD = labBFD()
	}
	if _, err := c.cairn.CairnV1alpha1().BGPConfigurations().Create(ctx, bgpConf, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create BGPConfiguration default: %w", err)
	}
	if p.routerPasswordSet() {
		if err := createRouterPasswordSecret(ctx, c, p.Racks[0].ToR.Peers[0].Password); err != nil {
			return err
		}
	}
	for _, r := range p.Racks {
		if err := createToRPeer(ctx, c, p, r, "tor-"+r.Name, r.ToR.RouterID.String()); err != nil {
			return err
		}
	}
	if err := createReflectorPeers(ctx, c, p); err != nil {
		return err
	}
	if p.DualStack {
		return createIPv6Objects(ctx, c, p)
	}
	return nil
}

// labBFD is the BFD the lab's BGPConfiguration and BGPPeers ask for, the
// same as its routers run.
func labBFD() *cairnv1.BFD {
	return &cairnv1.BFD{Enabled: true, Interval: &metav1.Duration{Duration: LabBFDInterval}, Multiplier: LabBFDMultiplier}
}

func serviceBlocks(cidr string) []cairnv1.ServiceIPBlock {
	return []cairnv1.ServiceIPBlock{{CIDR: cidr}}
}

func labMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Labels: map[string]string{LabLabel: "true"}}
}

// createNode registers a node as its kubelet would: labels, the AS
// annotation when the node's AS differs from the cluster's, and, unless a
// real kubelet will, its InternalIP and readiness in status.
func createNode(ctx context.Context, kube kubernetes.Interface, n Node, kubelet bool) error {
	node := &corev1.Node{ObjectMeta: labMeta(n.Name)}
	node.Labels[RackLabel] = n.Rack
	node.Labels["kubernetes.io/hostname"] = n.Name
	if n.ASAnnotation {
		node.Annotations = map[string]string{ASAnnotation: strconv.FormatInt(n.AS, 10)}
	}
	labelReflector(node, n)
	created, err := kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create Node %s: %w", n.Name, err)
	}
	if kubelet {
		return nil
	}
	created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.Addr.String()}}
	if n.Addr6.IsValid() {
		created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: n.Addr6.String()})
	}
	created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: n.Name})
	created.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "CairnLab",
		Message: "node namespace created by cairn-lab", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}}
	if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set addresses of Node %s: %w", n.Name, err)
	}
	return nil
}

// createToRPeer writes the BGPPeer from rack r's nodes to their ToR at
// addr, with the lab's BFD and TCP-MD5 settings when it has them.
func createToRPeer(ctx context.Context, c *clients, p Plan, r Rack, name, addr string) error {
	peer := &cairnv1.BGPPeer{
		ObjectMeta: labMeta(name),
		Spec: cairnv1.BGPPeerSpec{
			NodeSelector: RackLabel + "=" + r.Name,
			PeerIP:       addr,
			ASNumber:     r.ToR.AS,
		},
	}
	if p.BGP.BFD {
		peer.Spec.BFD = labBFD()
	}
	if p.routerPasswordSet() {
		peer.Spec.Password = &cairnv1.BGPPassword{SecretKeyRef: &cairnv1.SecretKeyRef{Name: RouterPasswordSecret, Key: RouterPasswordKey}}
	}
	if _, err := c.cairn.CairnV1alpha1().BGPPeers().Create(ctx, peer, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create BGPPeer %s: %w", peer.Name, err)
	}
	return nil
}
