package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/lab"
)

// pluginCall runs cairn-cni in node n as a runtime does and returns the
// started process: the caller waits for it, or kills it.
func pluginCall(t *testing.T, l *lab.Lab, n lab.Node, command string, env []string, conf map[string]any) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	base := map[string]any{"cniVersion": "1.1.0", "name": "cairn", "type": "cairn-cni", "agentSocket": l.AgentSocket(n.Name)}
	for k, v := range conf {
		base[k] = v
	}
	stdin, _ := json.Marshal(base)
	cmd := exec.Command("ip", "netns", "exec", n.NS, filepath.Join(l.BinDir(), "cairn-cni"))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "CNI_COMMAND=" + command, "CNI_PATH=" + l.BinDir()}, env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start cairn-cni %s: %v", command, err)
	}
	return cmd, &out
}

// allocationsOf describes every block allocation held for a pod whose
// name match accepts.
func allocationsOf(t *testing.T, l *lab.Lab, match func(pod string) bool) []string {
	t.Helper()
	cc, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	blocks, err := cc.CairnV1alpha1().IPAMBlocks().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list IPAMBlocks: %v", err)
	}
	var out []string
	for _, b := range blocks.Items {
		for _, a := range b.Spec.Allocations {
			if match(a.Pod) {
				out = append(out, fmt.Sprintf("block %s ordinal %d for %s/%s (handle %s)", b.Name, a.Ordinal, a.Namespace, a.Pod, a.Handle))
			}
		}
	}
	return out
}

// checkPluginKilledMidAdd kills the plugin at random points of 50 ADDs on
// one node, removes those sandboxes (as a runtime whose pods died would),
// then runs CNI GC with the live pods as the valid attachments: no veth,
// route, record or allocation of the killed ADDs may remain, and the live
// pods keep theirs.
func checkPluginKilledMidAdd(t *testing.T, l *lab.Lab) {
	const rounds = 50
	n := l.Plan().Nodes()[0]
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
	finished := 0
	for i := range rounds {
		podNS := fmt.Sprintf("%skill-%d", l.Plan().Prefix, i)
		if out, err := exec.Command("ip", "netns", "add", podNS).CombinedOutput(); err != nil {
			t.Fatalf("create %s: %v\n%s", podNS, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", podNS).Run() }) // gone already unless the test failed
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		cmd, _ := pluginCall(t, l, n, "ADD", []string{
			"CNI_CONTAINERID=" + hex.EncodeToString(id), "CNI_NETNS=" + lab.NSPath(podNS), "CNI_IFNAME=eth0",
			fmt.Sprintf("CNI_ARGS=K8S_POD_NAMESPACE=%s;K8S_POD_NAME=kill-%d", lab.PodNamespace, i),
		}, nil)
		// An ADD takes tens of milliseconds here: kill points spread
		// over its whole run, some after it finished.
		time.Sleep(time.Duration(rng.IntN(80_000)) * time.Microsecond) // the kill point, not a synchronisation
		// Kill fails only if the plugin already exited.
		_ = cmd.Process.Kill()
		if cmd.Wait() == nil {
			finished++
		}
		// The runtime tears the dead sandbox down.
		if out, err := exec.Command("ip", "netns", "del", podNS).CombinedOutput(); err != nil {
			t.Fatalf("delete %s: %v\n%s", podNS, err, out)
		}
	}
	t.Logf("%d ADDs: %d finished before the kill, %d killed part-way", rounds, finished, rounds-finished)

	var valid []map[string]string
	live := 0
	for _, p := range l.Pods() {
		if p.Node == n.Name {
			valid = append(valid, map[string]string{"containerID": p.ContainerID, "ifname": "eth0"})
			live++
		}
	}
	gc, out := pluginCall(t, l, n, "GC", nil, map[string]any{"cni.dev/valid-attachments": valid})
	if err := gc.Wait(); err != nil {
		t.Fatalf("CNI GC: %v: %s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	links, err := l.Output(ctx, n.Name, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if veths := strings.Count(string(links), ": crn"); veths != live {
		t.Errorf("%d host veths on %s after GC, %d live pods:\n%s", veths, n.Name, live, links)
	}
	routes, err := lab.KernelRoutes(ctx, n.NS)
	if err != nil {
		t.Fatal(err)
	}
	hostRoutes := 0
	for _, r := range routes {
		if strings.HasPrefix(r.Dev, "crn") {
			hostRoutes++
		}
	}
	if hostRoutes != live {
		t.Errorf("%d pod routes on %s after GC, %d live pods: %+v", hostRoutes, n.Name, live, routes)
	}
	for _, left := range allocationsOf(t, l, func(pod string) bool { return strings.HasPrefix(pod, "kill-") }) {
		t.Errorf("left behind: %s", left)
	}
	cc, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	handles, err := cc.CairnV1alpha1().IPAMHandles().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range handles.Items {
		if strings.HasPrefix(h.Spec.Pod, "kill-") {
			t.Errorf("handle %s of %s/%s left behind", h.Name, h.Spec.Namespace, h.Spec.Pod)
		}
	}
}
