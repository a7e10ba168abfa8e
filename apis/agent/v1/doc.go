// Package agentv1 holds the node agent's gRPC API (proto package
// cairn.agent.v1): agent.proto, the Go generated from it by generate.sh,
// and the constants every party agrees on. The CNI plugin is its client,
// cairn-node serves it, and cairnctl may call it on a node.
package agentv1

//go:generate ./generate.sh

// DefaultSocketPath is where the node agent serves the Agent service: the
// default of cairn-node's --agent-socket flag and of the plugin's netconf
// "agentSocket".
const DefaultSocketPath = "/var/run/cairn/agent.sock"
