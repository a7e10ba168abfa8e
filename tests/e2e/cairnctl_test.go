package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/internal/lab"
	"github.com/cairn-net/cairn/ipam"
)

// cairnctl runs the built cairnctl on one node of the lab, as an operator
// logged into it: in the node's namespace, with the node's kubeconfig and
// its agent socket.
type cairnctl struct {
	t   *testing.T
	l   *lab.Lab
	bin string
}

func buildCairnctl(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cairnctl")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cairnctl")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build cairnctl: %v\n%s", err, out)
	}
	return bin
}

// run returns cairnctl's exit code and output; args come after the
// global flags.
func (c cairnctl) run(ctx context.Context, node string, args ...string) (int, string, string) {
	c.t.Helper()
	argv := append([]string{c.bin, "--kubeconfig", filepath.Join(c.l.StateDir(), "nodes", node, "kubeconfig")}, args...)
	var out, errw bytes.Buffer
	code, err := c.l.Exec(ctx, node, argv, lab.Stdio{Out: &out, Err: &errw})
	if err != nil {
		c.t.Fatalf("cairnctl %v on %s: %v", args, node, err)
	}
	return code, out.String(), errw.String()
}

// explanation is what "route explain -o json" says.
type explanation struct {
	Verdict, Pod, Pool, Block, BlockNode string
	Reasons                              []string
}

func (c cairnctl) explain(ctx context.Context, node, target string) (int, explanation) {
	c.t.Helper()
	code, out, errOut := c.run(ctx, node, "route", "explain", target, "--socket", c.l.AgentSocket(node), "-o", "json")
	var e explanation
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		c.t.Fatalf("route explain %s on %s: exit %d, %v\n%s%s", target, node, code, err, out, errOut)
	}
	return code, e
}

