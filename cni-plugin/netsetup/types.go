package netsetup

import (
	"errors"
	"net"
)

// Errors callers branch on.
var (
	// ErrNetnsNotFound: the netns path does not exist (any more).
	ErrNetnsNotFound = errors.New("network namespace not found")
	// ErrHostNetns: the "pod" namespace is the host's own.
	ErrHostNetns = errors.New("netns is the host's own network namespace")
	// ErrInterfaceExists: the pod already has an interface of that name.
	ErrInterfaceExists = errors.New("interface already exists in the container")
	// ErrLinkNotFound: the interface to inspect does not exist.
	ErrLinkNotFound = errors.New("interface not found")
)

// Veth describes the pair to create.
type Veth struct {
	HostName  string
	HostMAC   net.HardwareAddr
	PodIfName string
	PodMAC    net.HardwareAddr
	// MTU of both ends; 0 keeps the kernel's default.
	MTU int
}

// PodConfig is the pod side's desired layer-3 setup.
type PodConfig struct {
	IfName string
	// Addresses carry full-length masks (/32, /128).
	Addresses []*net.IPNet
	// Gateways holds one address per family in use (169.254.1.1, fe80::1).
	Gateways []net.IP
	// GatewayMAC is the host veth's MAC, for the permanent neighbour entry.
	GatewayMAC net.HardwareAddr
}

// Route is a route as read back from the pod's namespace.
type Route struct {
	Dst       *net.IPNet // never nil: 0.0.0.0/0 or ::/0 for a default route
	Gw        net.IP
	LinkScope bool
}

// Neighbor is a neighbour entry as read back from the pod's namespace.
type Neighbor struct {
	IP        net.IP
	MAC       net.HardwareAddr
	Permanent bool
}

// PodState is what the pod's interface looks like in the kernel.
type PodState struct {
	Index  int
	Up     bool
	IsVeth bool
	MAC    net.HardwareAddr
	MTU    int
	// Addresses lists the global-scope addresses (link-local ones are the
	// kernel's own business).
	Addresses []*net.IPNet
	Routes    []Route
	Neighbors []Neighbor
}

// HostState is what a host veth looks like in the kernel.
type HostState struct {
	Index  int
	Up     bool
	IsVeth bool
	MAC    net.HardwareAddr
	MTU    int
	// PeerIndex is the pod end's ifindex in the pod's namespace.
	PeerIndex int
}
