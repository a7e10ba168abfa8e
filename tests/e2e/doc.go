// Package e2e holds Cairn's end-to-end tests: a lab (internal/lab) with real
// etcd and kube-apiserver, real cairn-node agents, pods created through the
// real cairn-cni binary and real BIRD or FRR routers, checked with real
// traffic. They need root, the pinned control-plane binaries and the
// router packages; without them they skip locally and fail under CI.
package e2e
