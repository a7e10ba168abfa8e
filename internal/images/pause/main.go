// Command pause is the lab's sandbox ("pause") container: it holds a pod's
// namespaces open by doing nothing until it is told to stop. When the pod
// shares its process namespace, pause is PID 1 there and reaps the
// orphans it inherits, as Kubernetes' own pause does; it does nothing else.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	os.Exit(run(sigs, reap))
}

// run waits for signals: SIGCHLD reaps, SIGINT and SIGTERM end it with 0,
// the status runtimes treat as a clean stop.
func run(sigs <-chan os.Signal, reap func()) int {
	for s := range sigs {
		if s == syscall.SIGCHLD {
			reap()
			continue
		}
		return 0
	}
	return 0
}

// reap collects every exited child without blocking: one SIGCHLD may
// stand for several.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
