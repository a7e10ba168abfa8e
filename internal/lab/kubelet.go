package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/controlplane"
)

// Real nodes (Options.Kubelet): each node namespace runs containerd and a
// kubelet inside a private mount namespace (nodehost.go), in a cgroup of
// its own (cgroup.go). Everything a node writes lives under its node
// directory; the host paths containerd and the kubelet insist on are bind
// mounts of that directory, seen only inside the node.

// procNodeHost starts the name of a node helper's Proc ("node-host-node1").
const procNodeHost = "node-host"

// criNamespace is the containerd namespace the CRI plugin keeps pods in.
const criNamespace = "k8s.io"

// nodeRuntimeSocket is containerd's socket as the node sees it.
const nodeRuntimeSocket = "/run/containerd/containerd.sock"

// privatePath is a host path every real node gets its own copy of.
type privatePath struct {
	Path string
	File bool
}

// privatePaths are the host paths containerd 1.6, the kubelet, CNI and a
// Cairn DaemonSet write to. Nodes must not share them, and the host's must
// stay untouched.
var privatePaths = []privatePath{
	// containerd's state, socket, runc's state and the shims' sockets
	// (containerd 1.6 hard-codes /run/containerd/s for the latter).
	{Path: "/run/containerd"},
	// The kubelet's root: pod volumes, its serving certificate, plugin
	// sockets, checkpoints.
	{Path: "/var/lib/kubelet"},
	// Container logs and the links to them.
	{Path: "/var/log/pods"},
	{Path: "/var/log/containers"},
	// libcni's cache of results, read back on DEL.
	{Path: "/var/lib/cni"},
	// The CNI configuration and plugins a runtime reads, which Cairn's
	// DaemonSet installs as hostPaths.
	{Path: "/etc/cni/net.d"},
	{Path: "/opt/cni/bin"},
	// cairn-node's socket and state as the DaemonSet mounts them.
	{Path: "/run/cairn"},
	{Path: "/var/lib/cairn"},
	// iptables' lock (portmap): each node has tables of its own.
	{Path: "/run/xtables.lock", File: true},
}

// kubeletSysctls are the kernel settings the kubelet checks at start
// (setupKernelTunables) with the values it wants. They are global, not
// per network namespace: left uncovered, a kubelet would write them on the
// host (or, with protectKernelDefaults, refuse to start).
var kubeletSysctls = []sysctlCover{
	{Key: "vm.overcommit_memory", Value: "1"},
	{Key: "vm.panic_on_oom", Value: "0"},
	{Key: "kernel.panic", Value: "10"},
	{Key: "kernel.panic_on_oops", Value: "1"},
	{Key: "kernel.keys.root_maxkeys", Value: "1000000"},
	{Key: "kernel.keys.root_maxbytes", Value: "25000000"},
}

// nodePaths are a real node's files on the host, all under its node
// directory.
type nodePaths struct {
	Dir string
	// FS holds the sources of the bind mounts, by target path
	// (FS/var/lib/kubelet is the node's /var/lib/kubelet).
	FS string
	// ContainerdRoot holds images and snapshots.
	ContainerdRoot string
	ContainerdOpt  string
	// Files the lab writes.
	ContainerdConfig, KubeletConfig, Kubeconfig, Spec string
	// Logs and pid files.
	ContainerdLog, KubeletLog, HelperLog string
	ContainerdPID, KubeletPID            string
}

func newNodePaths(stateDir, node string) nodePaths {
	d := nodeDir(stateDir, node)
	return nodePaths{
		Dir:              d,
		FS:               filepath.Join(d, "fs"),
		ContainerdRoot:   filepath.Join(d, "containerd"),
		ContainerdOpt:    filepath.Join(d, "containerd-opt"),
		ContainerdConfig: filepath.Join(d, "containerd.toml"),
		KubeletConfig:    filepath.Join(d, "kubelet.json"),
		Kubeconfig:       filepath.Join(d, "kubeconfig"),
		Spec:             filepath.Join(d, "node-host.json"),
		ContainerdLog:    filepath.Join(d, "containerd.log"),
		KubeletLog:       filepath.Join(d, "kubelet.log"),
		HelperLog:        filepath.Join(d, procNodeHost+".log"),
		ContainerdPID:    filepath.Join(d, "containerd.pid"),
		KubeletPID:       filepath.Join(d, "kubelet.pid"),
	}
}

