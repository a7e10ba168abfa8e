// Package bgpstatus computes the status of the BGP objects users write
// (BGPPeer, BGPConfiguration, BGPFilter) from what the nodes report in
// their CairnNodeStatus and from the objects themselves, and the Events
// their transitions deserve. Pure functions of their inputs: the
// controller that reads the caches and writes the statuses is in
// cmd/cairn-node.
package bgpstatus
