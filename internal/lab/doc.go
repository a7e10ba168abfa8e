// Package lab builds a Cairn cluster on one Linux machine out of network
// namespaces, and tears it down again: a control-plane host (real etcd and
// kube-apiserver, and the EndpointSlice controllers of
// kube-controller-manager), top-of-rack routers (BIRD or FRR) and
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
//   - router configurations (bird.go, frr.go), rendered from the plan;
//   - the lifecycle: Up, Open, Down, with every namespace and process
//     recorded in a JSON state file before it is created, so Down works
//     from a fresh process and after any failure;
//   - the probes the demo and the end-to-end tests use (probe.go, echo.go).
//
// Nothing the lab creates is linked to the root network namespace, and no
// route leads out of the lab: every address lives in 172.30.0.0/16 (the
// lab's links), the pod pool or the service ranges, inside namespaces
// named with the "cl-" prefix. Clients in the lab's own process reach the
// API server by dialing from inside the control-plane namespace (see
// controlplane.go).
package lab
