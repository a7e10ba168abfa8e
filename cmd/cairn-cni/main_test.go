package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/cairn-net/cairn/apis/agent/v1/agenttest"
	"github.com/cairn-net/cairn/cni-plugin/nstest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// pluginBinary builds cairn-cni once per test run, as a runtime would find
// it in CNI_PATH.
func pluginBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		dir, err := os.MkdirTemp("", "cairn-cni-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "cairn-cni")
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// invocation is one run of the plugin as a runtime makes it.
type invocation struct {
	command, containerID, netns, ifName, args string
	stdin                                     string
}

type outcome struct {
	exitCode       int
	stdout, stderr string
}

// cniError is the error object the plugin prints on failure.
type cniError struct {
	CNIVersion string `json:"cniVersion"`
	Code       uint   `json:"code"`
	Msg        string `json:"msg"`
}

func runPlugin(t *testing.T, inv invocation) outcome {
	t.Helper()
	bin := pluginBinary(t)
	cmd := exec.Command(bin)
	// Only what a runtime sets: nothing leaks in from the test's own
	// environment.
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"CNI_COMMAND=" + inv.command,
		"CNI_CONTAINERID=" + inv.containerID,
		"CNI_NETNS=" + inv.netns,
		"CNI_IFNAME=" + inv.ifName,
		"CNI_ARGS=" + inv.args,
		"CNI_PATH=" + filepath.Dir(bin),
	}
	cmd.Stdin = strings.NewReader(inv.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	o := outcome{stdout: stdout.String(), stderr: stderr.String()}
	switch {
	case errors.As(err, &exitErr):
		o.exitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", bin, err)
	}
	return o
}

func (o outcome) cniError(t *testing.T) cniError {
	t.Helper()
	if o.exitCode == 0 {
		t.Fatalf("plugin succeeded, want an error; stdout:\n%s", o.stdout)
	}
	var e cniError
	if err := json.Unmarshal([]byte(o.stdout), &e); err != nil {
		t.Fatalf("stdout is not a CNI error: %v\n%s", err, o.stdout)
	}
	return e
}

func conf(socket, extra string) string {
	return fmt.Sprintf(`{"cniVersion":"1.1.0","name":"cairn","type":"cairn-cni","agentSocket":%q%s}`, socket, extra)
}

func TestBinaryVersion(t *testing.T) {
	o := runPlugin(t, invocation{command: "VERSION"})
	if o.exitCode != 0 || !strings.Contains(o.stdout, `"supportedVersions":["0.4.0","1.0.0","1.1.0"]`) {
		t.Errorf("VERSION: exit %d, stdout %s", o.exitCode, o.stdout)
	}
}

func TestBinaryErrors(t *testing.T) {
	noAgent := filepath.Join(t.TempDir(), "agent.sock")
	cases := []struct {
		name    string
		inv     invocation
		code    uint
		msgPart string
	}{
		{"STATUS without agent", invocation{command: "STATUS", stdin: conf(noAgent, "")}, 50, "unreachable"},
		{"ADD into a missing netns", invocation{command: "ADD", containerID: "c1", netns: "/var/run/netns/cairn-test-missing", ifName: "eth0", stdin: conf(noAgent, "")}, 3, "not found"},
		{"invalid netconf names the field", invocation{command: "STATUS", stdin: conf(noAgent, `,"mtu":9`)}, 7, `"mtu"`},
		{"missing container ID", invocation{command: "ADD", netns: "/var/run/netns/x", ifName: "eth0", stdin: conf(noAgent, "")}, 4, "CNI_CONTAINERID"},
		{"invalid container ID", invocation{command: "DEL", containerID: "a;rm -rf", ifName: "eth0", stdin: conf(noAgent, "")}, 4, "containerID"},
		{"invalid CNI_ARGS", invocation{command: "DEL", containerID: "c1", ifName: "eth0", args: "K8S_POD_NAMESPACE=../etc;K8S_POD_NAME=x", stdin: conf(noAgent, "")}, 4, "K8S_POD_NAMESPACE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := runPlugin(t, tc.inv)
			e := o.cniError(t)
			if e.Code != tc.code || !strings.Contains(e.Msg, tc.msgPart) {
				t.Errorf("code %d msg %q, want code %d mentioning %s", e.Code, e.Msg, tc.code, tc.msgPart)
			}
			if e.CNIVersion != "1.1.0" && tc.code != 4 {
				t.Errorf("error lacks cniVersion: %s", o.stdout)
			}
		})
	}
}

