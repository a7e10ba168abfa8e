// Package ipam tests Cairn's address management against a real etcd and
// kube-apiserver: the store contract, three nodes allocating and releasing
// concurrently in a pool small enough to force claims and borrowing,
// allocators killed mid-burst followed by garbage collection, a storm at
// twice the stress's nodes and pool in which every node's agent is killed
// at random writes and restarted while the garbage collector runs, then
// settled by it (0 duplicates, 0 leaks), leader election, and (as a
// benchmark) a 100-pod burst on one node.
//
// The storm runs short in CI (4,800 operations); its full size (19,200,
// twice the stress's operations too) runs with -ipam.storm=long, which
// needs a longer go test timeout:
//
//	go test -count=1 -timeout 60m -v -run 'TestIPAMOnAPIServer/storm' ./tests/ipam/ -ipam.storm=long
package ipam
