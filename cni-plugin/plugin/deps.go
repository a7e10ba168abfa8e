package plugin

import (
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

// Dataplane is the kernel work the plugin needs; *netsetup.Kernel is the
// real one, tests use fakes.
type Dataplane interface {
	CheckPod(netnsPath, ifName string) error
	CreateVeth(netnsPath string, v netsetup.Veth) error
	ConfigurePod(netnsPath string, c netsetup.PodConfig) error
	DeleteHostVeth(name string) error
	DeletePodInterface(netnsPath, ifName string) error
	InspectPod(netnsPath, ifName string) (netsetup.PodState, error)
	InspectHost(name string) (netsetup.HostState, error)
	// UplinkMTU is the MTU pods get when the configuration sets none (see
	// netsetup.ChooseMTU); 0 leaves the kernel's default.
	UplinkMTU() (int, error)
}

// AgentDialer connects to the agent's socket. The closer releases the
// connection.
type AgentDialer func(socketPath string) (agentv1.AgentClient, io.Closer, error)

// DialAgent is the real AgentDialer: gRPC over the unix socket. It does not
// block; a missing or dead agent shows up as UNAVAILABLE on the first call,
// without retries or waiting for the socket (the runtime retries on code 11).
func DialAgent(socketPath string) (agentv1.AgentClient, io.Closer, error) {
	conn, err := grpc.NewClient("unix://"+socketPath,
		// A unix socket reachable only by root on the node: the file
		// permissions are the access control, as for the CRI socket.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to agent at %s: %w", socketPath, err)
	}
	return agentv1.NewAgentClient(conn), conn, nil
}
