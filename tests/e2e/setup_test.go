package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/controlplane"
	"github.com/cairn-net/cairn/internal/controlplane/cptest"
	"github.com/cairn-net/cairn/internal/lab"
	"github.com/cairn-net/cairn/internal/testenv"
)

// upTimeout bounds one lab's Up, a cold build of the binaries included.
const upTimeout = 10 * time.Minute

// requireLab runs t only where the machine can run a lab: root, the
// pinned control plane, the router daemons, Go, and the agent's and
// plugin's sources; testenv decides whether a test that cannot run skips
// (locally) or fails (under CI).
func requireLab(t *testing.T, router string) string {
	t.Helper()
	reqs := []testenv.Requirement{testenv.Root, testenv.NetNS, cptest.Binaries()}
	tools := append([]string{"ip", "go", "ping"}, lab.RouterTools(router)...)
	for _, tool := range tools {
		reqs = append(reqs, testenv.Binary(tool))
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"cairn-node", "cairn-cni", "cairn-lab"} {
		reqs = append(reqs, testenv.Check("cmd/"+cmd+" in this checkout", func() error {
			_, err := os.Stat(filepath.Join(root, "cmd", cmd, "main.go"))
			return err
		}))
	}
	testenv.Require(t, reqs...)
	return root
}

// instance names the tests' labs ("cl-e2e-node1"), so they run beside a
// lab someone has up on the same machine.
const instance = "e2e"

// instanceSuffixEnv, when set, is appended to every lab instance of these
// tests ("e2esvc" + "2"), so two checkouts run the same tests on one
// machine at once without sharing namespaces; Up refuses a name that is
// then too long.
const instanceSuffixEnv = "CAIRN_E2E_INSTANCE_SUFFIX"

// upLab brings a lab up in a state directory of the test's own and
// registers its teardown, which also checks that nothing is left behind.
// The lab's instance is o.Instance, or instance when that is empty, and
// the suffix instanceSuffixEnv names.
func upLab(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	o.RepoRoot = requireLab(t, o.Router)
	o.StateDir = filepath.Join(traversableTempDir(t), "lab")
	if o.Instance == "" {
		o.Instance = instance
	}
	o.Instance += os.Getenv(instanceSuffixEnv)
	o.Logf = t.Logf
	t.Cleanup(func() { downAndCheck(t, o.StateDir, o.Instance) })
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	begin := time.Now()
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	tm := l.Timings
	t.Logf("lab up in %v: build %v, network+routers %v, control plane %v, agents %v, pods %v, converge %v",
		time.Since(begin).Round(time.Millisecond), tm.Build.Round(time.Millisecond), tm.Network.Round(time.Millisecond),
		tm.ControlPlane.Round(time.Millisecond), tm.Agents.Round(time.Millisecond), tm.Pods.Round(time.Millisecond), tm.Converge.Round(time.Millisecond))
	return l
}

// traversableTempDir is a temporary directory that other users may pass
// through (not list): FRR's daemons run as the frr user and must reach
// their files in the lab's state directory. t.TempDir is 0700.
func traversableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cairn-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// downAndCheck runs Down twice (the second must be a no-op) and checks
// that no namespace of the lab's instance, no recorded process, no state and no lab address
// or route in the root namespace remain.
func downAndCheck(t *testing.T, stateDir, instance string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var procs []lab.Proc
	if l, err := lab.Open(stateDir, nil); err == nil {
		procs = l.Procs()
		if t.Failed() {
			if st, err := l.Status(ctx); err == nil {
				b, _ := json.MarshalIndent(st, "", "  ")
				t.Logf("lab status at failure:\n%s", b)
			}
		}
	}
	if err := lab.Down(ctx, stateDir, t.Logf); err != nil {
		t.Errorf("down: %v", err)
	}
	if err := lab.Down(ctx, stateDir, t.Logf); err != nil {
		t.Errorf("second down: %v", err)
	}
	names, err := lab.Namespaces(ctx)
	if err != nil {
		t.Error(err)
	}
	for _, ns := range names {
		if strings.HasPrefix(ns, lab.NSPrefix+instance+"-") {
			t.Errorf("after down, namespace %s remains", ns)
		}
	}
	for _, p := range procs {
		if p.Alive() {
			t.Errorf("after down, %s (pid %d) still runs", p.Name, p.PID)
		}
	}
	if _, err := os.Stat(stateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after down, the state directory %s remains (%v)", stateDir, err)
	}
	checkRootNamespaceClean(t)
}

// checkRootNamespaceClean asserts that the root namespace has no address
// or route in the lab's ranges: the lab is never linked to it.
func checkRootNamespaceClean(t *testing.T) {
	t.Helper()
	inLab := func(p netip.Prefix) bool {
		for _, r := range lab.InsideCIDRs() {
			if r.Overlaps(p) {
				return true
			}
		}
		return false
	}
	out, err := exec.Command("ip", "-j", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr in the root namespace: %v", err)
	}
	var links []struct {
		IfName   string `json:"ifname"`
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatalf("decode ip addr: %v", err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if addr, err := netip.ParseAddr(a.Local); err == nil && inLab(netip.PrefixFrom(addr, addr.BitLen())) {
				t.Errorf("root namespace has lab address %s on %s", addr, l.IfName)
			}
		}
	}
	routes, err := lab.KernelRoutes(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if p, err := parseDst(r.Dst); err == nil && inLab(p) {
			t.Errorf("root namespace has a route into the lab: %s", r)
		}
	}
}
