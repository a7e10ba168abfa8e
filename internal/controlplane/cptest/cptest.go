// Package cptest starts Cairn's control plane for a test. It is apart from
// package controlplane so that binaries using the control plane (cairn-lab)
// do not link the testing package.
package cptest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/controlplane"
	"github.com/cairn-net/cairn/internal/testenv"
)

// Binaries requires the pinned etcd and kube-apiserver (`make controlplane`).
func Binaries() testenv.Requirement {
	return testenv.Check("the pinned etcd and kube-apiserver", func() error {
		_, err := controlplane.BinDir()
		return err
	})
}

// ForTest starts a control plane with Cairn's CRDs (deploy/crds) and
// policies (deploy/policies) installed and stops it when the test ends,
// also on failure, printing the logs' tails if the test failed. Without
// the binaries, or with -short (the unit tier), testenv skips t, or fails
// it under CI, where they must exist.
func ForTest(t testing.TB) *controlplane.ControlPlane {
	t.Helper()
	testenv.Require(t, Binaries())
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, err := controlplane.Start(ctx, controlplane.Options{CRDDir: filepath.Join(root, "deploy", "crds"), Logf: t.Logf})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver log tail:\n%s", cp.LogTail("kube-apiserver", 40))
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	if err := controlplane.InstallManifests(ctx, cp.Config, filepath.Join(root, "deploy", "policies")); err != nil {
		t.Fatalf("install admission policies: %v", err)
	}
	if err := controlplane.WaitPoliciesActive(ctx, cp.Config, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return cp
}
