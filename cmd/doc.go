// Package cmd holds Cairn's binaries, one folder each: cairn-node (the
// per-node agent), cairn-cni (the CNI plugin), cairnctl (the operator CLI)
// and cairn-lab (a multi-node lab in network namespaces). Each main only
// wires flags, logging and signals to the packages that do the work.
package cmd
