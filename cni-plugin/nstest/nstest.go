// Package nstest gives privileged tests network namespaces that are removed
// when the test ends, whatever its outcome. Tests only.
package nstest

import (
	"errors"
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"golang.org/x/sys/unix"

	"github.com/cairn-net/cairn/internal/testenv"
)

// RequireRoot runs t only where it can create network namespaces and
// veths; where it cannot, testenv skips t (or fails it under CI).
func RequireRoot(t testing.TB) {
	t.Helper()
	testenv.Require(t, testenv.Root, testenv.NetNS)
}

// New creates a bind-mounted network namespace (a path a runtime could pass
// as CNI_NETNS) and removes it at the end of the test.
func New(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() { Remove(t, n) })
	return n
}

// Remove closes and unmounts n; the kernel frees the namespace once nothing
// else holds it. Removing twice is harmless.
func Remove(t testing.TB, n ns.NetNS) {
	t.Helper()
	_ = n.Close() // a second Close only reports "already closed"
	path := n.Path()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return
	}
	// A lazy unmount succeeds even while something still holds the
	// namespace open, so no mount is ever left behind.
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		t.Errorf("unmount netns %s: %v", path, err)
	}
	if err := os.Remove(path); err != nil {
		t.Errorf("remove netns %s: %v", path, err)
	}
}
