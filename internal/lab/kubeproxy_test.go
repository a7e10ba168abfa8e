package lab

import (
	"slices"
	"strings"
	"testing"
)

// kube-proxy runs inside a node's namespace but some of what it sets by
// default is the whole machine's: every such flag is set to leave it be.
func TestKubeProxyLeavesTheHostAlone(t *testing.T) {
	n := Node{Name: "node2"}
	args := kubeProxyArgs(n, "/bin/kube-proxy", "/lab/nodes/node2/kubeconfig")
	for _, want := range []string{
		"--conntrack-max-per-core=0",            // nf_conntrack_max and the hash size are host-wide
		"--conntrack-tcp-timeout-established=0", // leave conntrack timeouts as they are
		"--conntrack-tcp-timeout-close-wait=0",
		"--oom-score-adj=0",
		"--proxy-mode=nftables",
		"--hostname-override=node2",
		"--cluster-cidr=" + PoolCIDR,
		"--healthz-bind-address=127.0.0.1:10256",
		"--metrics-bind-address=127.0.0.1:10249",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("kube-proxy args lack %s: %v", want, args)
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--conntrack-tcp-be-liberal") || strings.HasPrefix(a, "--conntrack-udp-timeout") {
			t.Errorf("kube-proxy is told to write a conntrack setting: %s", a)
		}
	}
}

// Only the controllers that need no kubelet run: the node lifecycle
// controller would mark the lab's nodes NotReady and empty every
// EndpointSlice.
func TestEndpointControllersOnly(t *testing.T) {
	for _, c := range endpointControllers {
		if !strings.HasPrefix(c, "endpointslice") && c != "garbage-collector-controller" {
			t.Errorf("controller %s runs in a lab without kubelets", c)
		}
	}
	if !slices.Contains(endpointControllers, "endpointslice-controller") {
		t.Errorf("no EndpointSlice controller in %v", endpointControllers)
	}
}
