// Package lab builds a Cairn cluster on one Linux machine out of network
// namespaces, and tears it down again: a control-plane host (real etcd and
// kube-apiserver, and the EndpointSlice controllers of
// kube-controller-manager), top-of-rack routers (BIRD, FRR or gobgpd) and
// optionally a spine, node hosts running cairn-node and kube-proxy, pods
// created through the real cairn-cni binary exactly as a container runtime
// would run it, and outside1, a client of the data-centre network outside
// the cluster. With Options.Kubelet the nodes are real instead: containerd
// and a kubelet each, in a private mount namespace and a cgroup of their
// own (nodehost.go, kubelet.go, cgroup.go), Cairn installed from
// deploy/overlays/lab, and pods started by the kubelets (README.md).
//
// The package owns:
//   - the topology plan (plan.go): a pure function from options to
//     namespaces, links, addresses, AS numbers and BGP sessions;
//   - router configurations (bird.go, frr.go, gobgpd.go), rendered from
//     the plan, and for gobgpd, which programs no kernel, the helper that
//     installs its routes in the ToR's kernel (gobgpfib.go);
//   - the lifecycle: Up, Open, Down, with every namespace and process
//     recorded in a JSON state file before it is created, so Down works
//     from a fresh process and after any failure;
//   - the probes the demo and the end-to-end tests use (probe.go, echo.go);
//   - a misbehaving ToR for tests: routes a BIRD ToR originates towards
//     its nodes whatever its filters say (inject.go, SetInjectedRoutes).
//
// Dual-stack (Options.DualStack, `cairn-lab up --dual-stack`, fast mode
// only; dualstack.go, routers6.go): every link also gets an IPv6 address
// in LabCIDR6 (172.30.C.D becomes fd30:0:0:C::D; Node.Addr6, Gateway6,
// RouterPlan.Addr6), PoolCIDR6 is a second IPPool, every pod gets an
// address of each family (Pod.IPs, Pod.Addrs; Pod.IP stays the IPv4 one),
// and every BGP session has an IPv6 twin between the same speakers (in
// RouterPlan.Peers after its IPv4 one; BIRD names it "<peer>_v6"). For an
// IPv6 row in a test: lab.ProbeAddr to a pod's IPv6 address,
// Plan.NextHopFor, KernelRoutes6, RouterRoutes (IPv6 routes included).
// The nodes' agents switch IPv6 forwarding on themselves (an IPv6 pool
// serves them); the lab does so only on its routers. With racks, each ToR
// sends its nodes both pools as covering routes (RouterPlan.AnnouncePool):
// nodes refuse another rack's blocks from the ToR (owner-only imports).
// WaitConverged's error ends with RoutingReport, each node's routes into
// the pools and the learned routes it refused, with the reason.
//
// Nothing the lab creates is linked to the root network namespace, and no
// route leads out of the lab: every address lives in 172.30.0.0/16 (the
// lab's links; fd30::/48 when dual-stack), the pod pools or the service
// ranges, inside namespaces
// named with the "cl-" prefix. Clients in the lab's own process reach the
// API server by dialing from inside the control-plane namespace (see
// controlplane.go).
package lab