// private is the node's own copy of a host path, as the host sees it.
func (np nodePaths) private(hostPath string) string { return filepath.Join(np.FS, hostPath) }

// RuntimeSocket is containerd's socket as the host reaches it.
func (np nodePaths) RuntimeSocket() string { return np.private(nodeRuntimeSocket) }

func (np nodePaths) binds() []bindMount {
	out := make([]bindMount, 0, len(privatePaths))
	for _, p := range privatePaths {
		out = append(out, bindMount{Source: np.private(p.Path), Target: p.Path, File: p.File})
	}
	return out
}

func (np nodePaths) sysctls() []sysctlCover {
	out := make([]sysctlCover, 0, len(kubeletSysctls))
	for _, c := range kubeletSysctls {
		c.File = filepath.Join(np.Dir, "sysctl", c.Key)
		out = append(out, c)
	}
	return out
}

// nodeCgroup is the node's cgroup: named like its namespace, so that it is
// unique on the machine and Sweep recognises it.
func nodeCgroup(n Node) string { return "/" + n.NS }

// ensureMountPoints creates, on the host, the private paths that do not
// exist yet, empty: a bind mount needs something to cover. This is the
// only trace real nodes leave on the host, once per machine (and
// hack/install-deps.sh makes them before any test runs); nothing is ever
// written into them outside a node.
func ensureMountPoints(logf func(string, ...any)) error {
	for _, p := range privatePaths {
		_, err := os.Lstat(p.Path)
		if err == nil {
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check mount point %s: %w", p.Path, err)
		}
		if p.File {
			if err := os.MkdirAll(filepath.Dir(p.Path), 0o755); err != nil {
				return fmt.Errorf("create mount point %s: %w", p.Path, err)
			}
			f, err := os.OpenFile(p.Path, os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("create mount point %s: %w", p.Path, err)
			}
			f.Close()
		} else if err := os.MkdirAll(p.Path, 0o755); err != nil {
			return fmt.Errorf("create mount point %s: %w", p.Path, err)
		}
		logf("created the empty mount point %s on the host (real nodes cover it with their own)", p.Path)
	}
	return nil
}

// containerdConfig is a node's containerd configuration. Besides paths of
// its own, what this machine needs and why:
//   - restrict_oom_score_adj: the machine lacks CAP_SYS_RESOURCE, so runc
//     cannot lower a container's oom_score_adj below its own; without it
//     every sandbox fails with runc's "can't get final child's PID from
//     pipe: EOF".
//   - netns_mounts_under_state_dir: pod network namespaces are pinned
//     under /run/containerd (the node's own) instead of /run/netns, the
//     host's, where they would show up in `ip netns list`.
//   - the opt plugin's path: by default it creates /opt/containerd.
//   - no registry is ever reached: every image is imported, and the
//     sandbox image is ours.
func containerdConfig(np nodePaths, pauseImage string) string {
	q := strconv.Quote
	return `version = 2
root = ` + q(np.ContainerdRoot) + `
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = ` + q(nodeRuntimeSocket) + `

[plugins."io.containerd.internal.v1.opt"]
  path = ` + q(np.ContainerdOpt) + `

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ` + q(pauseImage) + `
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
`
}

