package speaker

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDaemon runs a router daemon in the foreground inside netns, its
// output kept; it is killed when the test ends, and its output printed
// if the test failed.
func startDaemon(t *testing.T, name, netns string, argv ...string) *lockedBuffer {
	t.Helper()
	logs := &lockedBuffer{}
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns}, argv...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not die", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("=== %s logs ===\n%s", name, logs.String())
		}
	})
	return logs
}

// pollCLI runs a router's CLI command (cli, named name) until cond holds
// on its output.
func pollCLI(t *testing.T, name string, cli func(args ...string) (string, error), what string, timeout time.Duration, cond func(string) bool, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := cli(args...)
		if err == nil && cond(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: not within %s; %s: %v\n%s", name, what, timeout, strings.Join(args, " "), err, out)
		}
		<-tick.C
	}
}
