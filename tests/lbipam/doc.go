// Package lbipam tests LoadBalancer address management against a real
// etcd and kube-apiserver (Cairn's CRDs and policies installed): 50
// Services created at once get 50 distinct addresses of the LoadBalancer
// pool and none of the pod pool's; an address asked for that another
// Service holds gets a Warning Event and no duplicate, then the address
// once it is free; a Service that stops being of type LoadBalancer gives
// its address back; the leader changes (two candidates, one Lease) and
// duplicates written by hand meanwhile are resolved; after every Service
// is deleted, new ones take every address of the pool again and one more
// is told the pool is full. Time for the 50 to get their addresses is
// logged.
//
//	go test -count=1 -v ./tests/lbipam/
package lbipam
