package plugin

import (
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

// Indexes of the two interfaces in every result Cairn returns.
const (
	hostIfaceIndex = 0
	podIfaceIndex  = 1
)

// scopeLink is RT_SCOPE_LINK, as CNI 1.1 results carry it.
const scopeLink = 253

// buildResult describes what ADD made: the host veth, the pod interface,
// the addresses on it, and the gateway link route and default route per
// family. DNS only when the netconf configures it.
func buildResult(r *request, alloc *allocation, podMAC net.HardwareAddr) *current.Result {
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			hostIfaceIndex: {Name: r.hostVeth, Mac: netsetup.HostMAC().String(), Mtu: r.cfg.MTU},
			podIfaceIndex:  {Name: r.ifName, Mac: podMAC.String(), Mtu: r.cfg.MTU, Sandbox: r.netns},
		},
		DNS: r.cfg.DNS,
	}
	for i, addr := range alloc.addresses {
		gw := alloc.gateways[i]
		res.IPs = append(res.IPs, &current.IPConfig{Interface: current.Int(podIfaceIndex), Address: *addr, Gateway: gw})
		bits := len(gw) * 8
		gwRoute := &types.Route{Dst: net.IPNet{IP: gw, Mask: net.CIDRMask(bits, bits)}}
		if bits == 32 {
			// IPv6 routes carry no scope in the kernel, so only v4 says so.
			scope := scopeLink
			gwRoute.Scope = &scope
		}
		res.Routes = append(res.Routes, gwRoute,
			&types.Route{Dst: net.IPNet{IP: make(net.IP, len(gw)), Mask: net.CIDRMask(0, bits)}, GW: gw},
		)
	}
	return res
}

func cidrStrings(addrs []*net.IPNet) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

func ipStrings(res *current.Result) []string {
	out := make([]string, 0, len(res.IPs))
	for _, ip := range res.IPs {
		out = append(out, ip.Address.String())
	}
	return out
}
