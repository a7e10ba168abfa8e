// Package netnstest gives felix's privileged tests and benchmarks network
// namespaces of their own, removed (with whatever ran inside) when the test
// ends, pass or fail. Nothing here ever touches the caller's namespace.
package netnstest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"golang.org/x/sys/unix"

	"github.com/cairn-net/cairn/internal/testenv"
)

// NS is a named network namespace (its path is under /var/run/netns, so
// `ip -n Name` reaches it).
type NS struct {
	ns.NetNS
	Name string
}

// New creates a namespace with loopback up; it is removed at cleanup.
// Where namespaces cannot be made, testenv skips tb (or fails it under CI).
func New(tb testing.TB) *NS {
	tb.Helper()
	testenv.Require(tb, testenv.Root, testenv.NetNS, testenv.Binary("ip"))
	n, err := testutils.NewNS()
	if err != nil {
		tb.Fatalf("create network namespace: %v", err)
	}
	tb.Cleanup(func() {
		n.Close()
		if err := testutils.UnmountNS(n); err != nil {
			// Still in use (a socket or thread not yet gone): detach the
			// mount so the namespace goes with its last user.
			if err := unix.Unmount(n.Path(), unix.MNT_DETACH); err != nil {
				tb.Errorf("remove network namespace %s: %v", n.Path(), err)
			}
			_ = os.Remove(n.Path())
		}
	})
	s := &NS{NetNS: n, Name: filepath.Base(n.Path())}
	s.IP(tb, "link", "set", "lo", "up")
	return s
}

// IP runs `ip -n <ns> args...` and returns its output; it fails tb on error.
func (n *NS) IP(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip -n %s %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IPBatch feeds lines to `ip -n <ns> -batch -`.
func (n *NS) IPBatch(tb testing.TB, lines []string) {
	tb.Helper()
	cmd := exec.Command("ip", "-n", n.Name, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("ip -n %s -batch: %v\n%s", n.Name, err, out)
	}
}

// Exec runs a command inside the namespace and returns its combined output.
func (n *NS) Exec(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Process is a command running in a namespace.
type Process struct {
	Cmd *exec.Cmd
	out *safeBuffer
}

// Output is what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Start runs a command inside the namespace in the background; it is killed
// at cleanup.
func (n *NS) Start(tb testing.TB, name string, args ...string) *Process {
	tb.Helper()
	buf := &safeBuffer{}
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s in %s: %v", name, n.Name, err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &Process{Cmd: cmd, out: buf}
}

type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; safe against concurrent String.
func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Veth creates a veth pair inside the namespace, name and name+"-p", both
// up (this kernel may lack the dummy driver; veth is always there).
func (n *NS) Veth(tb testing.TB, name string) {
	tb.Helper()
	peer := name + "-p"
	n.IP(tb, "link", "add", name, "type", "veth", "peer", "name", peer)
	n.IP(tb, "link", "set", name, "up")
	n.IP(tb, "link", "set", peer, "up")
}
