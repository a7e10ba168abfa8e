// Package ipam tests Cairn's address management against a real etcd and
// kube-apiserver: the store contract, three nodes allocating and releasing
// concurrently in a pool small enough to force claims and borrowing,
// allocators killed mid-burst followed by garbage collection, leader
// election, and (as a benchmark) a 100-pod burst on one node.
package ipam