// kubeletConfig is a node's KubeletConfiguration (JSON, which the kubelet
// reads as YAML). What this machine needs and why:
//   - failCgroupV1 false and the cgroupfs driver: the machine has cgroup
//     v1 and no systemd.
//   - cgroupRoot: the node's own cgroup, so that kubelets do not see each
//     other's pods as orphans to kill, and Down finds every container.
//   - protectKernelDefaults: the kernel settings it checks are covered
//     with the values it wants (kubeletSysctls); should one not be, the
//     kubelet refuses to start instead of changing the host.
//   - resolvConf "": pods get no nameserver of the host's, so a lookup
//     never leaves the lab.
//   - anonymous access with AlwaysAllow on the node's address: the API
//     server (logs, exec) has no client certificate to present; only the
//     lab's namespaces reach that address.
//   - eviction and image GC thresholds that never trigger: the machine's
//     disk is shared by everything on it, and imported images cannot be
//     pulled again.
//   - volumePluginDir under the node's /var/lib/kubelet: by default the
//     kubelet creates /usr/libexec/kubernetes on the host.
func kubeletConfig(n Node) ([]byte, error) {
	conf := map[string]any{
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"kind":                     "KubeletConfiguration",
		"failCgroupV1":             false,
		"cgroupDriver":             "cgroupfs",
		"cgroupRoot":               nodeCgroup(n),
		"containerRuntimeEndpoint": "unix://" + nodeRuntimeSocket,
		"address":                  n.Addr.String(),
		"port":                     10250,
		"readOnlyPort":             0,
		"healthzBindAddress":       "127.0.0.1",
		"healthzPort":              10248,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": true},
			"webhook":   map[string]any{"enabled": false},
		},
		"authorization":         map[string]any{"mode": "AlwaysAllow"},
		"protectKernelDefaults": true,
		"resolvConf":            "",
		"clusterDomain":         "cluster.local",
		"failSwapOn":            false,
		"serializeImagePulls":   false,
		"evictionHard": map[string]string{
			"memory.available": "100Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%", "imagefs.available": "1%",
		},
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"volumePluginDir":             "/var/lib/kubelet/volume-plugins",
		"rotateCertificates":          false,
		"shutdownGracePeriod":         "0s",
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode kubelet configuration: %w", err)
	}
	return data, nil
}

// nodeHostSpecFor is what a node's helper does; hostMountNS is the lab's.
func nodeHostSpecFor(n Node, np nodePaths, kubeletBin, hostMountNS string) nodeHostSpec {
	return nodeHostSpec{
		Node:             n.Name,
		HostMountNS:      hostMountNS,
		Cgroup:           nodeCgroup(n),
		Binds:            np.binds(),
		Sysctls:          np.sysctls(),
		ContainerdSocket: nodeRuntimeSocket,
		Containerd: daemon{
			Argv:    []string{"containerd", "--config", np.ContainerdConfig},
			Log:     np.ContainerdLog,
			PIDFile: np.ContainerdPID,
		},
		Kubelet: daemon{
			Argv: []string{
				kubeletBin,
				"--config=" + np.KubeletConfig,
				"--kubeconfig=" + np.Kubeconfig,
				"--hostname-override=" + n.Name,
				"--node-ip=" + n.Addr.String(),
				"--v=1",
			},
			Log:     np.KubeletLog,
			PIDFile: np.KubeletPID,
		},
	}
}

