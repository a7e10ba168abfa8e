package plugin

import (
	"fmt"
	"net"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cni-plugin/netconf"
)

// gateway is the pod's gateway for f: a link-local address the host veth
// answers for through the pod's permanent neighbour entry, so the pod needs
// no routable gateway.
func gateway(f netconf.Family) net.IP {
	if f == netconf.IPv6 {
		return net.ParseIP("fe80::1")
	}
	return net.IPv4(169, 254, 1, 1).To4()
}

// allocation is a validated Allocate reply: one host-prefix address and one
// gateway per requested family, in the netconf's family order.
type allocation struct {
	addresses []*net.IPNet
	gateways  []net.IP
}

func familyOf(ip net.IP) netconf.Family {
	if ip.To4() != nil {
		return netconf.IPv4
	}
	return netconf.IPv6
}

func apiFamily(f netconf.Family) agentv1.IPFamily {
	if f == netconf.IPv6 {
		return agentv1.IPFamily_IP_FAMILY_V6
	}
	return agentv1.IPFamily_IP_FAMILY_V4
}

func apiFamilies(fs []netconf.Family) []agentv1.IPFamily {
	out := make([]agentv1.IPFamily, 0, len(fs))
	for _, f := range fs {
		out = append(out, apiFamily(f))
	}
	return out
}

// parseAllocation checks the agent's reply against what was asked for.
func parseAllocation(resp *agentv1.AllocateResponse, families []netconf.Family) (*allocation, error) {
	byFamily := map[netconf.Family]*net.IPNet{}
	for _, s := range resp.GetAddresses() {
		ip, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", s, errInvalidAgentReply)
		}
		ones, bits := ipnet.Mask.Size()
		if ones != bits {
			return nil, fmt.Errorf("address %q is not a /32 or /128: %w", s, errInvalidAgentReply)
		}
		f := familyOf(ip)
		if byFamily[f] != nil {
			return nil, fmt.Errorf("two %s addresses: %w", f, errInvalidAgentReply)
		}
		if f == netconf.IPv4 {
			ip = ip.To4()
		}
		byFamily[f] = &net.IPNet{IP: ip, Mask: ipnet.Mask}
	}
	if len(byFamily) != len(resp.GetAddresses()) || len(byFamily) != len(families) {
		return nil, fmt.Errorf("got %d addresses for %d families: %w", len(resp.GetAddresses()), len(families), errInvalidAgentReply)
	}
	alloc := &allocation{}
	for _, f := range families {
		addr := byFamily[f]
		if addr == nil {
			return nil, fmt.Errorf("no %s address: %w", f, errInvalidAgentReply)
		}
		alloc.addresses = append(alloc.addresses, addr)
		alloc.gateways = append(alloc.gateways, gateway(f))
	}
	return alloc, nil
}
