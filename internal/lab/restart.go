package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RestartAgent stops cairn-node on the named node with sig (SIGTERM lets
// it shut down, SIGKILL does not), waits until it is gone and every router
// peering with the node has seen its session drop, then starts it again as
// Up does (same arguments, state directory kept) and waits until it
// answers the plugin's STATUS. Waiting for the drop means a later
// WaitConverged sees the new agent's sessions, not the old agent's.
func (l *Lab) RestartAgent(ctx context.Context, node string, sig syscall.Signal) error {
	n, ok := l.st.Plan.Node(node)
	if !ok {
		return fmt.Errorf("no node %q in the lab", node)
	}
	err := l.mutate(func() error {
		if l.st.DaemonSet {
			return errDaemonSetAgents
		}
		i := -1
		for j, p := range l.st.Procs {
			if p.NS == n.NS && p.Name == binNode+"-"+n.Name {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("no cairn-node recorded for %s", node)
		}
		old := l.st.Procs[i]
		logLevel := argValue(old.PID, "--log-level", "info")
		if old.Alive() {
			if err := syscall.Kill(old.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("signal %s (pid %d): %w", old.Name, old.PID, err)
			}
			if !waitGone(old, 30*time.Second) {
				_ = old.stop(0)
				return fmt.Errorf("%s (pid %d) still runs 30s after %v", old.Name, old.PID, sig)
			}
		}
		err := until(ctx, 30*time.Second, 50*time.Millisecond, "the routers to see cairn-node on "+node+" gone", func(ctx context.Context) (bool, error) {
			return l.routerSessionsDown(ctx, n)
		})
		if err != nil {
			return err
		}
		p, err := startAgent(l.st, n, logLevel)
		if err != nil {
			return err
		}
		l.st.Procs[i] = p
		return l.st.save()
	})
	if err != nil {
		return err
	}
	return l.waitAgentReady(ctx, n)
}

// routerSessionsDown reports whether no router has an Established session
// with node n.
func (l *Lab) routerSessionsDown(ctx context.Context, n Node) (bool, error) {
	for _, r := range l.st.Plan.Routers() {
		peers := false
		for _, p := range r.Peers {
			peers = peers || p.Kind == PeerNode && p.Addr == n.Addr
		}
		if !peers {
			continue
		}
		sessions, err := l.drv.sessions(ctx, r, routerDir(l.st.Dir, r.Name))
		if err != nil {
			return false, err
		}
		for _, s := range sessions {
			if s.Addr == n.Addr && s.Established() {
				return false, fmt.Errorf("%s's session with %s (%s) is still Established", r.Name, n.Name, n.Addr)
			}
		}
	}
	return true, nil
}

// argValue is the value of flag in the command line of pid, or def.
func argValue(pid int, flag, def string) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return def
	}
	args := strings.Split(string(data), "\x00")
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return def
}
