package bench

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// inNS runs argv in a network namespace (by name) and returns its stdout.
func inNS(ctx context.Context, netns string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns}, argv...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), netns, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// daemon is a process the bench started in a namespace, ended by pid.
type daemon struct{ cmd *exec.Cmd }

// startInNS starts argv in a namespace in the background.
func startInNS(netns string, argv ...string) (*daemon, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns}, argv...)...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", strings.Join(argv, " "), netns, err)
	}
	return &daemon{cmd: cmd}, nil
}

// stop kills the process (ip netns exec execs in place: the pid is the
// program's) and reaps it.
func (d *daemon) stop() {
	if d == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
}
