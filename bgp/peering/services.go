package peering

import (
	"fmt"
	"net/netip"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// Service is what deciding which of a Service's addresses a node announces
// needs; the agent reads it from the Service and its EndpointSlices.
type Service struct {
	// Name is namespace/name, for logs.
	Name            string
	ClusterIPs      []netip.Addr
	ExternalIPs     []netip.Addr
	LoadBalancerIPs []netip.Addr
	// ExternalLocal is externalTrafficPolicy: Local, InternalLocal is
	// internalTrafficPolicy: Local.
	ExternalLocal, InternalLocal bool
	// LocalEndpoint says a ready endpoint of the Service runs on this node
	// (an EndpointSlice endpoint with this node's nodeName), as kube-proxy
	// decides it.
	LocalEndpoint bool
}

// serviceRanges are the BGPConfiguration's service ranges, parsed; bad
// entries and default routes are reported and skipped.
type serviceRanges struct {
	clusterIPs, externalIPs, loadBalancerIPs []netip.Prefix
}

func parseServiceRanges(cfg *v1.BGPConfiguration) (serviceRanges, []error) {
	var r serviceRanges
	if cfg == nil {
		return r, nil
	}
	var errs []error
	parse := func(blocks []v1.ServiceIPBlock) []netip.Prefix {
		var out []netip.Prefix
		for _, b := range blocks {
			p, err := netip.ParsePrefix(b.CIDR)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("service range %q: %w", b.CIDR, err))
			case p.Bits() == 0:
				errs = append(errs, fmt.Errorf("service range %s: a default route is never announced", p))
			default:
				out = append(out, p.Masked())
			}
		}
		return out
	}
	r.clusterIPs = parse(cfg.Spec.ServiceClusterIPs)
	r.externalIPs = parse(cfg.Spec.ServiceExternalIPs)
	r.loadBalancerIPs = parse(cfg.Spec.ServiceLoadBalancerIPs)
	return r, errs
}

// serviceAdvertisements adds to set what the node announces for Services:
//   - every serviceClusterIPs range, from every node (the routers spread
//     traffic over the nodes with ECMP; kube-proxy on each forwards it);
//   - the /32 (/128) of a cluster IP inside those ranges whose Service has
//     a Local traffic policy, only from nodes with a ready local endpoint;
//   - the /32 (/128) of each external IP inside serviceExternalIPs and of
//     each LoadBalancer ingress IP inside serviceLoadBalancerIPs: from
//     every node, or for externalTrafficPolicy: Local only from nodes with
//     a ready local endpoint, so the client's address is kept.
//
// An address outside the configured ranges is never announced, whatever a
// Service says.
func serviceAdvertisements(set map[netip.Prefix]bool, r serviceRanges, services []Service) {
	for _, p := range r.clusterIPs {
		set[p] = true
	}
	host := func(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()) }
	for _, s := range services {
		if (s.ExternalLocal || s.InternalLocal) && s.LocalEndpoint {
			for _, a := range s.ClusterIPs {
				if containsAddr(r.clusterIPs, a) {
					set[host(a)] = true
				}
			}
		}
		if s.ExternalLocal && !s.LocalEndpoint {
			continue
		}
		for _, a := range s.ExternalIPs {
			if containsAddr(r.externalIPs, a) {
				set[host(a)] = true
			}
		}
		for _, a := range s.LoadBalancerIPs {
			if containsAddr(r.loadBalancerIPs, a) {
				set[host(a)] = true
			}
		}
	}
}

func containsAddr(ranges []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
