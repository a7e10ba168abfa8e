// Package netconf owns what the plugin reads from its runtime: the network
// configuration on stdin and the Kubernetes keys in CNI_ARGS. It parses and
// validates them into a Config and a PodInfo, and names the bad field when
// it refuses one. It does no I/O.
package netconf