// startNodeHost writes a node's configuration, creates its cgroup
// (recorded first) and starts its helper.
func (l *Lab) startNodeHost(n Node, pauseImage string) error {
	bins, err := controlplane.BinDir()
	if err != nil {
		return err
	}
	kubeletBin := filepath.Join(bins, "kubelet")
	if _, err := os.Stat(kubeletBin); err != nil {
		return fmt.Errorf("find the kubelet: %w (run `make controlplane`)", err)
	}
	np := newNodePaths(l.st.Dir, n.Name)
	if _, err := writeNodeKubeconfig(l.st, n.Name); err != nil {
		return err
	}
	if err := os.MkdirAll(np.ContainerdRoot, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", np.ContainerdRoot, err)
	}
	if err := os.WriteFile(np.ContainerdConfig, []byte(containerdConfig(np, pauseImage)), 0o644); err != nil {
		return fmt.Errorf("write containerd configuration of %s: %w", n.Name, err)
	}
	kc, err := kubeletConfig(n)
	if err != nil {
		return err
	}
	if err := os.WriteFile(np.KubeletConfig, kc, 0o644); err != nil {
		return fmt.Errorf("write kubelet configuration of %s: %w", n.Name, err)
	}
	hostNS, err := mountNS()
	if err != nil {
		return err
	}
	spec, err := json.MarshalIndent(nodeHostSpecFor(n, np, kubeletBin, hostNS), "", "  ")
	if err != nil {
		return fmt.Errorf("encode node spec: %w", err)
	}
	if err := os.WriteFile(np.Spec, spec, 0o644); err != nil {
		return fmt.Errorf("write node spec of %s: %w", n.Name, err)
	}
	cg := nodeCgroup(n)
	l.st.Cgroups = append(l.st.Cgroups, cg)
	if err := l.st.save(); err != nil {
		return err
	}
	if err := createNodeCgroup(cg); err != nil {
		return err
	}
	wrap := []string{"nsenter", "--net=" + NSPath(n.NS), "--", "unshare", "--mount", "--propagation", "slave", "--"}
	argv := []string{filepath.Join(binDir(l.st.Dir), binLab), NodeHelperCommand, "--spec", np.Spec}
	p, err := startDetachedWrapped(n.NS, procNodeHost+"-"+n.Name, np.HelperLog, wrap, argv, nil)
	if err != nil {
		return err
	}
	return l.st.addProc(p)
}

