package lab

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-net/cairn/internal/controlplane"
)

// Services in the lab whose pods are bare namespaces: Cairn makes Service
// addresses reachable, kube-proxy translates them to pod addresses, as in
// a cluster with kubelets. The control plane's namespace runs the real
// EndpointSlice controllers (kube-controller-manager), which read the Pod
// objects the lab writes (labels, nodeName, podIP, Ready); every node's
// namespace runs a real kube-proxy in nftables mode.
const (
	binKubeProxy  = "kube-proxy"
	binKubeCM     = "kube-controller-manager"
	procEndpoints = "endpoint-controllers"
	// kubeProxyHealthz is where each kube-proxy answers /healthz, on its
	// node's own loopback.
	kubeProxyHealthz = "127.0.0.1:10256"
)

// endpointControllers are the only controllers run: the lab's nodes have
// no kubelet, so the node lifecycle controller would mark them NotReady
// after its grace period, then their pods not ready (emptying every
// EndpointSlice) and evict them. Garbage collection removes a deleted
// Service's EndpointSlices, which it owns.
var endpointControllers = []string{
	"endpointslice-controller",
	"endpointslice-mirroring-controller",
	"garbage-collector-controller",
}

// serviceBinaries finds kube-controller-manager and kube-proxy beside the
// pinned kube-apiserver; ok is false when they have not been built.
func serviceBinaries() (kcm, proxy string, ok bool, err error) {
	dir, err := controlplane.BinDir()
	if err != nil {
		return "", "", false, err
	}
	kcm, proxy = filepath.Join(dir, binKubeCM), filepath.Join(dir, binKubeProxy)
	return kcm, proxy, isExecutable(kcm) && isExecutable(proxy), nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// upServices starts the EndpointSlice controllers and a kube-proxy on
// every node, and waits until each kube-proxy has programmed its first
// rules. Without the binaries (`make controlplane` builds them) the lab
// still routes pods; it says so and serves no Service.
func (l *Lab) upServices(ctx context.Context) error {
	kcm, proxy, ok, err := serviceBinaries()
	if err != nil {
		return err
	}
	if !ok {
		l.logf("no %s or %s beside kube-apiserver (run `make controlplane`): this lab serves no Service", binKubeCM, binKubeProxy)
		return nil
	}
	// Real nodes' control plane runs a whole kube-controller-manager,
	// EndpointSlice controllers included.
	if !l.st.Kubelet {
		p, err := startEndpointControllers(l.st, kcm)
		if err != nil {
			return err
		}
		if err := l.st.addProc(p); err != nil {
			return err
		}
	}
	for _, n := range l.st.Plan.Nodes() {
		p, err := startKubeProxy(l.st, n, proxy)
		if err != nil {
			return err
		}
		if err := l.st.addProc(p); err != nil {
			return err
		}
	}
	for _, n := range l.st.Plan.Nodes() {
		if err := l.waitKubeProxyReady(ctx, n); err != nil {
			return err
		}
	}
	l.logf("kube-proxy (nftables) on %d nodes, EndpointSlice controllers in %s", len(l.st.Plan.Nodes()), l.st.Plan.ControlPlane.NS)
	return nil
}

// startEndpointControllers runs kube-controller-manager with only
// endpointControllers, in the control plane's namespace. It serves
// nothing (no port, so no self-signed certificate written anywhere) and
// elects nothing: there is one.
func startEndpointControllers(st *State, bin string) (Proc, error) {
	argv := []string{
		bin,
		"--kubeconfig=" + st.ControlPlane.Kubeconfig,
		"--controllers=" + strings.Join(endpointControllers, ","),
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--v=0",
	}
	log := filepath.Join(st.ControlPlane.Dir, procEndpoints+".log")
	return startDetached(st.Plan.ControlPlane.NS, procEndpoints, log, argv, nil)
}

// kubeProxyArgs are kube-proxy's flags on node n. Every setting that
// would reach beyond the node's network namespace is left as it is:
// nf_conntrack_max and the conntrack hash size are host-wide (max-per-core
// 0 leaves both alone); the TCP timeouts are left too, and the process's
// own OOM score is not lowered. nftables mode sets no route_localnet.
func kubeProxyArgs(n Node, bin, kubeconfig string) []string {
	return []string{
		bin,
		"--kubeconfig=" + kubeconfig,
		"--hostname-override=" + n.Name,
		"--proxy-mode=nftables",
		// Traffic from pods is not masqueraded on its way to a Service;
		// traffic from outside the pool (nodes, outside1) is, unless the
		// Service keeps the client's address (externalTrafficPolicy
		// Local).
		"--cluster-cidr=" + PoolCIDR,
		"--healthz-bind-address=" + kubeProxyHealthz,
		"--metrics-bind-address=127.0.0.1:10249",
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
		"--oom-score-adj=0",
		"--v=0",
	}
}

// startKubeProxy starts kube-proxy in node n's namespace, detached.
func startKubeProxy(st *State, n Node, bin string) (Proc, error) {
	kubeconfig, err := writeNodeKubeconfig(st, n.Name)
	if err != nil {
		return Proc{}, err
	}
	log := filepath.Join(nodeDir(st.Dir, n.Name), binKubeProxy+".log")
	return startDetached(n.NS, binKubeProxy+"-"+n.Name, log, kubeProxyArgs(n, bin, kubeconfig), nil)
}

// waitKubeProxyReady waits until kube-proxy on n answers /healthz with
// 200, which it does once it has written its rules for the Services and
// EndpointSlices it knows.
func (l *Lab) waitKubeProxyReady(ctx context.Context, n Node) error {
	client := &http.Client{Transport: &http.Transport{DialContext: dialInNS(n.NS)}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	url := "http://" + kubeProxyHealthz + "/healthz"
	return until(ctx, 60*time.Second, 100*time.Millisecond, "kube-proxy on "+n.Name+" to be healthy", func(ctx context.Context) (bool, error) {
		for _, p := range l.st.Procs {
			if p.Name == binKubeProxy+"-"+n.Name && !p.Alive() {
				return false, stopWaiting(fmt.Errorf("kube-proxy on %s exited; log tail:\n%s", n.Name, tail(p.Log, 30)))
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, stopWaiting(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("kube-proxy on %s: /healthz says %s", n.Name, resp.Status)
		}
		return true, nil
	})
}

// kubeProxyState describes kube-proxy on n for Status.
func (l *Lab) kubeProxyState(n Node) string {
	for _, p := range l.st.Procs {
		if p.Name == binKubeProxy+"-"+n.Name {
			if p.Alive() {
				return fmt.Sprintf("running (pid %d)", p.PID)
			}
			return "exited (log " + p.Log + ")"
		}
	}
	return "not started"
}

// ServiceBinariesBuilt says whether kube-proxy and kube-controller-manager
// are built beside the pinned kube-apiserver, without which a lab serves
// no Service (see upServices).
func ServiceBinariesBuilt() error {
	_, _, ok, err := serviceBinaries()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s and %s are not built: run `make controlplane`", binKubeCM, binKubeProxy)
	}
	return nil
}
