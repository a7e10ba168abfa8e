package deploy

import (
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/internal/lab"
)

// key names an object across renders.
func key(kind, namespace, name string) string { return kind + " " + namespace + "/" + name }

// Every CRD make generate writes is installed by the base, and every
// object of the base by the lab overlay, which lists the base's parts
// itself (an overlay cannot take the folder that contains it).
func TestOverlaysInstallTheWholeBase(t *testing.T) {
	base, labr := render(t, "deploy"), render(t, "deploy/overlays/lab")
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in deploy/crds (%v)", err)
	}
	if got := len(base.ofKind("CustomResourceDefinition")); got != len(files) {
		t.Errorf("the base installs %d CRDs, deploy/crds holds %d: run make generate (it writes deploy/crds/Kustomization)", got, len(files))
	}
	in := map[string]bool{}
	for _, o := range labr.objs {
		in[key(o.GetKind(), o.GetNamespace(), o.GetName())] = true
	}
	for _, o := range base.objs {
		if k := key(o.GetKind(), o.GetNamespace(), o.GetName()); !in[k] {
			t.Errorf("%s is in the base, not in the lab overlay", k)
		}
	}
	for _, o := range base.objs {
		if o.GetKind() == "Namespace" || o.GetKind() == "CustomResourceDefinition" {
			continue
		}
		if ns := o.GetNamespace(); ns != "" && ns != lab.AgentNamespace {
			t.Errorf("%s %s in namespace %s, want %s", o.GetKind(), o.GetName(), ns, lab.AgentNamespace)
		}
	}
}

// The lab overlay creates what cairn-lab creates for its default
// topology (one rack behind one ToR), and points the agents at the lab's
// API server.
func TestLabOverlayHasTheLabsObjects(t *testing.T) {
	plan, err := lab.NewPlan(lab.PlanOptions{Racks: 1, NodesPerRack: 3, Router: lab.RouterBIRD})
	if err != nil {
		t.Fatal(err)
	}
	r := render(t, "deploy/overlays/lab")
	for _, kind := range []string{"IPPool", "BGPConfiguration", "BGPPeer"} {
		for _, o := range r.ofKind(kind) {
			if o.GetNamespace() != "" {
				t.Errorf("%s %s has namespace %s: the kind is cluster-scoped", kind, o.GetName(), o.GetNamespace())
			}
			if o.GetLabels()[lab.LabLabel] != "true" {
				t.Errorf("%s %s lacks the %s label the lab marks its objects with", kind, o.GetName(), lab.LabLabel)
			}
		}
	}

	pool := into[cairnv1.IPPool](t, r.find(t, "IPPool", lab.PoolName))
	if pool.Spec.CIDR != lab.PoolCIDR || pool.Spec.BlockSize != lab.BlockSize {
		t.Errorf("IPPool %s: %s /%d, want %s /%d", pool.Name, pool.Spec.CIDR, pool.Spec.BlockSize, lab.PoolCIDR, lab.BlockSize)
	}
	lb := into[cairnv1.IPPool](t, r.find(t, "IPPool", lab.LBPoolName))
	if lb.Spec.CIDR != lab.LoadBalancerPoolCIDR || !slices.Equal(lb.Spec.AllowedUses, []cairnv1.IPPoolUse{cairnv1.IPPoolUseLoadBalancer}) {
		t.Errorf("IPPool %s: %s for %v, want %s for [LoadBalancer]", lb.Name, lb.Spec.CIDR, lb.Spec.AllowedUses, lab.LoadBalancerPoolCIDR)
	}
	cfg := into[cairnv1.BGPConfiguration](t, r.find(t, "BGPConfiguration", "default"))
	if cfg.Spec.ASNumber != plan.BGP.ASNumber || cfg.Spec.NodeToNodeMeshEnabled == nil || *cfg.Spec.NodeToNodeMeshEnabled != plan.BGP.MeshEnabled {
		t.Errorf("BGPConfiguration default: %+v, want AS %d, mesh %v", cfg.Spec, plan.BGP.ASNumber, plan.BGP.MeshEnabled)
	}
	for _, rng := range []struct {
		field  string
		blocks []cairnv1.ServiceIPBlock
		want   string
	}{
		{"serviceClusterIPs", cfg.Spec.ServiceClusterIPs, lab.ServiceClusterCIDR},
		{"serviceExternalIPs", cfg.Spec.ServiceExternalIPs, lab.ServiceExternalCIDR},
		{"serviceLoadBalancerIPs", cfg.Spec.ServiceLoadBalancerIPs, lab.ServiceLoadBalancerCIDR},
	} {
		if len(rng.blocks) != 1 || rng.blocks[0].CIDR != rng.want {
			t.Errorf("BGPConfiguration default %s: %v, want [%s]", rng.field, rng.blocks, rng.want)
		}
	}
	var want []cairnv1.BGPPeerSpec
	for _, rack := range plan.Racks {
		want = append(want, cairnv1.BGPPeerSpec{NodeSelector: lab.RackLabel + "=" + rack.Name, PeerIP: rack.ToR.RouterID.String(), ASNumber: rack.ToR.AS})
		p := into[cairnv1.BGPPeer](t, r.find(t, "BGPPeer", "tor-"+rack.Name))
		if p.Spec.NodeSelector != want[len(want)-1].NodeSelector || p.Spec.PeerIP != want[len(want)-1].PeerIP || p.Spec.ASNumber != want[len(want)-1].ASNumber {
			t.Errorf("BGPPeer %s: %+v, want %+v", p.Name, p.Spec, want[len(want)-1])
		}
	}
	if got := len(r.ofKind("BGPPeer")); got != len(want) {
		t.Errorf("%d BGPPeers, want %d (one per ToR)", got, len(want))
	}

	cm := into[corev1.ConfigMap](t, r.find(t, "ConfigMap", "kubernetes-services-endpoint"))
	got := net.JoinHostPort(cm.Data["KUBERNETES_SERVICE_HOST"], cm.Data["KUBERNETES_SERVICE_PORT"])
	if want := net.JoinHostPort(plan.ControlPlane.Addr.String(), strconv.Itoa(lab.APIServerPort)); got != want {
		t.Errorf("agents reach the API server at %s, the lab's is at %s", got, want)
	}
	if cm.Namespace != lab.AgentNamespace {
		t.Errorf("kubernetes-services-endpoint in %q, want %s, beside the agents", cm.Namespace, lab.AgentNamespace)
	}
}