// waitRuntime waits until the node's containerd answers on its socket.
func (l *Lab) waitRuntime(ctx context.Context, n Node) error {
	np := newNodePaths(l.st.Dir, n.Name)
	return until(ctx, 60*time.Second, 50*time.Millisecond, "containerd on "+n.Name, func(ctx context.Context) (bool, error) {
		if err := l.nodeHostAlive(n); err != nil {
			return false, stopWaiting(err)
		}
		c, err := net.Dial("unix", np.RuntimeSocket())
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
}

func (l *Lab) nodeHostAlive(n Node) error {
	for _, p := range l.st.Procs {
		if p.Name == procNodeHost+"-"+n.Name && !p.Alive() {
			np := newNodePaths(l.st.Dir, n.Name)
			return fmt.Errorf("the node helper of %s exited; log tail:\n%s\n--- kubelet:\n%s", n.Name, tail(p.Log, 20), tail(np.KubeletLog, 10))
		}
	}
	return nil
}

// importImages loads image tarballs into the node's containerd, where the
// CRI plugin finds them.
func (l *Lab) importImages(ctx context.Context, n Node, tarballs []string) error {
	np := newNodePaths(l.st.Dir, n.Name)
	for _, tb := range tarballs {
		if _, err := run(ctx, "ctr", "--address", np.RuntimeSocket(), "--namespace", criNamespace, "images", "import", tb); err != nil {
			return fmt.Errorf("import %s into %s: %w", filepath.Base(tb), n.Name, err)
		}
	}
	return nil
}

// nodeCNIPlugins are the reference plugins a node has before any network
// is installed, as a distribution's CNI package gives it: containerd's CRI
// plugin sets up every pod's lo with loopback, and Cairn's conflist may
// chain portmap.
var nodeCNIPlugins = []string{"loopback", "portmap"}

// installNodeCNIPlugins copies nodeCNIPlugins from Debian's
// containernetworking-plugins into the node's /opt/cni/bin.
func (l *Lab) installNodeCNIPlugins(n Node) error {
	dst := newNodePaths(l.st.Dir, n.Name).private("/opt/cni/bin")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	for _, name := range nodeCNIPlugins {
		if err := copyFile(filepath.Join(debianCNIDir, name), filepath.Join(dst, name), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// installCNI does, for agents run as processes, what Cairn's DaemonSet
// init container does: put the plugin and the configuration into the
// node's CNI directories, the configuration last and by rename, so that
// the runtime never reads half of it.
func (l *Lab) installCNI(n Node) error {
	np := newNodePaths(l.st.Dir, n.Name)
	binDst, confDst := np.private("/opt/cni/bin"), np.private("/etc/cni/net.d")
	for _, d := range []string{binDst, confDst} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := copyFile(filepath.Join(binDir(l.st.Dir), binCNI), filepath.Join(binDst, binCNI), 0o755); err != nil {
		return err
	}
	conf, err := nodeConflist(l.st.RepoRoot, l.st.Dir, n.Name)
	if err != nil {
		return err
	}
	tmp := filepath.Join(confDst, ".10-cairn.conflist.tmp")
	if err := os.WriteFile(tmp, conf, 0o644); err != nil {
		return fmt.Errorf("write CNI configuration of %s: %w", n.Name, err)
	}
	if err := os.Rename(tmp, filepath.Join(confDst, "10-cairn.conflist")); err != nil {
		return fmt.Errorf("install CNI configuration of %s: %w", n.Name, err)
	}
	return nil
}

// debianCNIDir holds the reference plugins of Debian's
// containernetworking-plugins.
const debianCNIDir = "/usr/lib/cni"

// baseConflist is Cairn's CNI configuration, which the DaemonSet installs.
const baseConflist = "deploy/node/10-cairn.conflist"

// nodeConflist is the CNI configuration a real node's runtime reads when
// the lab runs the agents as processes: the DaemonSet's (repo's
// baseConflist), with cairn-cni pointed at the agent process's socket.
func nodeConflist(repoRoot, stateDir, node string) ([]byte, error) {
	base, err := os.ReadFile(filepath.Join(repoRoot, baseConflist))
	if err != nil {
		return nil, fmt.Errorf("read Cairn's conflist: %w", err)
	}
	var conf map[string]any
	if err := json.Unmarshal(base, &conf); err != nil {
		return nil, fmt.Errorf("%s: %w", baseConflist, err)
	}
	plugins, _ := conf["plugins"].([]any)
	found := false
	for _, p := range plugins {
		if p, ok := p.(map[string]any); ok && p["type"] == binCNI {
			p["agentSocket"], found = agentSocket(stateDir, node), true
		}
	}
	if !found {
		return nil, fmt.Errorf("%s has no %s plugin", baseConflist, binCNI)
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode conflist: %w", err)
	}
	return data, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	return nil
}

// waitNodesReady waits until every node's kubelet reports Ready.
func (l *Lab) waitNodesReady(ctx context.Context, timeout time.Duration) error {
	return until(ctx, timeout, 200*time.Millisecond, "every kubelet to report its node Ready", func(ctx context.Context) (bool, error) {
		for _, n := range l.st.Plan.Nodes() {
			if err := l.nodeHostAlive(n); err != nil {
				return false, stopWaiting(err)
			}
			node, err := l.c.kube.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !nodeReady(node) {
				return false, fmt.Errorf("node %s is not Ready: %s", n.Name, readyMessage(node))
			}
		}
		return true, nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readyMessage(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return strings.TrimSpace(c.Reason + " " + c.Message)
		}
	}
	return "no Ready condition yet"
}

// removeNodeCgroups kills what is left of the real nodes (containers,
// shims, daemons whose helper was killed outright) and removes their
// cgroups.
func removeNodeCgroups(cgroups []string, logf func(string, ...any)) []error {
	var errs []error
	for _, cg := range cgroups {
		if err := removeNodeCgroup(cg, 10*time.Second); err != nil {
			errs = append(errs, err)
			continue
		}
		logf("removed cgroup %s and everything in it", cg)
	}
	return errs
}
