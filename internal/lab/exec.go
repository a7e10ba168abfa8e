package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cairn-net/cairn/internal/controlplane"
)

// Stdio is where a command run in the lab reads and writes.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// ResolveNS finds the namespace of a pod, node, router or outside host
// (outside1) by name; "cp" is the control plane, and a namespace name
// ("cl-...") stands for itself.
func (l *Lab) ResolveNS(name string) (string, error) {
	if p, ok := l.pod(name); ok {
		return p.NS, nil
	}
	if n, ok := l.st.Plan.Node(name); ok {
		return n.NS, nil
	}
	for _, r := range l.st.Plan.Routers() {
		if r.Name == name {
			return r.NS, nil
		}
	}
	if name == l.st.Plan.ControlPlane.Name {
		return l.st.Plan.ControlPlane.NS, nil
	}
	if h, ok := l.st.Plan.OutsideHost(name); ok {
		return h.NS, nil
	}
	for _, ns := range l.st.Namespaces {
		if ns == name {
			return ns, nil
		}
	}
	return "", fmt.Errorf("no pod, node, router, outside host or namespace named %q in the lab", name)
}

// Exec runs argv in the namespace of the named pod, node, router or
// outside host and returns its exit code. A router's "birdc" or "vtysh" is
// pointed at that router's own control socket. With real nodes, a pod the
// lab did not create ("name" or "namespace/name") is reached through its
// container.
func (l *Lab) Exec(ctx context.Context, name string, argv []string, io Stdio) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("exec needs a command")
	}
	enter, err := l.enterNS(ctx, name)
	if err != nil {
		return 0, err
	}
	argv = l.routerCLI(name, argv)
	return runStdio(ctx, append(enter, argv...), io)
}

// enterNS is the command prefix that runs a program in the network
// namespace of name.
func (l *Lab) enterNS(ctx context.Context, name string) ([]string, error) {
	ns, err := l.ResolveNS(name)
	if err == nil {
		return []string{"ip", "netns", "exec", ns}, nil
	}
	if !l.st.Kubelet {
		return nil, err
	}
	path, perr := l.apiPodNetns(ctx, name)
	if perr != nil {
		return nil, perr
	}
	return []string{"nsenter", "--net=" + path, "--"}, nil
}

// routerCLI rewrites a bare birdc or vtysh for a router to its socket.
func (l *Lab) routerCLI(name string, argv []string) []string {
	for _, r := range l.st.Plan.Routers() {
		if r.Name != name {
			continue
		}
		cli := l.drv.cli(r, routerDir(l.st.Dir, r.Name))
		if argv[0] == cli[0] {
			return append(cli, argv[1:]...)
		}
	}
	return argv
}

// Kubectl runs the pinned kubectl against the lab's API server, from
// inside the control-plane namespace, and returns its exit code.
func (l *Lab) Kubectl(ctx context.Context, args []string, io Stdio) (int, error) {
	if l.st.ControlPlane == nil || l.st.ControlPlane.Kubeconfig == "" {
		return 0, errors.New("the lab's control plane is not running")
	}
	bin, err := controlplane.BinDir()
	if err != nil {
		return 0, err
	}
	argv := append([]string{"ip", "netns", "exec", l.st.Plan.ControlPlane.NS}, l.kubectlArgv(bin)...)
	return runStdio(ctx, append(argv, args...), io)
}

// kubectlArgv starts a kubectl command line against the lab's API server.
// kubectl's discovery and HTTP caches go into the lab's state directory,
// not ~/.kube/cache: they describe this lab's API server, and go with it.
func (l *Lab) kubectlArgv(bin string) []string {
	return []string{filepath.Join(bin, "kubectl"), "--kubeconfig", l.st.ControlPlane.Kubeconfig,
		"--cache-dir", filepath.Join(l.st.Dir, "kubectl-cache")}
}

func runStdio(ctx context.Context, argv []string, io Stdio) (int, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = io.In, io.Out, io.Err
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", strings.Join(argv, " "), err)
	}
	return 0, nil
}

// Output runs argv in the named namespace and returns its stdout.
func (l *Lab) Output(ctx context.Context, name string, argv ...string) ([]byte, error) {
	enter, err := l.enterNS(ctx, name)
	if err != nil {
		return nil, err
	}
	return run(ctx, append(enter, l.routerCLI(name, argv)...)...)
}