// The examples render, and the ToR peer's password Secret is among them,
// in the agents' namespace, with the key the peer names.
func TestExamples(t *testing.T) {
	r := render(t, "deploy/examples")
	for _, kind := range []string{"IPPool", "BGPConfiguration", "BGPPeer"} {
		if len(r.ofKind(kind)) == 0 {
			t.Errorf("no example %s", kind)
		}
	}
	for _, o := range r.ofKind("BGPPeer") {
		p := into[cairnv1.BGPPeer](t, o)
		if p.Spec.Password == nil || p.Spec.Password.SecretKeyRef == nil {
			continue
		}
		ref := p.Spec.Password.SecretKeyRef
		s := into[corev1.Secret](t, r.find(t, "Secret", ref.Name))
		if _, ok := s.StringData[ref.Key]; !ok && !slices.Contains(keys(s.Data), ref.Key) {
			t.Errorf("Secret %s has no key %s that BGPPeer %s names", s.Name, ref.Key, p.Name)
		}
		if s.Namespace != lab.AgentNamespace {
			t.Errorf("Secret %s in %q: the agents read BGP passwords in %s only", s.Name, s.Namespace, lab.AgentNamespace)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// clusterScoped are the built-in kinds of deploy/ that have no namespace;
// Cairn's own come from their CRDs.
var clusterScoped = []string{"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
	"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"}

// kustomize puts a namespace on every kind it does not know to be
// cluster-scoped when a kustomization sets one: no render may.
func TestClusterScopedObjectsHaveNoNamespace(t *testing.T) {
	scoped := slices.Clone(clusterScoped)
	for _, o := range render(t, "deploy").ofKind("CustomResourceDefinition") {
		crd := o.Object["spec"].(map[string]any)
		if crd["scope"] == "Cluster" {
			scoped = append(scoped, crd["names"].(map[string]any)["kind"].(string))
		}
	}
	for _, dir := range []string{"deploy", "deploy/overlays/lab", "deploy/examples"} {
		for _, o := range render(t, dir).objs {
			if slices.Contains(scoped, o.GetKind()) && o.GetNamespace() != "" {
				t.Errorf("%s: %s %s has namespace %s, but its kind is cluster-scoped", dir, o.GetKind(), o.GetName(), o.GetNamespace())
			}
		}
	}
}
