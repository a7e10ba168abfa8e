package deploy

import (
	"encoding/json"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/internal/images"
)

// allowedCaps are the capabilities cairn-node may add; the manifest says
// why for each.
var allowedCaps = []corev1.Capability{"NET_ADMIN", "NET_BIND_SERVICE"}

// installations are the renders that install the agent: the base, and the
// lab overlay on top of it.
var installations = []struct {
	dir   string
	image string
	pull  corev1.PullPolicy
}{
	{"deploy", images.Registry + "/" + images.Cairn + ":dev", ""},
	{"deploy/overlays/lab", images.CairnSpec().Ref(images.DefaultTag), corev1.PullNever},
}

// eachInstallation runs check on the DaemonSet of every installation.
func eachInstallation(t *testing.T, check func(t *testing.T, r rendered, ds *appsv1.DaemonSet)) {
	for _, in := range installations {
		t.Run(strings.ReplaceAll(in.dir, "/", "_"), func(t *testing.T) {
			r := render(t, in.dir)
			check(t, r, into[appsv1.DaemonSet](t, r.find(t, "DaemonSet", "cairn-node")))
		})
	}
}

func allContainers(ds *appsv1.DaemonSet) []corev1.Container {
	return append(slices.Clone(ds.Spec.Template.Spec.InitContainers), ds.Spec.Template.Spec.Containers...)
}

func container(t *testing.T, ds *appsv1.DaemonSet, name string) corev1.Container {
	t.Helper()
	for _, c := range allContainers(ds) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

// flag is the value of --name=value in a container's args.
func flag(t *testing.T, c corev1.Container, name string) string {
	t.Helper()
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	t.Fatalf("container %s has no --%s=", c.Name, name)
	return ""
}

func TestDaemonSetIsNotPrivileged(t *testing.T) {
	eachInstallation(t, func(t *testing.T, _ rendered, ds *appsv1.DaemonSet) {
		if !ds.Spec.Template.Spec.HostNetwork {
			t.Error("not in the host network")
		}
		for _, c := range allContainers(ds) {
			sc := c.SecurityContext
			if sc == nil || sc.Capabilities == nil {
				t.Errorf("%s: no security context with capabilities", c.Name)
				continue
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", c.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: privilege escalation not turned off", c.Name)
			}
			if !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: drops %v, want ALL (then adds what it needs)", c.Name, sc.Capabilities.Drop)
			}
			for _, cp := range sc.Capabilities.Add {
				if !slices.Contains(allowedCaps, cp) {
					t.Errorf("%s: adds %s; allowed are %v, each justified in the manifest", c.Name, cp, allowedCaps)
				}
			}
		}
	})
}

// runc refuses mounts inside /proc; the host's net sysctls come in
// through /proc/sys/net mounted elsewhere, where cairn-node is told to
// find them.
func TestDaemonSetMountsNothingInsideProc(t *testing.T) {
	eachInstallation(t, func(t *testing.T, _ rendered, ds *appsv1.DaemonSet) {
		hostPaths := map[string]string{}
		for _, v := range ds.Spec.Template.Spec.Volumes {
			if v.HostPath != nil {
				hostPaths[v.Name] = v.HostPath.Path
				if underProc(v.HostPath.Path) && v.HostPath.Path != "/proc/sys/net" {
					t.Errorf("volume %s: host path %s; only /proc/sys/net is needed", v.Name, v.HostPath.Path)
				}
			}
		}
		for _, c := range allContainers(ds) {
			for _, m := range c.VolumeMounts {
				if underProc(m.MountPath) {
					t.Errorf("%s: mounts %s at %s, inside /proc: runc refuses it", c.Name, m.Name, m.MountPath)
				}
				if hostPaths[m.Name] == "/proc/sys/net" && c.Name == "cairn-node" {
					if got := flag(t, c, "proc-sys-net"); got != m.MountPath {
						t.Errorf("host /proc/sys/net mounted at %s, cairn-node told --proc-sys-net=%s", m.MountPath, got)
					}
				}
			}
		}
		node := container(t, ds, "cairn-node")
		if !slices.ContainsFunc(node.VolumeMounts, func(m corev1.VolumeMount) bool { return hostPaths[m.Name] == "/proc/sys/net" && !m.ReadOnly }) {
			t.Error("cairn-node does not mount the host's /proc/sys/net writable: felix cannot set ip_forward or a veth's rp_filter")
		}
	})
}

