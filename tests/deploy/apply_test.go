package deploy

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	cairnclient "github.com/cairn-net/cairn/apis/client/clientset/versioned"
	"github.com/cairn-net/cairn/internal/controlplane"
	"github.com/cairn-net/cairn/internal/controlplane/cptest"
	"github.com/cairn-net/cairn/internal/testenv"
)

// kubectl is the pinned kubectl built beside etcd and kube-apiserver.
func kubectl(t *testing.T) string {
	t.Helper()
	dir, err := controlplane.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "kubectl")
}

// TestKubectlApplyK applies deploy/ as a cluster admin would, with the
// pinned kubectl, to a real API server that has nothing of Cairn yet; then,
// once the CRDs are established, the lab overlay and the examples. The API
// server accepts every object (schemas, the admission policy), and what
// each apply creates is there.
func TestKubectlApplyK(t *testing.T) {
	testenv.Require(t, cptest.Binaries(), testenv.Check("the pinned kubectl", func() error {
		dir, err := controlplane.BinDir()
		if err != nil {
			return err
		}
		_, err = exec.LookPath(filepath.Join(dir, "kubectl"))
		return err
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err := controlplane.Start(ctx, controlplane.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver log tail:\n%s", cp.LogTail("kube-apiserver", 40))
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	root := repoRoot(t)
	// kubectl's discovery cache describes this API server only: not ~/.kube/cache.
	cacheDir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, kubectl(t), append([]string{"--kubeconfig", cp.Kubeconfig, "--cache-dir", cacheDir}, args...)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	run("apply", "-k", "deploy/")
	run("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
	// The IPPool defaulting policy sees a new CRD's schema a moment after
	// the CRD is established; until then it refuses IPPool creates.
	if err := controlplane.WaitPoliciesActive(ctx, cp.Config, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	run("apply", "-k", "deploy/overlays/lab")
	run("apply", "-k", "deploy/examples")

	kube, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	cairn, err := cairnclient.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := kube.AppsV1().DaemonSets("cairn-system").Get(ctx, "cairn-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := ds.Spec.Template.Spec.Containers[0].Image; img != "cairn.dev/cairn:lab" {
		t.Errorf("after the lab overlay the DaemonSet runs %s, want cairn.dev/cairn:lab", img)
	}
	for _, name := range []string{"kubernetes-services-endpoint"} {
		if _, err := kube.CoreV1().ConfigMaps("cairn-system").Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("ConfigMap %s: %v", name, err)
		}
	}
	if _, err := kube.CoreV1().Secrets("cairn-system").Get(ctx, "tor-rack1-bgp", metav1.GetOptions{}); err != nil {
		t.Errorf("example Secret: %v", err)
	}
	for _, name := range []string{"lab-pool", "default-ipv4"} {
		p, err := cairn.CairnV1alpha1().IPPools().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("IPPool %s: %v", name, err)
			continue
		}
		if p.Spec.BlockSize != 26 {
			t.Errorf("IPPool %s: blockSize %d, want 26 (set, or defaulted by the admission policy)", name, p.Spec.BlockSize)
		}
	}
	for _, name := range []string{"tor-r1", "tor-rack1"} {
		if _, err := cairn.CairnV1alpha1().BGPPeers().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("BGPPeer %s: %v", name, err)
		}
	}
	// Applying again changes nothing and fails nothing: the way to update.
	run("apply", "-k", "deploy/")
}
