package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a detached process the lab started inside one of its namespaces.
// It is identified by pid and start time together, so a stale state file
// never makes Down signal a process that merely reused the pid.
type Proc struct {
	Name  string `json:"name"`
	NS    string `json:"ns"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	Log   string `json:"log"`
}

// startDetached runs argv inside namespace ns (through `ip netns exec`,
// which execs in place, so the pid is the program's own) in a process
// group of its own, with output appended to logPath. The process outlives
// the lab's command; a goroutine reaps it if it ends while we still run.
func startDetached(ns, name, logPath string, argv, env []string) (Proc, error) {
	return startDetachedWrapped(ns, name, logPath, []string{"ip", "netns", "exec", ns}, argv, env)
}

// startDetachedWrapped is startDetached with another way into namespace
// ns: wrap must exec argv in place, so that the pid is the program's own.
func startDetachedWrapped(ns, name, logPath string, wrap, argv, env []string) (Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, fmt.Errorf("open log of %s: %w", name, err)
	}
	defer logf.Close()
	full := append(append([]string{}, wrap...), argv...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	go func() { _ = cmd.Wait() }()
	p := Proc{Name: name, NS: ns, PID: cmd.Process.Pid, Log: logPath}
	st, _, err := procStat(p.PID)
	if err != nil {
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		return Proc{}, fmt.Errorf("read start time of %s (pid %d): %w", name, p.PID, err)
	}
	p.Start = st
	// For people and scripts; Down trusts the state file, which also has
	// the start time.
	pidFile := strings.TrimSuffix(logPath, ".log") + ".pid"
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(p.PID)+"\n"), 0o644); err != nil {
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		return Proc{}, fmt.Errorf("write pid file of %s: %w", name, err)
	}
	return p, nil
}

// procStat returns a process's start time (clock ticks since boot) and
// state letter from /proc/<pid>/stat.
func procStat(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse start time in /proc/%d/stat: %w", pid, err)
	}
	return start, fields[0][0], nil
}

// Alive reports whether the process still runs (a zombie does not).
func (p Proc) Alive() bool {
	start, state, err := procStat(p.PID)
	return err == nil && start == p.Start && state != 'Z'
}

// stop sends SIGTERM to the process group, waits up to grace for the
// process to go, then sends SIGKILL and waits again. It is a no-op for a
// process that is gone.
func (p Proc) stop(grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(-p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", p.Name, p.PID, err)
	}
	if waitGone(p, grace) {
		return nil
	}
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	if waitGone(p, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("%s (pid %d) still runs after SIGKILL", p.Name, p.PID)
}

// waitGone polls until p is gone or the deadline passes. A process we did
// not start ourselves (Down runs in a fresh process) has no wait handle, so
// polling /proc is the only way to observe its end.
func waitGone(p Proc, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !p.Alive() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
