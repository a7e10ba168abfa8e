// Package agentapi holds the gRPC API (package cairn.agent.v1) between the
// Cairn CNI plugin and the node agent: agent.proto, the Go generated from it
// by generate.sh, and the constants both sides agree on.
package agentapi

//go:generate ./generate.sh

// DefaultSocketPath is where the node agent serves the Agent service unless
// the CNI netconf names another path in "agentSocket".
const DefaultSocketPath = "/var/run/cairn/agent.sock"
