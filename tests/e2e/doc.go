// Package e2e holds Cairn's end-to-end tests: a lab (internal/lab) with real
// etcd and kube-apiserver, real cairn-node agents, pods created through the
// real cairn-cni binary and real BIRD or FRR routers, checked with real
// traffic. They need root, the pinned control-plane binaries and the
// router packages; without them they skip locally and fail under CI.
// CAIRN_E2E_INSTANCE_SUFFIX=2 names every lab they make apart (cl-e2esvc2-...),
// for a second run of them on the same machine.
package e2e
