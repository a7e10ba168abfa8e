package images

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-net/cairn/internal/testenv"
	"github.com/cairn-net/cairn/internal/workload"
)

// ctrNamespace is the containerd namespace the kubelet's CRI uses, where
// the lab imports images.
const ctrNamespace = "k8s.io"

// privateContainerd is a containerd of the test's own: its root, state,
// socket and log under a temporary directory, nothing shared with a
// containerd the machine may run. It runs in a mount namespace of its own
// with a tmpfs over /run: containerd 1.6 and ctr put the shims' sockets
// and the containers' stdio FIFOs in /run/containerd whatever the
// configuration says, and the host's must stay untouched. Every ctr runs
// in that namespace too (the FIFOs it makes are opened by the shims).
type privateContainerd struct {
	t      *testing.T
	dir    string
	socket string
	cmd    *exec.Cmd
	// mntNS is containerd's mount namespace, /proc/PID/ns/mnt.
	mntNS string
	// containers started, removed at the end even when a test fails.
	containers []string
}

func startContainerd(t *testing.T) *privateContainerd {
	t.Helper()
	// Not t.TempDir: overlay mounts and runc state there are root's and
	// are gone only once containerd has cleaned up; removed below.
	dir, err := os.MkdirTemp("", "cairn-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &privateContainerd{t: t, dir: dir, socket: filepath.Join(dir, "containerd.sock")}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
# The kubelet's CRI plugin is not what is tested: the images are.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.socket, c.socket+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	// unshare and sh exec in place: the PID is containerd's. Slave
	// propagation: nothing mounted here reaches the host.
	c.cmd = exec.Command("unshare", "--mount", "--propagation", "slave", "--",
		"sh", "-c", `mount -t tmpfs -o mode=0755 cairn-containerd-test /run && exec containerd --config "$1"`, "sh", cfgPath)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.mntNS = fmt.Sprintf("/proc/%d/ns/mnt", c.cmd.Process.Pid)
	t.Cleanup(func() { c.stop(); logf.Close(); os.RemoveAll(dir) })
	// containerd has no readiness signal but its socket answering, which
	// it does only after the mount namespace and the tmpfs are in place.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.ctr("version"); err == nil {
			c.checkOwnMountNS()
			return c
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd did not answer on %s within 30s:\n%s", c.socket, log)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// stop removes the containers the test started, then ends containerd (by
// its PID) and waits for it.
func (c *privateContainerd) stop() {
	for _, id := range c.containers {
		c.ctr("tasks", "kill", "-s", "SIGKILL", id)
		c.ctr("tasks", "delete", "-f", id)
		c.ctr("containers", "delete", id)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// checkOwnMountNS fails the test unless containerd runs in a mount
// namespace other than the test's.
func (c *privateContainerd) checkOwnMountNS() {
	c.t.Helper()
	theirs, err := os.Readlink(c.mntNS)
	if err != nil {
		c.t.Fatal(err)
	}
	ours, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		c.t.Fatal(err)
	}
	if theirs == ours {
		c.t.Fatalf("containerd runs in the test's mount namespace (%s): it would write the host's /run/containerd", ours)
	}
}

// checkHostRunUntouched fails the test if runc's state of a running
// container shows in the host's /run/containerd.
func (c *privateContainerd) checkHostRunUntouched(id string) {
	c.t.Helper()
	state := filepath.Join("/run/containerd/runc", ctrNamespace, id)
	if _, err := os.Stat(state); err == nil {
		c.t.Errorf("container %s's runc state is in the host's %s", id, state)
	}
}

// ctrCommand is ctr against this containerd, in its mount namespace and
// the k8s.io containerd namespace.
func (c *privateContainerd) ctrCommand(args ...string) *exec.Cmd {
	argv := append([]string{"--mount=" + c.mntNS, "--", "ctr", "--address", c.socket, "--namespace", ctrNamespace}, args...)
	return exec.Command("nsenter", argv...)
}

// ctr runs ctr against this containerd.
func (c *privateContainerd) ctr(args ...string) (string, error) {
	out, err := c.ctrCommand(args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// run runs a container of ref to completion (ctr run --rm) and returns
// its output.
func (c *privateContainerd) run(ref, id string, opts []string, argv ...string) (string, error) {
	c.containers = append(c.containers, id)
	args := append(append([]string{"run", "--rm"}, opts...), ref, id)
	return c.ctr(append(args, argv...)...)
}

// start starts a container of ref in the background; wait returns its
// exit once it has ended.
func (c *privateContainerd) start(ref, id string, opts []string, argv ...string) (wait func() error) {
	c.t.Helper()
	c.containers = append(c.containers, id)
	args := append([]string{"run", "--rm"}, opts...)
	cmd := c.ctrCommand(append(append(args, ref, id), argv...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	return func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %w\n%s", id, err, out.String())
		}
		return nil
	}
}

// waitRunning waits until the container's task is running.
func (c *privateContainerd) waitRunning(id string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := c.ctr("tasks", "ls")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == id && f[2] == "RUNNING" {
				c.checkHostRunUntouched(id)
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("container %s not running after 30s:\n%s", id, out)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// TestImagesImportAndRunInContainerd builds the real images and imports
// them into Debian's containerd as the lab does on each node, then runs
// what the cluster runs from them: the DaemonSet's init container and the
// agent's binaries, the workload serving and probing, and pause until it
// is told to stop.
func TestImagesImportAndRunInContainerd(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Binary("containerd"), testenv.Binary("ctr"), testenv.Binary("runc"),
		testenv.Binary("unshare"), testenv.Binary("nsenter"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	imgs, err := Build(ctx, Options{OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := startContainerd(t)
	refs := map[string]string{}
	for _, img := range imgs {
		if _, err := c.ctr("images", "import", img.Tarball); err != nil {
			t.Fatalf("import %s: %v", img.Ref, err)
		}
		refs[img.Name] = img.Ref
	}
	out, err := c.ctr("images", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		if !strings.Contains(out, ref) {
			t.Errorf("%s not among containerd's images after import:\n%s", ref, out)
		}
	}
	t.Run("cairn", func(t *testing.T) { checkCairnImage(t, c, refs[Cairn]) })
	t.Run("workload", func(t *testing.T) { checkWorkloadImage(t, c, refs[Workload]) })
	t.Run("pause", func(t *testing.T) { checkPauseImage(t, c, refs[Pause]) })
}

// The init container's command installs the plugin and the conflist into
// the host's directories; the agent's binaries start on the empty base.
func checkCairnImage(t *testing.T, c *privateContainerd, ref string) {
	host := t.TempDir()
	bin, conf := filepath.Join(host, "bin"), filepath.Join(host, "net.d")
	for _, d := range []string{bin, conf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mounts := []string{
		"--mount", "type=bind,src=" + bin + ",dst=/host/opt/cni/bin,options=rbind:rw",
		"--mount", "type=bind,src=" + conf + ",dst=/host/etc/cni/net.d,options=rbind:rw",
	}
	if out, err := c.run(ref, "install-cni", mounts, BinDir+"/cairn-cni", "install"); err != nil {
		t.Fatalf("cairn-cni install: %v\n%s", err, out)
	}
	st, err := os.Stat(filepath.Join(bin, "cairn-cni"))
	if err != nil || st.Mode().Perm() != 0o755 || st.Size() == 0 {
		t.Errorf("installed plugin: %v, %v", st, err)
	}
	got, err := os.ReadFile(filepath.Join(conf, "10-cairn.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "deploy", "node", "10-cairn.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("installed conflist:\n%s\nwant deploy/node/10-cairn.conflist:\n%s", got, want)
	}
	// The installed plugin is the image's, and runs on the host.
	plugin := exec.Command(filepath.Join(bin, "cairn-cni"))
	plugin.Env = []string{"CNI_COMMAND=VERSION"}
	plugin.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
	if out, err := plugin.Output(); err != nil || !strings.Contains(string(out), "supportedVersions") {
		t.Errorf("installed plugin, CNI VERSION: %q, %v", out, err)
	}
	// The binaries start on the empty base: each prints its usage (cairnctl
	// with exit status 2, as for any usage error).
	for bin, usage := range map[string]string{"cairn-node": "-node-name", "cairnctl": "usage: cairnctl"} {
		out, err := c.run(ref, "run-"+bin, nil, BinDir+"/"+bin, "--help")
		if !strings.Contains(out, usage) {
			t.Errorf("%s --help in the image: %v\n%s", bin, err, out)
		}
	}
}

// The workload serves on the host's loopback (the test's own network
// namespace), answers the test, and probes itself from a second container.
func checkWorkloadImage(t *testing.T, c *privateContainerd, ref string) {
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	wait := c.start(ref, "workload-serve", []string{"--net-host"}, "/workload", "serve", "--tcp", addr, "--udp", addr, "--http", httpAddr)
	c.waitRunning("workload-serve")
	// Listening follows the task's start: poll the server until it answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := workload.Probe(context.Background(), workload.ProbeOptions{Proto: "tcp", Addr: addr, Timeout: time.Second})
		if err == nil && res.OK() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workload never answered on %s: %+v %v", addr, res, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	for _, p := range []struct{ proto, addr string }{{"udp", addr}, {"http", httpAddr}} {
		out, err := c.run(ref, "workload-probe-"+p.proto, []string{"--net-host"},
			"/workload", "probe", "--proto", p.proto, "--to", p.addr, "--count", "20", "--interval", "1ms")
		var res workload.ProbeResult
		if jerr := json.Unmarshal([]byte(firstLine(out)), &res); err != nil || jerr != nil || !res.OK() || res.Sent != 20 {
			t.Errorf("workload probe %s from a container: %v %v\n%s", p.proto, err, jerr, out)
		}
	}
	if _, err := c.ctr("tasks", "kill", "workload-serve"); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Errorf("workload after SIGTERM: %v", err)
	}
}

// pause runs as 65535 until SIGTERM, then exits 0.
func checkPauseImage(t *testing.T, c *privateContainerd, ref string) {
	wait := c.start(ref, "pause", nil)
	c.waitRunning("pause")
	if _, err := c.ctr("tasks", "kill", "pause"); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Errorf("pause after SIGTERM: %v", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
