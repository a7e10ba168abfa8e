package cli

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/cmd/cairnctl/internal/view"
	"github.com/cairn-net/cairn/ipam"
)

// routeExplain is "route explain PREFIX|ADDR|POD [--node NODE]".
func routeExplain(ctx context.Context, env Env, args []string) (int, error) {
	o, pos, err := parse("route explain", args, true)
	if err != nil {
		return ExitError, err
	}
	if len(pos) != 1 {
		return ExitError, fmt.Errorf("%w: route explain takes one PREFIX, address or pod", errUsage)
	}
	target, pod, err := resolveTarget(ctx, env, pos[0])
	if err != nil {
		return ExitError, err
	}
	var n view.Node
	if o.node == "" {
		n, err = agentNode(ctx, env, o.socket)
	} else {
		n, err = apiNode(ctx, env, o.node)
	}
	if err != nil {
		return ExitError, err
	}
	// Pools, blocks and pods say where the address belongs; without the
	// API server the explanation rests on the node's view alone.
	cluster, cerr := readCluster(ctx, env)
	e := view.Explain(n, cluster, target, pos[0], pod)
	if cerr != nil {
		e.Reasons = append(e.Reasons, fmt.Sprintf("(pool and block unknown: %v)", cerr))
	}
	if err := emit(env.Stdout, o.output, e, func() error { return view.PrintExplanation(env.Stdout, e) }); err != nil {
		return ExitError, err
	}
	if !e.Routed() {
		return ExitProblems, nil
	}
	return ExitOK, nil
}

// resolveTarget reads a prefix, an address or a pod ([NAMESPACE/]NAME,
// namespace "default" when left out) into the prefix to explain.
func resolveTarget(ctx context.Context, env Env, arg string) (netip.Prefix, string, error) {
	if p, err := netip.ParsePrefix(arg); err == nil {
		return p.Masked(), "", nil
	}
	if a, err := netip.ParseAddr(arg); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), "", nil
	}
	ns, name, ok := strings.Cut(arg, "/")
	if !ok {
		ns, name = "default", arg
	}
	cl, err := env.Kube()
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("%q is no prefix or address; to read it as a pod: %w", arg, err)
	}
	pod, err := cl.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return netip.Prefix{}, "", fmt.Errorf("%q is no prefix or address, and pod %s/%s: %w", arg, ns, name, errNotFound)
	}
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("read pod %s/%s: %w", ns, name, err)
	}
	a, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("pod %s/%s has no IP yet (phase %s)", ns, name, pod.Status.Phase)
	}
	return netip.PrefixFrom(a, a.BitLen()), ns + "/" + name, nil
}

// readCluster reads pools and blocks for Explain.
func readCluster(ctx context.Context, env Env) (view.Cluster, error) {
	pools, blocks, err := readIPAM(ctx, env)
	if err != nil {
		return view.Cluster{}, err
	}
	c := view.Cluster{Known: true}
	for _, p := range pools {
		if cidr, err := netip.ParsePrefix(p.Spec.CIDR); err == nil {
			c.Pools = append(c.Pools, view.Pool{Name: p.Name, CIDR: cidr.Masked()})
		}
	}
	for _, b := range blocks {
		cidr, err := ipam.BlockPrefix(b)
		if err != nil {
			continue
		}
		vb := view.Block{CIDR: cidr, Node: ipam.AffinityNode(b.Spec.Affinity)}
		for _, a := range b.Spec.Allocations {
			al := view.Allocation{Addr: ipam.AddrAt(cidr, int(a.Ordinal)), Node: a.Node}
			if a.Pod != "" {
				al.Pod = a.Namespace + "/" + a.Pod
			}
			vb.Allocations = append(vb.Allocations, al)
		}
		c.Blocks = append(c.Blocks, vb)
	}
	return c, nil
}