// TestCairnctlExplainsRoutes runs cairnctl on a lab node and checks that
// node status and route explain tell the truth, with the right reason and
// exit code, for: a pod on this node, a pod on another node, a prefix the
// import filter refuses, and a route lost because its peer went over its
// maximum prefixes.
func TestCairnctlExplainsRoutes(t *testing.T) {
	l := upLab(t, lab.Options{Instance: "e2emet", Racks: 1, NodesPerRack: 2, Router: lab.RouterBIRD, PodsPerNode: 1})
	c := cairnctl{t: t, l: l, bin: buildCairnctl(t, requireLab(t, lab.RouterBIRD))}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nodes := l.Plan().Nodes()
	here, there := nodes[0], nodes[1]
	var local, remote lab.Pod
	for _, p := range l.Pods() {
		switch p.Node {
		case here.Name:
			local = p
		case there.Name:
			remote = p
		}
	}

	t.Run("node status from the agent socket and from the API", func(t *testing.T) {
		code, out, errOut := c.run(ctx, here.Name, "node", "status", "--socket", l.AgentSocket(here.Name))
		t.Logf("cairnctl node status (exit %d):\n%s%s", code, out, errOut)
		if code != 0 {
			t.Errorf("exit %d on a healthy node", code)
		}
		code, js, _ := c.run(ctx, here.Name, "node", "status", "--socket", l.AgentSocket(here.Name), "-o", "json")
		var n struct {
			Ready    bool
			Blocks   []string
			Sessions []struct{ Peer, State string }
		}
		if err := json.Unmarshal([]byte(js), &n); err != nil {
			t.Fatalf("%v\n%s", err, js)
		}
		if !n.Ready || len(n.Blocks) == 0 || len(n.Sessions) != len(l.Plan().NodePeers(here)) {
			t.Errorf("node status %+v: want ready, blocks, %d sessions", n, len(l.Plan().NodePeers(here)))
		}
		for _, s := range n.Sessions {
			if s.State != "Established" {
				t.Errorf("session %s is %s", s.Peer, s.State)
			}
		}
		if code, out, errOut := c.run(ctx, here.Name, "node", "status", there.Name); code != 0 || !strings.Contains(out, "mesh:"+here.Name) {
			t.Errorf("node status %s from the API: exit %d\n%s%s", there.Name, code, out, errOut)
		}
		if code, _, _ := c.run(ctx, here.Name, "node", "status", "no-such-node"); code != 3 {
			t.Errorf("an unknown node: exit %d, want 3", code)
		}
		if code, out, _ := c.run(ctx, here.Name, "pool", "list"); code != 0 || !strings.Contains(out, lab.PoolCIDR) {
			t.Errorf("pool list: exit %d\n%s", code, out)
		}
	})

	t.Run("a pod on this node", func(t *testing.T) {
		code, e := c.explain(ctx, here.Name, local.IP.String())
		if code != 0 || e.Verdict != "local-pod" || e.Pod != local.Namespace+"/"+local.Name || e.BlockNode != here.Name {
			t.Errorf("exit %d, %+v", code, e)
		}
		_, out, _ := c.run(ctx, here.Name, "route", "explain", local.IP.String(), "--socket", l.AgentSocket(here.Name))
		t.Logf("cairnctl route explain %s:\n%s", local.IP, out)
	})

	t.Run("a pod on another node", func(t *testing.T) {
		code, e := c.explain(ctx, here.Name, remote.Namespace+"/"+remote.Name)
		if code != 0 || e.Verdict != "installed" || e.BlockNode != there.Name || !anyContains(e.Reasons, "mesh:"+there.Name) {
			t.Errorf("exit %d, %+v", code, e)
		}
		_, out, _ := c.run(ctx, here.Name, "route", "explain", remote.Namespace+"/"+remote.Name, "--socket", l.AgentSocket(here.Name))
		t.Logf("cairnctl route explain %s/%s:\n%s", remote.Namespace, remote.Name, out)
	})

	t.Run("a prefix the import filter refuses", func(t *testing.T) {
		code, e := c.explain(ctx, here.Name, "192.0.2.0/24")
		if code != 1 || e.Verdict != "import-filtered" || !anyContains(e.Reasons, "import filter") {
			t.Errorf("exit %d, %+v", code, e)
		}
		_, out, _ := c.run(ctx, here.Name, "route", "explain", "192.0.2.0/24", "--socket", l.AgentSocket(here.Name))
		t.Logf("cairnctl route explain 192.0.2.0/24:\n%s", out)
	})

	t.Run("a route lost to a peer over its maximum prefixes", func(t *testing.T) {
		// The mesh gives way to explicit peerings between the two nodes;
		// here's accepts one prefix, and there gets a second block (as a
		// claim leaves it: the block, then its confirmed affinity), so it
		// announces two prefixes the import filter lets in.
		cl, err := l.CairnClient()
		if err != nil {
			t.Fatal(err)
		}
		second := freeBlock(ctx, t, l)
		if _, err := cl.CairnV1alpha1().IPAMBlocks().Create(ctx, &cairnv1.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: ipam.BlockName(second)},
			Spec: cairnv1.IPAMBlockSpec{CIDR: second.String(), Affinity: ipam.AffinityValue(there.Name)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.CairnV1alpha1().BlockAffinities().Create(ctx, &cairnv1.BlockAffinity{ObjectMeta: metav1.ObjectMeta{Name: ipam.AffinityName(there.Name, second)},
			Spec: cairnv1.BlockAffinitySpec{Node: there.Name, CIDR: second.String(), State: cairnv1.AffinityConfirmed}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cfg, err := cl.CairnV1alpha1().BGPConfigurations().Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		off := false
		cfg.Spec.NodeToNodeMeshEnabled = &off
		if _, err := cl.CairnV1alpha1().BGPConfigurations().Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*cairnv1.BGPPeer{
			{ObjectMeta: metav1.ObjectMeta{Name: here.Name + "-to-" + there.Name},
				Spec: cairnv1.BGPPeerSpec{Node: here.Name, PeerIP: there.Addr.String(), ASNumber: there.AS, MaxPrefixes: 1}},
			{ObjectMeta: metav1.ObjectMeta{Name: there.Name + "-to-" + here.Name},
				Spec: cairnv1.BGPPeerSpec{Node: there.Name, PeerIP: here.Addr.String(), ASNumber: here.AS}},
		} {
			if _, err := cl.CairnV1alpha1().BGPPeers().Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		target := remote.Namespace + "/" + remote.Name
		var e explanation
		var code int
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
			// Shut, the session's paths stay as stale for the graceful
			// restart time, then go: either way the reason is the limit.
			if code, e = c.explain(ctx, here.Name, target); (e.Verdict == "stale" || e.Verdict == "not-learned") && anyContains(e.Reasons, "maximum prefixes") {
				break
			}
			time.Sleep(500 * time.Millisecond) // polling interval, not synchronisation
		}
		if code != 1 || (e.Verdict != "stale" && e.Verdict != "not-learned") || !anyContains(e.Reasons, "maximum prefixes") || !anyContains(e.Reasons, there.Name) {
			_, status, _ := c.run(ctx, here.Name, "node", "status", "--socket", l.AgentSocket(here.Name))
			t.Fatalf("exit %d, %+v\n%s", code, e, status)
		}
		_, out, _ := c.run(ctx, here.Name, "route", "explain", target, "--socket", l.AgentSocket(here.Name))
		t.Logf("cairnctl route explain %s with the peer over its maximum prefixes:\n%s", target, out)
		code, out, _ = c.run(ctx, here.Name, "node", "status", "--socket", l.AgentSocket(here.Name))
		if code != 1 {
			t.Errorf("node status with a session shut: exit %d, want 1\n%s", code, out)
		}
	})
}

// freeBlock is a /26 of the lab's pool that no block holds yet.
func freeBlock(ctx context.Context, t *testing.T, l *lab.Lab) netip.Prefix {
	t.Helper()
	cl, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := cl.CairnV1alpha1().IPAMBlocks().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, b := range blocks.Items {
		used[b.Spec.CIDR] = true
	}
	pool := netip.MustParsePrefix(lab.PoolCIDR)
	for i := range 1024 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{pool.Addr().As4()[0], pool.Addr().As4()[1], byte(255 - i/4), byte(64 * (i % 4))}), 26)
		if pool.Contains(p.Addr()) && !used[p.String()] {
			return p
		}
	}
	t.Fatal("no free block in the lab's pool")
	return netip.Prefix{}
}

func anyContains(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
