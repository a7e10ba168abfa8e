package lab

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NodeHelperCommand is the hidden cairn-lab subcommand that runs a real
// node's containerd and kubelet.
//
// Why a helper: containerd 1.6 and the kubelet write to fixed host paths
// (/run/containerd, /var/lib/kubelet, /var/lib/cni, /var/log/pods, and the
// CNI directories a DaemonSet installs into) and the kubelet sets kernel
// settings it finds "wrong". A node must change nothing outside its own
// namespaces, and nodes must not share those paths. So `up` starts, inside
// the node's network namespace, `unshare --mount --propagation slave
// cairn-lab internal-node --spec FILE`: a private mount namespace, held by
// this helper for as long as the node runs, in which it bind-mounts the
// node's own directories over those paths and read-only files over the
// kernel settings, then runs containerd and the kubelet as its children.
//
// Slave, not private: mounts made here never reach the host, while
// unmounts on the host still reach here, so that a namespace handle of
// another lab deleted with `ip netns del` is not kept alive by our copy.
const NodeHelperCommand = "internal-node"

// nodeHostSpec is everything the helper does, written by the lab as JSON.
type nodeHostSpec struct {
	Node string `json:"node"`
	// HostMountNS is the lab's own mount namespace ("mnt:[4026531841]"),
	// the one the helper must not be in.
	HostMountNS string `json:"hostMountNS"`
	// Cgroup is the node's cgroup (see cgroup.go); the helper joins its
	// daemons child.
	Cgroup string `json:"cgroup"`
	// Binds are the node's own directories (and files) mounted over the
	// host paths of the same role.
	Binds []bindMount `json:"binds"`
	// Sysctls are kernel settings the kubelet checks, each covered by a
	// read-only file holding the value it wants.
	Sysctls []sysctlCover `json:"sysctls"`
	// ContainerdSocket is where containerd answers once it is up.
	ContainerdSocket string `json:"containerdSocket"`
	Containerd       daemon `json:"containerd"`
	Kubelet          daemon `json:"kubelet"`
}

// bindMount mounts Source over Target.
type bindMount struct {
	Source string `json:"source"`
	Target string `json:"target"`
	File   bool   `json:"file,omitempty"`
}

// sysctlCover covers /proc/sys/<Key> with File, holding Value.
type sysctlCover struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	File  string `json:"file"`
}

// daemon is a child of the helper.
type daemon struct {
	Argv    []string `json:"argv"`
	Log     string   `json:"log"`
	PIDFile string   `json:"pidFile"`
}

// sysctlPath is the /proc/sys file of a dotted key.
func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// RunNodeHelper is the body of NodeHelperCommand. It returns when ctx is
// cancelled (SIGTERM: it stops the kubelet, then containerd) or when
// either daemon exits (an error).
func RunNodeHelper(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(NodeHelperCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	specPath := fs.String("spec", "", "node host spec (JSON)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := os.ReadFile(*specPath)
	if err != nil {
		return fmt.Errorf("read node spec: %w", err)
	}
	var spec nodeHostSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("decode node spec %s: %w", *specPath, err)
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s %s: %s\n", time.Now().Format("15:04:05.000"), spec.Node, fmt.Sprintf(format, a...))
	}
	if err := requirePrivateMountNS(spec.HostMountNS); err != nil {
		return err
	}
	if err := joinCgroups(spec.Cgroup); err != nil {
		return err
	}
	if err := mountBinds(spec.Binds); err != nil {
		return err
	}
	if err := coverSysctls(spec.Sysctls); err != nil {
		return err
	}
	logf("mount namespace ready: %d binds, %d kernel settings covered", len(spec.Binds), len(spec.Sysctls))
	return superviseNode(ctx, spec, logf)
}

// requirePrivateMountNS refuses to mount anything in the lab's own mount
// namespace, the host's: every mount here must stay inside the node.
func requirePrivateMountNS(host string) error {
	own, err := mountNS()
	if err != nil {
		return err
	}
	if host == "" || own == host {
		return errors.New("the node helper runs in the host's mount namespace: refusing to mount over host paths (start it under `unshare --mount --propagation slave`)")
	}
	return nil
}

// mountNS names the calling process's mount namespace.
func mountNS() (string, error) {
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return "", fmt.Errorf("read own mount namespace: %w", err)
	}
	return ns, nil
}

