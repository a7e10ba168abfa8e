// Package v1alpha1 holds the Cairn CRD types of API group cairn.dev: IP
// pools and the block allocator's state, BGP configuration, peers and
// filters, and the per-node status the agent writes. All kinds are
// cluster-scoped.
//
// +k8s:deepcopy-gen=package
// +groupName=cairn.dev
package v1alpha1