func underProc(p string) bool {
	p = path.Clean(p)
	return p == "/proc" || strings.HasPrefix(p, "/proc/")
}

func TestDaemonSetImages(t *testing.T) {
	for _, in := range installations {
		t.Run(strings.ReplaceAll(in.dir, "/", "_"), func(t *testing.T) {
			r := render(t, in.dir)
			ds := into[appsv1.DaemonSet](t, r.find(t, "DaemonSet", "cairn-node"))
			for _, c := range allContainers(ds) {
				if c.Image != in.image || c.ImagePullPolicy != in.pull {
					t.Errorf("%s: image %q pull %q, want %q pull %q", c.Name, c.Image, c.ImagePullPolicy, in.image, in.pull)
				}
			}
		})
	}
}

// The commands the DaemonSet runs are files of the cairn image, and the
// conflist it installs is where the image and the ConfigMap put it.
func TestDaemonSetRunsWhatTheImageHolds(t *testing.T) {
	spec := images.CairnSpec()
	inImage := func(p string) bool {
		return slices.ContainsFunc(spec.Files, func(f images.File) bool { return f.Path == p })
	}
	eachInstallation(t, func(t *testing.T, _ rendered, ds *appsv1.DaemonSet) {
		for _, c := range allContainers(ds) {
			entry := spec.Config.Entrypoint
			if len(c.Command) > 0 {
				entry = c.Command
			}
			if !inImage(entry[0]) {
				t.Errorf("%s runs %s, which the cairn image does not hold", c.Name, entry[0])
			}
		}
		install := container(t, ds, "install-cni")
		if got := flag(t, install, "conflist"); got != images.ConflistPath {
			t.Errorf("install-cni installs %s, the image and ConfigMap mount put the conflist at %s", got, images.ConflistPath)
		}
		if !inImage(images.ConflistPath) {
			t.Errorf("the cairn image holds no %s", images.ConflistPath)
		}
	})
}

// The init container writes into the host's CNI directories, mounted
// where it is told to write.
func TestInitContainerInstallsIntoTheHostsCNIDirectories(t *testing.T) {
	eachInstallation(t, func(t *testing.T, r rendered, ds *appsv1.DaemonSet) {
		install := container(t, ds, "install-cni")
		if !slices.Equal(install.Command, []string{images.BinDir + "/cairn-cni", "install"}) {
			t.Errorf("install-cni runs %v, want cairn-cni install", install.Command)
		}
		for flagName, hostDir := range map[string]string{"bin-dir": "/opt/cni/bin", "conf-dir": "/etc/cni/net.d"} {
			dir := flag(t, install, flagName)
			m := mountAt(install, dir)
			if m == nil || hostPathOf(ds, m.Name) != hostDir || m.ReadOnly {
				t.Errorf("--%s=%s is not the host's %s mounted writable", flagName, dir, hostDir)
			}
		}
		conf := mountAt(install, path.Dir(images.ConflistPath))
		if conf == nil {
			t.Fatalf("nothing mounted at %s", path.Dir(images.ConflistPath))
		}
		if v := volume(ds, conf.Name); v == nil || v.ConfigMap == nil {
			t.Errorf("%s is not a ConfigMap volume", path.Dir(images.ConflistPath))
		}
	})
}

