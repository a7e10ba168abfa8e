package lab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cairn-net/cairn/internal/controlplane"
)

// upRealNodes is upNodes for real nodes: on every node containerd and a
// kubelet, with the images imported; Cairn installed from the lab overlay
// (or, with AgentProcesses, cairn-node run and cairn-cni placed as in the
// fast mode); then pods through the API.
func (l *Lab) upRealNodes(ctx context.Context, o Options) error {
	start := time.Now()
	if err := l.waitAPIReachable(ctx); err != nil {
		return err
	}
	nodes := l.st.Plan.Nodes()
	if !l.st.DaemonSet {
		for _, n := range nodes {
			p, err := startAgent(l.st, n, o.AgentLogLevel)
			if err != nil {
				return err
			}
			if err := l.st.addProc(p); err != nil {
				return err
			}
			if err := l.installCNI(n); err != nil {
				return err
			}
		}
	}
	if err := ensureMountPoints(l.logf); err != nil {
		return err
	}
	for _, n := range nodes {
		if err := l.installNodeCNIPlugins(n); err != nil {
			return err
		}
		if err := l.startNodeHost(n, l.st.Images[imagePause]); err != nil {
			return err
		}
	}
	if err := l.importAll(ctx, nodes, l.imageTarballs()); err != nil {
		return err
	}
	l.logf("containerd and kubelet on %d nodes, images imported, after %v", len(nodes), time.Since(start).Round(time.Millisecond))
	if l.st.DaemonSet {
		if err := l.installCairn(ctx); err != nil {
			return err
		}
		if err := l.waitAgentPods(ctx, 3*time.Minute); err != nil {
			return err
		}
	} else {
		for _, n := range nodes {
			if err := l.waitAgentReady(ctx, n); err != nil {
				return err
			}
		}
	}
	if err := l.waitNodesReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	l.Timings.Agents = time.Since(start)
	l.logf("agents ready, kubelets Ready on %d nodes after %v", len(nodes), l.Timings.Agents.Round(time.Millisecond))
	if err := l.upServices(ctx); err != nil {
		return err
	}
	start = time.Now()
	if o.PodsPerNode > 0 {
		var names []string
		for _, n := range nodes {
			names = append(names, n.Name)
		}
		pods, took, err := l.addRealPods(ctx, names, o.PodsPerNode)
		if err != nil {
			return err
		}
		for _, p := range pods {
			l.logf("pod %s on %s: %s", p.Name, p.Node, p.IP)
		}
		l.Timings.PodStart = summarize(took)
		l.logf("%d pods created to Running: %v", len(took), l.Timings.PodStart)
	}
	l.Timings.Pods = time.Since(start)
	start = time.Now()
	if err := l.waitSettled(ctx, 90*time.Second); err != nil {
		return err
	}
	l.Timings.Converge = time.Since(start)
	l.logf("converged after %v: every session Established, every pod routed", l.Timings.Converge.Round(time.Millisecond))
	return nil
}

// importAll waits for every node's containerd and imports the images into
// it, the nodes side by side: the import is mostly the runtime unpacking
// layers.
func (l *Lab) importAll(ctx context.Context, nodes []Node, tarballs []string) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = l.waitRuntime(ctx, n); errs[i] == nil {
				errs[i] = l.importImages(ctx, n, tarballs)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// imageTarballs lists the tarballs of the images the lab built.
func (l *Lab) imageTarballs() []string {
	var out []string
	for _, tb := range l.imageFiles {
		out = append(out, tb)
	}
	sort.Strings(out)
	return out
}

// Durations summarizes how long a batch of operations took each.
type Durations struct {
	N             int
	P50, P90, Max time.Duration
}

func (d Durations) String() string {
	if d.N == 0 {
		return "none"
	}
	return fmt.Sprintf("n=%d p50 %v p90 %v max %v", d.N, d.P50.Round(time.Millisecond), d.P90.Round(time.Millisecond), d.Max.Round(time.Millisecond))
}

func summarize(ds []time.Duration) Durations {
	if len(ds) == 0 {
		return Durations{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1)+0.5)] }
	return Durations{N: len(s), P50: at(0.5), P90: at(0.9), Max: s[len(s)-1]}
}

// AddRealPods creates perNode pods on each named node of a real-node lab
// at once and waits until they run; it returns them and how long each
// took from creation to Running.
func (l *Lab) AddRealPods(ctx context.Context, nodes []string, perNode int) ([]Pod, Durations, error) {
	var pods []Pod
	var took []time.Duration
	err := l.mutate(func() error {
		if !l.st.Kubelet {
			return fmt.Errorf("the lab's nodes are not real (up --kubelet)")
		}
		var err error
		pods, took, err = l.addRealPods(ctx, nodes, perNode)
		return err
	})
	return pods, summarize(took), err
}

// RealNodeTools says what real nodes (Options.Kubelet) need that this
// machine lacks, or nil: Debian's containerd, runc and CNI reference
// plugins (`make deps`), util-linux's nsenter and unshare, and the pinned
// kubelet, kube-proxy, kube-scheduler and kube-controller-manager (`make
// controlplane`).
func RealNodeTools() error {
	var missing []error
	for _, t := range []string{"containerd", "runc", "ctr", "nsenter", "unshare"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, fmt.Errorf("%s: %w (make deps)", t, err))
		}
	}
	for _, p := range nodeCNIPlugins {
		if !isExecutable(filepath.Join(debianCNIDir, p)) {
			missing = append(missing, fmt.Errorf("the CNI reference plugin %s in %s (make deps)", p, debianCNIDir))
		}
	}
	dir, err := controlplane.BinDir()
	if err != nil {
		return err
	}
	for _, b := range []string{"kubelet", binKubeProxy, "kube-scheduler", binKubeCM} {
		if !isExecutable(filepath.Join(dir, b)) {
			missing = append(missing, fmt.Errorf("%s in %s (make controlplane)", b, dir))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("real nodes need: %w", errors.Join(missing...))
	}
	return nil
}

// NodeFile is where the host reads path as real node `node` sees it
// (/etc/cni/net.d/10-cairn.conflist, /var/log/pods/...): the node's
// private copy of that directory, under the state directory.
func (l *Lab) NodeFile(node, path string) (string, error) {
	if !l.st.Kubelet {
		return "", fmt.Errorf("the lab's nodes are not real (up --kubelet): %s is the host's own", path)
	}
	if _, ok := l.st.Plan.Node(node); !ok {
		return "", fmt.Errorf("no node %q in the lab", node)
	}
	for _, p := range privatePaths {
		if path == p.Path || strings.HasPrefix(path, p.Path+"/") {
			return newNodePaths(l.st.Dir, node).private(path), nil
		}
	}
	return "", fmt.Errorf("%s is not private to a node: the node sees the host's", path)
}