func TestBinaryAgentCalls(t *testing.T) {
	agent := agenttest.New()
	sock := agent.Serve(t)
	if o := runPlugin(t, invocation{command: "STATUS", stdin: conf(sock, "")}); o.exitCode != 0 {
		t.Errorf("STATUS with a ready agent: exit %d\n%s%s", o.exitCode, o.stdout, o.stderr)
	}
	agent.Lock()
	agent.NotReady = "waiting for the API server"
	agent.Unlock()
	if e := runPlugin(t, invocation{command: "STATUS", stdin: conf(sock, "")}).cniError(t); e.Code != 50 || !strings.Contains(e.Msg, "waiting for the API server") {
		t.Errorf("STATUS not ready: %+v", e)
	}
	gc := conf(sock, `,"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]`)
	if o := runPlugin(t, invocation{command: "GC", stdin: gc}); o.exitCode != 0 {
		t.Fatalf("GC: exit %d\n%s%s", o.exitCode, o.stdout, o.stderr)
	}
	if v := agent.LastGC(); len(v) != 1 || v[0].GetContainerId() != "c1" || v[0].GetIfname() != "eth0" {
		t.Errorf("agent got valid attachments %v", v)
	}
}

func TestBinaryNeverLogsStdin(t *testing.T) {
	agent := agenttest.New()
	sock := agent.Serve(t)
	const marker = "do-not-log-7f3a9c"
	// DEL without a netns reaches the agent and logs a line.
	o := runPlugin(t, invocation{command: "DEL", containerID: "c1", ifName: "eth0", stdin: conf(sock, `,"logLevel":"debug","secretish":"`+marker+`"`)})
	if o.exitCode != 0 {
		t.Fatalf("DEL: exit %d\n%s%s", o.exitCode, o.stdout, o.stderr)
	}
	if o.stderr == "" {
		t.Error("no log at all: the test would prove nothing")
	}
	if strings.Contains(o.stderr, marker) || strings.Contains(o.stdout, marker) {
		t.Errorf("netconf content leaked into the output:\n%s%s", o.stdout, o.stderr)
	}
}

