package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cairn-net/cairn/internal/controlplane"
	"github.com/cairn-net/cairn/internal/images"
	"k8s.io/client-go/tools/clientcmd"
)

// Binaries the lab builds from the checkout into <state>/bin.
const (
	binNode = "cairn-node"
	binCNI  = "cairn-cni"
	binLab  = "cairn-lab"
)

func binDir(stateDir string) string { return filepath.Join(stateDir, "bin") }

// binaryBuild says how buildBinaries builds.
type binaryBuild struct {
	// Repo is the checkout; Out receives the binaries.
	Repo, Out string
	// Static builds with CGO_ENABLED=0 and -trimpath, as internal/images
	// builds the binaries of real nodes' images, so that a lab of real
	// nodes compiles each package once for both (flags that differ make
	// the Go build cache compile everything again: a cold build took 17.5
	// minutes on 2 busy cores with the two builds apart).
	Static bool
}

// buildBinaries builds the named commands (cmd/<name>) in one `go build`
// into a persistent cache directory, then copies them into b.Out. Go skips
// the link when a target in the cache is already up to date, which is
// most of a warm build's time for binaries this size; the copy keeps the
// lab's binaries a snapshot that a later build for another lab cannot
// change under it.
func buildBinaries(ctx context.Context, b binaryBuild, names ...string) error {
	cache, err := binCacheDir()
	if err != nil {
		return err
	}
	if b.Static {
		// Not beside the others: each build would relink what the
		// other left.
		cache = filepath.Join(cache, "static")
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", cache, err)
		}
	}
	out := b.Out
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	unlock, err := lockDir(cache)
	if err != nil {
		return err
	}
	defer unlock()
	// The tags of the images' builds, static or not: the lab's agent is
	// the one nodes run, in size and footprint.
	args := []string{"go", "build", "-tags", images.BuildTags, "-o", cache + "/"}
	if b.Static {
		args = append(args, "-trimpath")
	}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = b.Repo
	if b.Static {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %v: %w\n%s", names, err, out)
	}
	for _, n := range names {
		if err := CopyBinary(filepath.Join(cache, n), filepath.Join(out, n)); err != nil {
			return err
		}
	}
	return nil
}

// binCacheDir is where builds for labs are kept between labs: the Go
// build cache's neighbour, $CAIRN_CACHE/lab-bin or ~/.cache/cairn/lab-bin.
func binCacheDir() (string, error) {
	base := os.Getenv("CAIRN_CACHE")
	if base == "" {
		userCache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("find a cache directory for lab binaries: %w", err)
		}
		base = filepath.Join(userCache, "cairn")
	}
	dir := filepath.Join(base, "lab-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	return dir, nil
}

// CopyBinary writes a fresh copy of the built src to dst. Never a hard
// link to the linker's output: the Go linker writes its output through a
// memory mapping, which leaves the file in the page cache as large folios
// (up to 2 MiB), and Linux maps a whole large folio (or a PMD) into every
// process that touches one byte of it. A cairn-node run from the
// linker's file showed 65-67 MiB of file-backed RSS, the same binary
// copied 37 MiB: the copy is what a node gets from its container image
// (written by the image's extraction), so the lab's footprint figures are
// the real ones. Copying also keeps the lab's binaries a snapshot that a
// later build for another lab cannot change.
func CopyBinary(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open built %s: %w", src, err)
	}
	defer in.Close()
	// Remove first: dst may be a hard link into the cache from an
	// older lab, which truncating would rewrite.
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	outf, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	if _, err := io.Copy(outf, in); err != nil {
		outf.Close()
		return fmt.Errorf("copy %s: %w", dst, err)
	}
	if err := outf.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
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
		"--node-ip", nodeIPFlag(n),
		"--log-level", logLevel,
	}
	argv = append(argv, st.AgentArgs...)
	return startDetached(n.NS, binNode+"-"+n.Name, filepath.Join(nodeDir(st.Dir, n.Name), binNode+".log"), argv, nil)
}
