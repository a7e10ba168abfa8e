package lab

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCgroupMounts(t *testing.T) {
	mountinfo := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpuacct,cpu
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	got, err := parseCgroupMounts(strings.NewReader(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []hierarchy{
		{Mount: "/sys/fs/cgroup/cpu", Key: "cpu"},
		{Mount: "/sys/fs/cgroup/cpu,cpuacct", Key: "cpu,cpuacct"},
		{Mount: "/sys/fs/cgroup/memory", Key: "memory"},
		{Mount: "/sys/fs/cgroup/systemd", Key: "name=systemd"},
		{Mount: "/sys/fs/cgroup/unified", Key: ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseProcCgroup(t *testing.T) {
	got, err := parseProcCgroup(strings.NewReader("9:name=systemd:/\n4:memory:/job/42\n2:cpuacct,cpu:/\n0::/\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"name=systemd": "/", "memory": "/job/42", "cpu,cpuacct": "/", "": "/"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestValidNodeCgroup(t *testing.T) {
	for _, tc := range []struct {
		rel string
		ok  bool
	}{
		{"/cl-kl-node1", true},
		{"/cl-node1", true},
		{"cl-node1", false},          // not rooted
		{"/", false},                 // the root itself
		{"/kubepods", false},         // not the lab's
		{"/cl-kl-node1/pod", false},  // only top-level node cgroups
		{"/process_api/cl-x", false}, // nested elsewhere
		{"", false},
	} {
		if err := validNodeCgroup(tc.rel); (err == nil) != tc.ok {
			t.Errorf("validNodeCgroup(%q) = %v, want ok=%v", tc.rel, err, tc.ok)
		}
	}
}

func TestParseTaskList(t *testing.T) {
	out := "TASK                                                                PID      STATUS    \n" +
		"4f1c0c0d2b                                                          4242     RUNNING\n" +
		"9a9a9a9a9a                                                          0        STOPPED\n"
	got, err := parseTaskList(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"4f1c0c0d2b": 4242}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseTaskList("ID IMAGE\n"); err == nil {
		t.Error("an unknown header was accepted")
	}
}

// Each node's private paths must come from its own directory, and every
// host path the runtime and the kubelet write must be covered.
func TestNodeBindsArePrivate(t *testing.T) {
	a, b := newNodePaths("/run/lab", "node1"), newNodePaths("/run/lab", "node2")
	covered := map[string]bool{}
	sources := map[string]string{}
	for _, np := range []nodePaths{a, b} {
		for _, bm := range np.binds() {
			if !strings.HasPrefix(bm.Source, np.Dir+"/") {
				t.Errorf("%s: source %s is outside the node directory %s", bm.Target, bm.Source, np.Dir)
			}
			if other, dup := sources[bm.Source]; dup {
				t.Errorf("source %s serves %s and %s", bm.Source, other, bm.Target)
			}
			sources[bm.Source] = bm.Target
			covered[bm.Target] = true
		}
	}
	for _, p := range []string{"/run/containerd", "/var/lib/kubelet", "/var/lib/cni", "/var/log/pods", "/var/log/containers", "/etc/cni/net.d", "/opt/cni/bin"} {
		if !covered[p] {
			t.Errorf("%s is not private to nodes", p)
		}
	}
	if got, want := a.RuntimeSocket(), "/run/lab/nodes/node1/fs/run/containerd/containerd.sock"; got != want {
		t.Errorf("runtime socket %s, want %s", got, want)
	}
}

func TestNodeSysctlsCoverWhatKubeletChecks(t *testing.T) {
	np := newNodePaths("/s", "node1")
	got := map[string]string{}
	for _, c := range np.sysctls() {
		if filepath.Dir(c.File) != filepath.Join(np.Dir, "sysctl") {
			t.Errorf("%s covered by %s, outside the node directory", c.Key, c.File)
		}
		got[sysctlPath(c.Key)] = c.Value
	}
	// The kubelet's setupKernelTunables and the values it wants.
	want := map[string]string{
		"/proc/sys/vm/overcommit_memory":      "1",
		"/proc/sys/vm/panic_on_oom":           "0",
		"/proc/sys/kernel/panic":              "10",
		"/proc/sys/kernel/panic_on_oops":      "1",
		"/proc/sys/kernel/keys/root_maxkeys":  "1000000",
		"/proc/sys/kernel/keys/root_maxbytes": "25000000",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestContainerdConfig(t *testing.T) {
	np := newNodePaths("/s", "node1")
	conf := containerdConfig(np, "cairn.dev/pause:lab")
	for _, want := range []string{
		`root = "/s/nodes/node1/containerd"`,
		`state = "/run/containerd"`,
		`address = "/run/containerd/containerd.sock"`,
		`path = "/s/nodes/node1/containerd-opt"`,
		`sandbox_image = "cairn.dev/pause:lab"`,
		`restrict_oom_score_adj = true`,
		`netns_mounts_under_state_dir = true`,
		`SystemdCgroup = false`,
		`bin_dir = "/opt/cni/bin"`,
		`conf_dir = "/etc/cni/net.d"`,
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("containerd configuration lacks %s:\n%s", want, conf)
		}
	}
}

func TestKubeletConfig(t *testing.T) {
	n := Node{Name: "node1", NS: "cl-kl-node1", Addr: netip.MustParseAddr("172.30.1.11")}
	data, err := kubeletConfig(n)
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"kind":                     "KubeletConfiguration",
		"failCgroupV1":             false,
		"cgroupDriver":             "cgroupfs",
		"cgroupRoot":               "/cl-kl-node1",
		"containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
		"address":                  "172.30.1.11",
		"protectKernelDefaults":    true,
		"resolvConf":               "",
		"volumePluginDir":          "/var/lib/kubelet/volume-plugins",
	} {
		if got := conf[key]; got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
}

// The agent-process mode's conflist is the DaemonSet's, with the agent's
// socket: both modes run pods with the same CNI configuration.
func TestNodeConflistIsTheBase(t *testing.T) {
	root := filepath.Join("..", "..")
	data, err := nodeConflist(root, "/s", "node1")
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(root, baseConflist))
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(base, &want); err != nil {
		t.Fatal(err)
	}
	plugins := want["plugins"].([]any)
	plugins[0].(map[string]any)["agentSocket"] = "/s/nodes/node1/agent.sock"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("nodeConflist:\n%s\nwant %s with the node's agent socket", data, baseConflist)
	}
	if _, err := nodeConflist(t.TempDir(), "/s", "node1"); err == nil {
		t.Error("nodeConflist without a conflist to read: no error")
	}
}

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		in            []time.Duration
		p50, p90, max time.Duration
	}{
		{ms(5), 5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond},
		{ms(9, 1, 5), 5 * time.Millisecond, 9 * time.Millisecond, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 6 * time.Millisecond, 9 * time.Millisecond, 10 * time.Millisecond},
	} {
		got := summarize(tc.in)
		if got.N != len(tc.in) || got.P50 != tc.p50 || got.P90 != tc.p90 || got.Max != tc.max {
			t.Errorf("summarize(%v) = %+v, want p50 %v p90 %v max %v", tc.in, got, tc.p50, tc.p90, tc.max)
		}
	}
	if got := summarize(nil); got.N != 0 {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

// hack/install-deps.sh makes every mount point real nodes cover, before
// any test runs.
func TestInstallDepsMakesMountPoints(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "..", "hack", "install-deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range privatePaths {
		if !strings.Contains(string(script), " "+p.Path) {
			t.Errorf("hack/install-deps.sh does not make the mount point %s", p.Path)
		}
	}
}
