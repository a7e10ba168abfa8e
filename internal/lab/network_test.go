package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/controlplane/cptest"
	"github.com/cairn-net/cairn/internal/testenv"
)

// TestNetworkWithoutAgents brings up two racks (namespaces, links, routers,
// control plane and objects, no cairn-node) with each router daemon, and
// checks what the lab itself promises: the routers peer with each other,
// every node reaches the API server through them, and Down (twice) leaves
// nothing behind. It needs root, the routers and the control plane.
func TestNetworkWithoutAgents(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.NetNS, testenv.Binary("ip"), cptest.Binaries())
	for _, router := range []string{RouterBIRD, RouterFRR} {
		t.Run(router, func(t *testing.T) {
			testenv.Require(t, testenv.Binary(map[string]string{RouterBIRD: "bird", RouterFRR: "vtysh"}[router]))
			testNetwork(t, router)
		})
	}
}

func testNetwork(t *testing.T, router string) {
	base, err := os.MkdirTemp("", "cairn-lab-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil { // FRR reaches its files as user frr
		t.Fatal(err)
	}
	dir := filepath.Join(base, "lab")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := Up(ctx, Options{
		StateDir: dir, Racks: 2, NodesPerRack: 1, Router: router, Instance: "labtest",
		SkipAgents: true, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	var nss []string
	t.Cleanup(func() {
		for i := 0; i < 2; i++ {
			if err := Down(context.Background(), dir, t.Logf); err != nil {
				t.Errorf("down #%d: %v", i+1, err)
			}
		}
		existing, err := labNamespaces(context.Background())
		if err != nil {
			t.Error(err)
		}
		for _, ns := range existing {
			if contains(nss, ns) {
				t.Errorf("namespace %s survives down", ns)
			}
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state directory survives down: %v", err)
		}
	})
	nss = append(nss, l.st.Namespaces...)
	for _, ns := range nss {
		if !strings.HasPrefix(ns, NSPrefix+"labtest-") {
			t.Errorf("namespace %s lacks the instance prefix", ns)
		}
	}
	// Router to router sessions carry the lab's networks, so nodes of the
	// second rack reach the control plane behind the first rack's ToR.
	err = until(ctx, 60*time.Second, 200*time.Millisecond, "router sessions", func(ctx context.Context) (bool, error) {
		for _, r := range l.st.Plan.Routers() {
			sessions, err := l.drv.sessions(ctx, r, routerDir(dir, r.Name))
			if err != nil {
				return false, err
			}
			up := map[string]bool{}
			for _, s := range sessions {
				up[s.Addr.String()] = s.Established()
			}
			for _, p := range r.Peers {
				if p.Kind == PeerRouter && !up[p.Addr.String()] {
					return false, fmt.Errorf("session %s -> %s is not Established", r.Name, p.Name)
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.waitAPIReachable(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.st.Plan.Nodes() {
		got, err := RouteGet(ctx, n.NS, l.st.Plan.ControlPlane.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if got.Gateway != n.Gateway {
			t.Errorf("%s reaches the control plane %s, want via its ToR %s", n.Name, got, n.Gateway)
		}
	}
	cc, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	peers, err := cc.CairnV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(peers.Items) != 2 {
		t.Errorf("BGPPeers = %d, want one per rack", len(peers.Items))
	}
}