// TestBinaryPrivilegedLifecycle runs the binary the way a runtime does,
// ADD, CHECK, DEL twice, with the pod in a netns and the binary itself
// started inside a test "host" namespace (so the host veth lands there, not
// in the machine's root namespace).
func TestBinaryPrivilegedLifecycle(t *testing.T) {
	hostNS, pod := nstest.New(t), nstest.New(t)
	agent := agenttest.New()
	sock := agent.Serve(t)
	inHost := func(inv invocation) outcome {
		var o outcome
		// A child process starts in the namespace of the thread that
		// forks it; ns.Do runs this on a thread locked in hostNS.
		if err := hostNS.Do(func(ns.NetNS) error { o = runPlugin(t, inv); return nil }); err != nil {
			t.Fatal(err)
		}
		return o
	}
	base := invocation{containerID: "c1", netns: pod.Path(), ifName: "eth0", args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0", stdin: conf(sock, "")}

	add := base
	add.command = "ADD"
	noAgent := add
	noAgent.stdin = conf(filepath.Join(t.TempDir(), "none.sock"), "")
	if e := inHost(noAgent).cniError(t); e.Code != 11 {
		t.Errorf("ADD without an agent: code %d (%s), want 11", e.Code, e.Msg)
	}
	if linkExists(t, pod, "eth0") {
		t.Fatal("failed ADD left eth0 in the pod")
	}
	// CNI_NETNS naming the plugin's own namespace is refused up front.
	ownNS := add
	ownNS.netns = hostNS.Path()
	if e := inHost(ownNS).cniError(t); e.Code != 8 {
		t.Errorf("ADD into the host's own netns: code %d (%s), want 8", e.Code, e.Msg)
	}
	if linkExists(t, hostNS, "eth0") {
		t.Fatal("ADD wired the host namespace itself")
	}

	o := inHost(add)
	if o.exitCode != 0 {
		t.Fatalf("ADD: exit %d\n%s%s", o.exitCode, o.stdout, o.stderr)
	}
	res, err := current.NewResult([]byte(o.stdout))
	if err != nil {
		t.Fatalf("ADD result: %v\n%s", err, o.stdout)
	}
	r := res.(*current.Result)
	if len(r.Interfaces) != 2 || len(r.IPs) != 1 || r.IPs[0].Address.String() != "198.51.100.2/32" {
		t.Fatalf("ADD result: %s", o.stdout)
	}
	hostVeth := r.Interfaces[0].Name
	if !linkExists(t, hostNS, hostVeth) || !linkExists(t, pod, "eth0") {
		t.Fatalf("after ADD: host veth %s in host ns %v, eth0 in pod %v", hostVeth, linkExists(t, hostNS, hostVeth), linkExists(t, pod, "eth0"))
	}

	check := base
	check.command = "CHECK"
	check.stdin = conf(sock, `,"prevResult":`+o.stdout)
	if o := inHost(check); o.exitCode != 0 {
		t.Errorf("CHECK: exit %d\n%s%s", o.exitCode, o.stdout, o.stderr)
	}

	del := base
	del.command = "DEL"
	for i := range 2 {
		if o := inHost(del); o.exitCode != 0 {
			t.Fatalf("DEL #%d: exit %d\n%s%s", i+1, o.exitCode, o.stdout, o.stderr)
		}
	}
	if linkExists(t, hostNS, hostVeth) || linkExists(t, pod, "eth0") {
		t.Error("DEL left the veth behind")
	}
	if agent.Len() != 0 {
		t.Error("DEL did not release the addresses")
	}
}

func linkExists(t *testing.T, n ns.NetNS, name string) bool {
	t.Helper()
	var found bool
	if err := n.Do(func(ns.NetNS) error {
		_, err := netlink.LinkByName(name)
		found = err == nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// TestBinaryPrivilegedAddLatency reports what a runtime waits for per ADD:
// process start, netconf parsing, gRPC to a (fake, in-process) agent and the
// netns work, one pod at a time. It never fails on a time; see -v.
func TestBinaryPrivilegedAddLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement; skipped in -short")
	}
	hostNS := nstest.New(t)
	sock := agenttest.New().Serve(t)
	pluginBinary(t) // build outside the timing
	const pods = 16
	var took []time.Duration
	for i := range pods {
		pod := nstest.New(t)
		inv := invocation{command: "ADD", containerID: fmt.Sprintf("lat%d", i), netns: pod.Path(), ifName: "eth0", stdin: conf(sock, "")}
		var o outcome
		start := time.Now()
		if err := hostNS.Do(func(ns.NetNS) error { o = runPlugin(t, inv); return nil }); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
		if o.exitCode != 0 {
			t.Fatalf("ADD %d: exit %d\n%s%s", i, o.exitCode, o.stdout, o.stderr)
		}
		if i == pods-1 {
			t.Logf("last ADD's own log: %s", strings.TrimSpace(o.stderr))
		}
	}
	slices.Sort(took)
	t.Logf("cairn-cni ADD as a runtime sees it, %d pods one at a time: p50 %v, max %v",
		pods, took[pods/2].Round(time.Microsecond), took[pods-1].Round(time.Microsecond))
}
