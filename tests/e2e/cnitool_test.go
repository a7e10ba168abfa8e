package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// cnitoolVersion is the containernetworking/cni release whose cnitool
// drives the plugin: the one go.mod requires.
const cnitoolVersion = "v1.3.1"

// buildCNITool builds the reference runtime, cnitool, from the module
// proxy into dir.
func buildCNITool(t *testing.T, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/containernetworking/cni/cnitool@"+cnitoolVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build cnitool: %v\n%s", err, out)
	}
	return filepath.Join(dir, "cnitool")
}

// cnitoolNode runs cnitool inside one lab node, as that node's runtime.
type cnitoolNode struct {
	t      *testing.T
	l      *lab.Lab
	node   lab.Node
	tool   string
	netdir string
	podNS  string // the pod's network namespace, named per node
	// mount is the path cnitool is given for the pod's namespace; it is
	// the same string on every node (cnitool derives the container ID
	// from it), bound to this node's pod namespace in cnitool's own
	// mount namespace (ip netns exec makes one per command).
	mount string
	// cache is this node's libcni cache, bound over /var/lib/cni the
	// same way: nodes of one machine must not share ADD results.
	cache string
}

func (c *cnitoolNode) run(verb string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	script := `mount --bind "$5" /var/lib/cni && mount --bind "$1" "$2" && exec "$3" "$4" cairn "$2"`
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", c.node.NS, "sh", "-c", script, "sh",
		filepath.Join("/var/run/netns", c.podNS), c.mount, c.tool, verb, c.cache)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CNI_PATH=" + c.l.BinDir(), "NETCONFPATH=" + c.netdir,
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=cnitool-" + c.node.Name}
	var stderr strings.Builder
	cmd.Stderr = &stderr // the plugin's log; stdout is the CNI result
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// add runs cnitool add and returns the pod's address from the result.
func (c *cnitoolNode) add() netip.Addr {
	c.t.Helper()
	out := c.must("add")
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	i := strings.Index(out, "{")
	if i < 0 || json.Unmarshal([]byte(out[i:]), &res) != nil || len(res.IPs) == 0 {
		c.t.Fatalf("cnitool add on %s: no address in the result %q", c.node.Name, out)
	}
	p, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil {
		c.t.Fatalf("cnitool add on %s: address %q: %v", c.node.Name, res.IPs[0].Address, err)
	}
	return p.Addr()
}

func (c *cnitoolNode) must(verb string) string {
	c.t.Helper()
	out, err := c.run(verb)
	if err != nil {
		c.t.Fatalf("cnitool %s on %s: %v\n%s", verb, c.node.Name, err, out)
	}
	return out
}

// checkCNITool drives the built plugin and the real agent of two nodes
// with cnitool, the CNI project's reference runtime: add, check, del, del
// again, add then gc (cnitool deletes its cached attachments, then calls
// GC without the required list, which the plugin refuses), status. Both nodes are given the same netns path, so cnitool hands them
// the same container ID: each must still get its own address.
func checkCNITool(t *testing.T, l *lab.Lab) {
	nodes := l.Plan().Nodes()
	if len(nodes) < 2 {
		t.Fatalf("need two nodes, have %d", len(nodes))
	}
	dir := traversableTempDir(t)
	tool := buildCNITool(t, dir)
	mount := filepath.Join(dir, "pod-netns")
	if err := os.WriteFile(mount, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The mount point for the per-node caches; made here only if the
	// machine has none, and removed again then.
	if _, err := os.Stat("/var/lib/cni"); os.IsNotExist(err) {
		if err := os.Mkdir("/var/lib/cni", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove("/var/lib/cni") })
	}
	var runners []*cnitoolNode
	for _, n := range nodes[:2] {
		c := &cnitoolNode{t: t, l: l, node: n, tool: tool, netdir: filepath.Join(dir, n.Name, "net.d"),
			podNS: l.Plan().Prefix + "cnitool-" + n.Name, mount: mount, cache: filepath.Join(dir, n.Name, "cache")}
		for _, d := range []string{c.netdir, c.cache} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "cairn",
			"plugins": []map[string]any{{"type": "cairn-cni", "agentSocket": l.AgentSocket(n.Name)}}})
		if err := os.WriteFile(filepath.Join(c.netdir, "10-cairn.conflist"), conf, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("ip", "netns", "add", c.podNS).CombinedOutput(); err != nil {
			t.Fatalf("create %s: %v\n%s", c.podNS, err, out)
		}
		t.Cleanup(func() {
			_, _ = c.run("del") // a failed test may leave the attachment
			_ = exec.Command("ip", "netns", "del", c.podNS).Run()
		})
		runners = append(runners, c)
	}

	addrs := map[string]netip.Addr{}
	for _, c := range runners {
		addrs[c.node.Name] = c.add()
		if !hasHostRoute(t, c.node, addrs[c.node.Name]) || !allocated(t, l, addrs[c.node.Name]) {
			t.Fatalf("after add on %s, %s is not routed or not allocated", c.node.Name, addrs[c.node.Name])
		}
	}
	a, b := addrs[runners[0].node.Name], addrs[runners[1].node.Name]
	t.Logf("cnitool add with one netns path (one container ID) on two nodes: %s and %s", a, b)
	if a == b {
		t.Fatalf("two nodes handed the same address %s to one container ID", a)
	}
	for _, c := range runners {
		ip := addrs[c.node.Name]
		c.must("check")
		c.must("del")
		if hasHostRoute(t, c.node, ip) || allocated(t, l, ip) {
			t.Errorf("after del on %s, %s is still routed or allocated", c.node.Name, ip)
		}
		c.must("del") // DEL must succeed when repeated
	}
	// GC: cnitool first DELs every attachment in its cache (so the one
	// just added goes), then calls the plugin's GC without
	// cni.dev/valid-attachments at all. The spec requires the list; an
	// absent one is not "none is valid" (that would release every pod of
	// the node), so the plugin refuses it with a clear error.
	c := runners[0]
	ip := c.add()
	out, err := c.run("gc")
	if err == nil || !strings.Contains(out, "cni.dev/valid-attachments") {
		t.Errorf("cnitool gc without valid-attachments: err %v, output %q; want a refusal naming the field", err, out)
	}
	if hasHostRoute(t, c.node, ip) || allocated(t, l, ip) {
		t.Errorf("after cnitool gc on %s, %s is still routed or allocated", c.node.Name, ip)
	}
	for _, c := range runners {
		c.must("status")
	}
}
