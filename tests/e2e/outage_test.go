package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// apiOutage is how long the API server is frozen.
const apiOutage = 60 * time.Second

// routerProtocols is `birdc show protocols` of the lab's first router: one
// line per session with its state and the time it entered it, so a flap
// shows as a changed line.
func routerProtocols(t *testing.T, l *lab.Lab) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.Output(ctx, l.Plan().Routers()[0].Name, "birdc", "show", "protocols")
	if err != nil {
		t.Fatalf("birdc show protocols: %v", err)
	}
	return string(out)
}

// checkAPIServerOutage freezes kube-apiserver (SIGSTOP: connections hang,
// as in a partition) for a minute. Pods keep talking across nodes, no BGP
// session flaps, a new pod's ADD fails with a CNI error that says to try
// again, and once the API server is back an ADD succeeds and the failed
// one left no address behind.
func checkAPIServerOutage(t *testing.T, l *lab.Lab) {
	data, err := os.ReadFile(filepath.Join(l.StateDir(), "controlplane", "kube-apiserver.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Fatalf("kube-apiserver pid file: %q", data)
	}
	var from, to lab.Pod
	for _, p := range l.Pods() {
		switch {
		case from.Name == "":
			from = p
		case to.Name == "" && p.Node != from.Node:
			to = p
		}
	}
	if to.Name == "" {
		t.Fatal("need pods on two nodes")
	}
	before := routerProtocols(t, l)

	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	frozen := time.Now()

	// A new pod on the frozen control plane: the agent cannot write its
	// allocation, and the plugin must say "try again later".
	n := l.Plan().Nodes()[0]
	podNS := l.Plan().Prefix + "outage"
	if out, err := exec.Command("ip", "netns", "add", podNS).CombinedOutput(); err != nil {
		t.Fatalf("create %s: %v\n%s", podNS, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", podNS).Run() })
	id := hex.EncodeToString([]byte(podNS))
	env := []string{"CNI_CONTAINERID=" + id, "CNI_NETNS=" + lab.NSPath(podNS), "CNI_IFNAME=eth0",
		"CNI_ARGS=K8S_POD_NAMESPACE=" + lab.PodNamespace + ";K8S_POD_NAME=outage"}
	add, out := pluginCall(t, l, n, "ADD", env, map[string]any{"agentTimeoutSeconds": 5})
	addErr := add.Wait()
	var cniErr struct {
		Code uint   `json:"code"`
		Msg  string `json:"msg"`
	}
	if addErr == nil || json.Unmarshal(out.Bytes(), &cniErr) != nil || cniErr.Code != 11 {
		t.Errorf("ADD during the outage: err %v, output %q; want CNI error 11 (try again later)", addErr, out.String())
	}
	t.Logf("ADD during the outage: code %d: %s", cniErr.Code, cniErr.Msg)

	// Pods keep talking for the whole outage.
	probes, lost := 0, 0
	for time.Since(frozen) < apiOutage {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, err := l.Exec(ctx, from.Name, []string{"ping", "-c", "1", "-W", "2", to.IP.String()}, lab.Stdio{})
		cancel()
		probes++
		if err != nil || code != 0 {
			lost++
		}
		time.Sleep(time.Second) // pacing the probes, not waiting for a state
	}
	resume()
	t.Logf("API server frozen %v: %d of %d pod-to-pod probes lost", time.Since(frozen).Round(time.Second), lost, probes)
	if lost != 0 {
		t.Errorf("%d of %d probes from %s to %s lost while the API server was down", lost, probes, from.Name, to.Name)
	}
	if after := routerProtocols(t, l); after != before {
		t.Errorf("BGP sessions changed during the outage:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Back: the runtime retries the ADD (DEL, then ADD) and it succeeds;
	// the failed attempt left nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := l.WaitConverged(ctx, 2*time.Minute); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		del, _ := pluginCall(t, l, n, "DEL", env, nil)
		_ = del.Wait()
		add, out = pluginCall(t, l, n, "ADD", env, nil)
		if add.Wait() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ADD after the outage keeps failing: %s", out)
		}
		time.Sleep(time.Second) // the agent's caches catching up: retry as a runtime does
	}
	del, out := pluginCall(t, l, n, "DEL", env, nil)
	if err := del.Wait(); err != nil {
		t.Fatalf("DEL after the outage: %v: %s", err, out)
	}
	for _, left := range allocationsOf(t, l, func(pod string) bool { return pod == "outage" }) {
		t.Errorf("left behind: %s", left)
	}
}
