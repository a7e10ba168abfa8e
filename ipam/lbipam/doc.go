// Package lbipam gives Services of type LoadBalancer their addresses from
// the IP pools marked for that use (allowedUses: [LoadBalancer]), writes
// them to status.loadBalancer.ingress, and takes them back when a Service
// goes or stops being of type LoadBalancer. It serves Services without a
// loadBalancerClass and those of class cairn.dev/bgp; a Service asks for
// particular addresses with spec.loadBalancerIP or the
// cairn.dev/loadBalancerIPs annotation. It owns nothing else: the agent
// announces the addresses (bgp/peering), kube-proxy serves them.
//
// One controller runs in the cluster, the holder of a Lease (the agent
// campaigns for it as for the IPAM GC's); it watches Services only while
// it leads.
//
// # Where the allocations live
//
// The Services' own statuses are the only record; there is no allocation
// object. At the start of every term the leader lists the Services afresh
// and rebuilds its table of who holds what from their statuses (Rebuild),
// then keeps the table itself: an address is reserved in it before the
// status write that hands it out and freed only after the write that takes
// it back succeeded (or the Service is gone). The reasons:
//
//   - The status is what is announced over BGP and served by kube-proxy.
//     A separate record could disagree with it (say an address is free
//     while a Service still carries it, after a crash between the two
//     writes) and would need repairs and a collector of its own; a record
//     rebuilt from the statuses cannot disagree with them.
//   - A leader change cannot lose an allocation: the new leader's list is
//     taken after it holds the Lease, so after the old leader stopped
//     writing (client-go stops a leader that cannot renew before its Lease
//     can be taken over), and it sees every address handed out.
//   - Duplicates that still reach the statuses (a write the old leader sent
//     just before losing the Lease, or a hand-edited status) are resolved
//     deterministically, never kept: of two Services carrying one address,
//     another controller's Service keeps it (Cairn cannot take it back),
//     then the older Service (by creation time, then namespace/name); the
//     other is given a new address and an Event (LoadBalancerIPConflict).
//     A status address nobody else holds is adopted as it is, so such a
//     write costs no renumbering.
//   - Writes are conditional on the resourceVersion the decision was made
//     on, so a decision on a stale cache costs a retry, never an address
//     the table does not know of.
//
// Addresses that cannot be given (a requested one taken by another
// Service, outside every LoadBalancer pool, or in a disabled pool; pools
// full) are reported as Events on the Service and the Service gets no
// address for them, never one that is in use.
package lbipam