// mountBinds bind-mounts each source over its target. Targets must exist
// already: the lab creates missing ones (empty) before starting nodes, and
// the helper never creates anything on the host's file systems.
func mountBinds(binds []bindMount) error {
	for _, b := range binds {
		st, err := os.Stat(b.Target)
		if err != nil {
			return fmt.Errorf("bind %s over %s: %w", b.Source, b.Target, err)
		}
		if st.IsDir() == b.File {
			return fmt.Errorf("bind %s over %s: target is not a %s", b.Source, b.Target, map[bool]string{true: "file", false: "directory"}[b.File])
		}
		if b.File {
			if err := os.MkdirAll(filepath.Dir(b.Source), 0o755); err != nil {
				return fmt.Errorf("create %s: %w", filepath.Dir(b.Source), err)
			}
			f, err := os.OpenFile(b.Source, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("create %s: %w", b.Source, err)
			}
			f.Close()
		} else if err := os.MkdirAll(b.Source, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", b.Source, err)
		}
		if err := syscall.Mount(b.Source, b.Target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", b.Source, b.Target, err)
		}
	}
	return nil
}

// coverSysctls writes each wanted value into the node's own file and
// mounts it read-only over the kernel's: the kubelet reads the value it
// wants and writes nothing (and, with protectKernelDefaults, would refuse
// to start rather than write a host setting left uncovered).
func coverSysctls(covers []sysctlCover) error {
	for _, c := range covers {
		if err := os.MkdirAll(filepath.Dir(c.File), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(c.File), err)
		}
		if err := os.WriteFile(c.File, []byte(c.Value+"\n"), 0o444); err != nil {
			return fmt.Errorf("write %s: %w", c.File, err)
		}
		target := sysctlPath(c.Key)
		if err := syscall.Mount(c.File, target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("cover %s: %w", target, err)
		}
		if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("make the cover of %s read-only: %w", target, err)
		}
	}
	return nil
}

// superviseNode starts containerd, waits for its socket, starts the
// kubelet, and waits for a signal or for either to exit.
func superviseNode(ctx context.Context, spec nodeHostSpec, logf func(string, ...any)) error {
	ctrd, err := startChild(spec.Containerd)
	if err != nil {
		return err
	}
	var kubelet *child
	defer func() {
		// The kubelet first: it would only log the runtime going away.
		if kubelet != nil {
			kubelet.stop(10 * time.Second)
		}
		ctrd.stop(10 * time.Second)
	}()
	err = until(ctx, 30*time.Second, 20*time.Millisecond, "containerd on "+spec.Node+" to answer", func(ctx context.Context) (bool, error) {
		if ctrd.exited() {
			return false, stopWaiting(fmt.Errorf("containerd exited; log tail:\n%s", tail(spec.Containerd.Log, 20)))
		}
		c, err := net.Dial("unix", spec.ContainerdSocket)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		return err
	}
	logf("containerd (pid %d) answers on %s", ctrd.cmd.Process.Pid, spec.ContainerdSocket)
	if kubelet, err = startChild(spec.Kubelet); err != nil {
		return err
	}
	logf("kubelet started (pid %d)", kubelet.cmd.Process.Pid)
	select {
	case <-ctx.Done():
		logf("stopping")
		return nil
	case <-ctrd.done:
		return fmt.Errorf("containerd exited: %v; log tail:\n%s", ctrd.err, tail(spec.Containerd.Log, 20))
	case <-kubelet.done:
		return fmt.Errorf("kubelet exited: %v; log tail:\n%s", kubelet.err, tail(spec.Kubelet.Log, 20))
	}
}

// child is a daemon the helper started and waits for.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startChild(d daemon) (*child, error) {
	logf, err := os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", d.Log, err)
	}
	defer logf.Close()
	cmd := exec.Command(d.Argv[0], d.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the helper is killed outright, its daemons go with it; Down
	// still sweeps the node's cgroup for what they started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", d.Argv[0], err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	if d.PIDFile != "" {
		if err := os.WriteFile(d.PIDFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			c.stop(0)
			return nil, fmt.Errorf("write %s: %w", d.PIDFile, err)
		}
	}
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, and SIGKILL after grace.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
