// Package peering decides, as pure functions of the cluster's objects, what
// one node's BGP speaker does: which peers it has (node mesh, BGPPeers to
// routers, route-reflector topologies), what it announces (owned blocks,
// borrowed addresses, service ranges) and which learned prefixes it accepts
// (those inside IP pools). It holds no client and no state.
package peering
