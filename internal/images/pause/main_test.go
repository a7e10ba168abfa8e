package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRunReapsOnSIGCHLDAndStopsOnTermination(t *testing.T) {
	for _, stop := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		sigs := make(chan os.Signal, 3)
		reaped := 0
		sigs <- syscall.SIGCHLD
		sigs <- syscall.SIGCHLD
		sigs <- stop
		if code := run(sigs, func() { reaped++ }); code != 0 {
			t.Errorf("%v: exit code %d, want 0", stop, code)
		}
		if reaped != 2 {
			t.Errorf("%v: reaped %d times, want 2 (once per SIGCHLD)", stop, reaped)
		}
	}
}

// TestReapCollectsExitedChildren: a child that has exited is a zombie
// until reaped; after reap, waiting for it finds no child.
func TestReapCollectsExitedChildren(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a child: %v", err)
	}
	pid := cmd.Process.Pid
	// Wait until the child has exited, without reaping it (WNOWAIT).
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatalf("waitid: %v", err)
	}
	reap()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err != syscall.ECHILD {
		t.Fatalf("after reap, wait4(%d) = %v, want ECHILD: the child was not reaped", pid, err)
	}
}
