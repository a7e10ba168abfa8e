package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cairn-net/cairn/tests/controlplane"
	"k8s.io/client-go/tools/clientcmd"
)

// Binaries the lab builds from the checkout into <state>/bin.
const (
	binNode = "cairn-node"
	binCNI  = "cairn-cni"
	binLab  = "cairn-lab"
)

func binDir(stateDir string) string { return filepath.Join(stateDir, "bin") }

// buildBinaries builds the named commands (cmd/<name>) in one `go build`,
// which shares and parallelises the work and reuses Go's build cache.
func buildBinaries(ctx context.Context, repo, out string, names ...string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	args := []string{"go", "build", "-o", out + "/"}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %v: %w\n%s", names, err, out)
	}
	return nil
}

// nodeDir holds a node's kubeconfig, agent socket and log.
func nodeDir(stateDir, node string) string { return filepath.Join(stateDir, "nodes", node) }

func agentSocket(stateDir, node string) string {
	return filepath.Join(nodeDir(stateDir, node), "agent.sock")
}

// writeNodeKubeconfig gives a node its own kubeconfig file pointing at the
// API server's lab address, reachable from the node's namespace through
// its ToR. It carries the admin credential: the lab has no per-node RBAC.
func writeNodeKubeconfig(st *State, node string) (string, error) {
	dir := nodeDir(st.Dir, node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", st.ControlPlane.Kubeconfig)
	if err != nil {
		return "", fmt.Errorf("load admin kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := controlplane.WriteKubeconfig(path, cfg); err != nil {
		return "", fmt.Errorf("write kubeconfig of %s: %w", node, err)
	}
	return path, nil
}

// startAgent starts cairn-node inside the node's namespace, detached.
func startAgent(st *State, n Node, logLevel string) (Proc, error) {
	kubeconfig, err := writeNodeKubeconfig(st, n.Name)
	if err != nil {
		return Proc{}, err
	}
	// A socket left by an earlier run would make readiness look true.
	_ = os.Remove(agentSocket(st.Dir, n.Name))
	argv := []string{
		filepath.Join(binDir(st.Dir), binNode),
		"--node-name", n.Name,
		"--kubeconfig", kubeconfig,
		"--agent-socket", agentSocket(st.Dir, n.Name),
		// Nodes share this machine's filesystem: each keeps its own state.
		"--state-dir", filepath.Join(nodeDir(st.Dir, n.Name), "state"),
		"--node-ip", n.Addr.String(),
		"--log-level", logLevel,
	}
	return startDetached(n.NS, binNode+"-"+n.Name, filepath.Join(nodeDir(st.Dir, n.Name), binNode+".log"), argv, nil)
}