func mountAt(c corev1.Container, p string) *corev1.VolumeMount {
	for i, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == path.Clean(p) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func volume(ds *appsv1.DaemonSet, name string) *corev1.Volume {
	for i, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &ds.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func hostPathOf(ds *appsv1.DaemonSet, name string) string {
	if v := volume(ds, name); v != nil && v.HostPath != nil {
		return v.HostPath.Path
	}
	return ""
}

// The ConfigMap holds deploy/node/10-cairn.conflist as it is, and that
// conflist names the socket the agent serves by default, which the
// DaemonSet shares with the host, where the runtime runs the plugin.
func TestConflistConfigMap(t *testing.T) {
	want := readFile(t, "deploy/node/10-cairn.conflist")
	name := filepath.Base(images.ConflistPath)
	eachInstallation(t, func(t *testing.T, r rendered, ds *appsv1.DaemonSet) {
		install := container(t, ds, "install-cni")
		v := volume(ds, mountAt(install, path.Dir(images.ConflistPath)).Name)
		cm := into[corev1.ConfigMap](t, r.find(t, "ConfigMap", v.ConfigMap.Name))
		if !strings.HasPrefix(cm.Name, "cairn-cni-config-") {
			t.Errorf("ConfigMap %s: want cairn-cni-config with a hash of its content, so a change rolls the DaemonSet", cm.Name)
		}
		if got := cm.Data[name]; got != want {
			t.Errorf("ConfigMap %s %s:\n%s\nwant deploy/node/10-cairn.conflist:\n%s", cm.Name, name, got, want)
		}
		var conf struct {
			Plugins []plugin `json:"plugins"`
		}
		if err := json.Unmarshal([]byte(want), &conf); err != nil {
			t.Fatalf("deploy/node/10-cairn.conflist: %v", err)
		}
		i := slices.IndexFunc(conf.Plugins, func(p plugin) bool { return p.Type == "cairn-cni" })
		if i < 0 || conf.Plugins[i].AgentSocket != agentv1.DefaultSocketPath {
			t.Fatalf("the conflist's cairn-cni agentSocket is not %s: %+v", agentv1.DefaultSocketPath, conf.Plugins)
		}
		sockDir := path.Dir(agentv1.DefaultSocketPath)
		m := mountAt(container(t, ds, "cairn-node"), sockDir)
		if m == nil || hostPathOf(ds, m.Name) != sockDir {
			t.Errorf("cairn-node does not serve its socket in the host's %s", sockDir)
		}
	})
}

// The conflist is one today's runtimes read, and hostPort works: version
// 1.0.0 (containerd 1.6's libcni refuses a 1.1.0 result; see
// deploy/node/kustomization.yaml), cairn-cni first, then portmap with the
// portMappings capability, without which the runtime passes it no ports.
func TestConflistRuntimesRead(t *testing.T) {
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type         string          `json:"type"`
			Capabilities map[string]bool `json:"capabilities"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(readFile(t, "deploy/node/10-cairn.conflist")), &conf); err != nil {
		t.Fatalf("deploy/node/10-cairn.conflist: %v", err)
	}
	if conf.CNIVersion != "1.0.0" {
		t.Errorf("cniVersion %q: containerd 1.6 reads results up to 1.0.0", conf.CNIVersion)
	}
	var types []string
	for _, p := range conf.Plugins {
		types = append(types, p.Type)
	}
	if !slices.Equal(types, []string{"cairn-cni", "portmap"}) {
		t.Fatalf("plugins %v, want [cairn-cni portmap]", types)
	}
	if !conf.Plugins[1].Capabilities["portMappings"] {
		t.Errorf("portmap without the portMappings capability: the runtime would pass it no hostPorts")
	}
}

// plugin is what the test reads of a conflist's plugin.
type plugin struct {
	Type        string `json:"type"`
	AgentSocket string `json:"agentSocket"`
}

// Probes reach the agent where it serves them, and the agent says what
// they check.
func TestProbes(t *testing.T) {
	eachInstallation(t, func(t *testing.T, _ rendered, ds *appsv1.DaemonSet) {
		node := container(t, ds, "cairn-node")
		host, port, err := net.SplitHostPort(flag(t, node, "health-addr"))
		if err != nil {
			t.Fatal(err)
		}
		for what, p := range map[string]*corev1.Probe{"/livez": node.LivenessProbe, "/readyz": node.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("no HTTP probe for %s", what)
				continue
			}
			g := p.HTTPGet
			if g.Path != what || g.Host != host || g.Port.String() != port {
				t.Errorf("%s probe asks %s:%s%s, the agent serves %s:%s%s", what, g.Host, g.Port.String(), g.Path, host, port, what)
			}
			if p.TimeoutSeconds < 5 {
				t.Errorf("%s probe times out after %ds: the agent's checks may take 4s", what, p.TimeoutSeconds)
			}
		}
	})
}

// Every node, whatever its taints; requests and a memory limit; one node
// at a time.
func TestSchedulingAndResources(t *testing.T) {
	eachInstallation(t, func(t *testing.T, _ rendered, ds *appsv1.DaemonSet) {
		spec := ds.Spec.Template.Spec
		if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
			return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
		}) {
			t.Errorf("tolerations %v: want one that tolerates every taint", spec.Tolerations)
		}
		for _, c := range allContainers(ds) {
			req, lim := c.Resources.Requests, c.Resources.Limits
			if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
				t.Errorf("%s: requests %v, limits %v; want cpu and memory requests and a memory limit", c.Name, req, lim)
			}
		}
		u := ds.Spec.UpdateStrategy
		if u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil || u.RollingUpdate.MaxUnavailable.IntValue() != 1 {
			t.Errorf("update strategy %+v: want a rolling update, one node at a time", u)
		}
	})
}
