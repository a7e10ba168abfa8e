// Package plugin is the Cairn CNI plugin's logic for CNI 1.1 (ADD, DEL,
// CHECK, GC, STATUS): it validates what the runtime passes, asks the node
// agent for addresses over gRPC, wires the pod through netsetup, rolls back
// every step of a failed ADD, and answers with CNI results or CNI errors
// carrying the right codes. It keeps no state of its own: the agent's
// records, keyed by container ID and interface, are the state.
package plugin
