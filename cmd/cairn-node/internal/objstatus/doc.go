// Package objstatus writes the status of the objects users write
// (BGPPeer, BGPConfiguration, BGPFilter, IPPool) and raises Events on
// their notable transitions: a BGP authentication failure, a session shut
// for maximum prefixes, a pool exhausted.
//
// It is built to stay cheap on a thousand nodes. Each agent reports only
// its own facts, in its CairnNodeStatus; one controller in the cluster, the
// holder of a Lease, gathers them into the shared objects. It watches the
// CairnNodeStatuses only while it leads, keeping of each only its
// sessions, indexed by BGPPeer; a node's periodic rewrite that changes no
// session wakes nothing. Keys wait BatchDelay in the queue, so a burst of
// changes (a peer flapping on every node) is one recomputation and at most
// one write per object per BatchDelay, and a status is written only when
// it differs from the object's. Events come from the same single writer,
// at most one per object and reason every EventInterval, whatever the
// number of nodes; the suppressed ones are counted in metrics and in the
// next Event's message.
//
// The decisions are pure functions elsewhere: bgp/bgpstatus (BGP objects,
// session Events) and ipam/usage (IPPool).
package objstatus
