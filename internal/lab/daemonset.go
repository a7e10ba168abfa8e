package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/controlplane"
)

// With real nodes Cairn is installed as users install it: `kubectl apply
// -k deploy/overlays/lab`, the cairn-node DaemonSet, whose init container
// puts cairn-cni and the conflist into each node's CNI directories.

// Where the DaemonSet is and what labels its pods.
const (
	labOverlay      = "deploy/overlays/lab"
	daemonSetName   = "cairn-node"
	daemonSetLabel  = "app=cairn-node"
	daemonSetTarget = "daemonset/" + daemonSetName
	// agentContainer is the DaemonSet's agent container.
	agentContainer = "cairn-node"
)

// installCairn installs Cairn as users do, `kubectl apply -k
// deploy/overlays/lab`, from inside the control plane's namespace (where
// the API server's address is); then it puts back the lab's own cluster
// BGP settings, which the overlay (written for one rack) may not match.
// The overlay's conflist is the base's, unchanged: its CNI version is one
// the nodes' containerd 1.6 reads (deploy/node/kustomization.yaml says
// why).
func (l *Lab) installCairn(ctx context.Context) error {
	bins, err := controlplane.BinDir()
	if err != nil {
		return err
	}
	overlay := filepath.Join(l.st.RepoRoot, labOverlay)
	if _, err := os.Stat(overlay); err != nil {
		return fmt.Errorf("find the lab overlay: %w", err)
	}
	argv := append([]string{"ip", "netns", "exec", l.st.Plan.ControlPlane.NS}, l.kubectlArgv(bins)...)
	argv = append(argv, "apply", "--server-side", "--force-conflicts", "-k", overlay)
	if _, err := run(ctx, argv...); err != nil {
		return fmt.Errorf("install Cairn (kubectl apply -k %s): %w", labOverlay, err)
	}
	return l.restoreClusterBGP(ctx)
}

// restoreClusterBGP sets BGPConfiguration "default" to the plan's AS and
// mesh setting.
func (l *Lab) restoreClusterBGP(ctx context.Context) error {
	confs := l.c.cairn.CairnV1alpha1().BGPConfigurations()
	conf, err := confs.Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read BGPConfiguration default: %w", err)
	}
	mesh := l.st.Plan.BGP.MeshEnabled
	if conf.Spec.ASNumber == l.st.Plan.BGP.ASNumber && conf.Spec.NodeToNodeMeshEnabled != nil && *conf.Spec.NodeToNodeMeshEnabled == mesh {
		return nil
	}
	conf.Spec.ASNumber, conf.Spec.NodeToNodeMeshEnabled = l.st.Plan.BGP.ASNumber, &mesh
	if _, err := confs.Update(ctx, conf, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("restore the lab's BGPConfiguration default: %w", err)
	}
	return nil
}

// waitAgentPods waits until every node runs a Ready cairn-node pod of the
// DaemonSet, failing at once on a reason no wait cures.
func (l *Lab) waitAgentPods(ctx context.Context, timeout time.Duration) error {
	return until(ctx, timeout, 200*time.Millisecond, "a Ready cairn-node pod on every node", func(ctx context.Context) (bool, error) {
		pods, err := l.agentPods(ctx)
		if err != nil {
			return false, err
		}
		var waiting []string
		for _, n := range l.st.Plan.Nodes() {
			if err := l.nodeHostAlive(n); err != nil {
				return false, stopWaiting(err)
			}
			p, ok := pods[n.Name]
			if !ok {
				waiting = append(waiting, n.Name+" (no pod yet)")
				continue
			}
			if err := podFailed(p); err != nil {
				return false, stopWaiting(fmt.Errorf("%w\n%s", err, l.agentPodLog(n, 20)))
			}
			if !podReady(p) {
				waiting = append(waiting, n.Name+" ("+p.Name+": "+podState(p)+")")
			}
		}
		if len(waiting) > 0 {
			return false, fmt.Errorf("waiting for %s", strings.Join(waiting, ", "))
		}
		return true, nil
	})
}

// agentPods returns the DaemonSet's pods by node.
func (l *Lab) agentPods(ctx context.Context) (map[string]*corev1.Pod, error) {
	c, err := l.clients()
	if err != nil {
		return nil, err
	}
	list, err := c.kube.CoreV1().Pods(AgentNamespace).List(ctx, metav1.ListOptions{LabelSelector: daemonSetLabel})
	if err != nil {
		return nil, fmt.Errorf("list cairn-node pods: %w", err)
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
			continue
		}
		if old, ok := out[p.Spec.NodeName]; ok && old.CreationTimestamp.After(p.CreationTimestamp.Time) {
			continue
		}
		out[p.Spec.NodeName] = p
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// agentPodLog is the tail of the newest cairn-node container log on n,
// read from the node's own /var/log/pods.
func (l *Lab) agentPodLog(n Node, lines int) string {
	np := newNodePaths(l.st.Dir, n.Name)
	logs, _ := filepath.Glob(filepath.Join(np.private("/var/log/pods"), AgentNamespace+"_"+daemonSetName+"-*", agentContainer, "*.log"))
	if len(logs) == 0 {
		return "(no cairn-node log on " + n.Name + " yet)"
	}
	sort.Slice(logs, func(i, j int) bool { return modTime(logs[i]).Before(modTime(logs[j])) })
	newest := logs[len(logs)-1]
	return fmt.Sprintf("--- %s, last lines:\n%s", newest, tail(newest, lines))
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// agentPodState describes n's cairn-node pod, for Status.
func agentPodState(pods map[string]*corev1.Pod, n Node) string {
	p, ok := pods[n.Name]
	if !ok {
		return "no DaemonSet pod"
	}
	state := "not ready"
	if podReady(p) {
		state = "Ready"
	}
	restarts := int32(0)
	for _, cs := range p.Status.ContainerStatuses {
		restarts += cs.RestartCount
	}
	return fmt.Sprintf("%s %s (%s, %d restarts)", p.Name, state, podState(p), restarts)
}

// errDaemonSetAgents says an operation on agent processes does not apply.
var errDaemonSetAgents = errors.New("cairn-node runs as the DaemonSet here: delete its pod or `kubectl -n " + AgentNamespace + " rollout restart " + daemonSetTarget + "`")
