// Package netsetup owns the kernel side of a pod attachment: the veth pair
// (host end created directly in the host namespace, pod end created directly
// in the pod's namespace, so nothing is moved between namespaces), the pod
// side's address, gateway routes and permanent gateway neighbour, and
// reading all of that back for CHECK. It knows nothing of the agent or of
// CNI results; sysctls belong to the node agent.
package netsetup
