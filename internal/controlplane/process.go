package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child: its log goes to <dir>/<name>.log and its pid to
// <dir>/<name>.pid, so a later `down` can stop a detached one.
type process struct {
	name    string
	dir     string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	waitErr error
}

func startProcess(dir, name string, wrap, args []string, detach bool) (*process, error) {
	full := append(append([]string{}, wrap...), args...)
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so stop reaches anything a wrapper forked;
	// Pdeathsig stops it with us unless the lab asked it to stay.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !detach {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("write %s pid file: %w", name, err)
	}
	p := &process{name: name, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.waitErr
	default:
		return false, nil
	}
}

func (p *process) stop(grace time.Duration) error {
	if exited, _ := p.exited(); exited {
		return nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}

func (p *process) logTail(lines int) string {
	return tailFile(filepath.Join(p.dir, p.name+".log"), lines)
}

// StopDir stops the detached processes whose pid files are in dir, for a
// `down` run by another process than the one that started them.
func StopDir(dir string, grace time.Duration) error {
	var errs []error
	// Clients of the API server first, etcd last.
	for _, name := range []string{procControllerManager, procScheduler, "kube-apiserver", "etcd"} {
		data, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s pid: %w", name, err))
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 1 {
			errs = append(errs, fmt.Errorf("bad %s pid file %q", name, data))
			continue
		}
		errs = append(errs, killGroup(pid, grace))
	}
	return errors.Join(errs...)
}

// killGroup ends a process group started with Setpgid and waits for its
// leader to disappear.
func killGroup(pid int, grace time.Duration) error {
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("signal process group %d: %w", pid, err)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond) // polling a foreign pid: there is no wait handle
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return nil
}

func tailFile(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	all := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}
