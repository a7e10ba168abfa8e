package peering

import (
	"net/netip"
	"reflect"
	"testing"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

func TestServiceAdvertisements(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	cfg := &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{
		ServiceClusterIPs:      []v1.ServiceIPBlock{{CIDR: "10.96.0.0/16"}, {CIDR: "fd00:96::/112"}},
		ServiceExternalIPs:     []v1.ServiceIPBlock{{CIDR: "192.0.2.0/24"}},
		ServiceLoadBalancerIPs: []v1.ServiceIPBlock{{CIDR: "198.51.100.0/24"}, {CIDR: "2001:db8:1b::/64"}},
	}}
	ranges := []string{"10.96.0.0/16", "fd00:96::/112"}
	for _, tc := range []struct {
		name     string
		cfg      *v1.BGPConfiguration
		services []Service
		want     []string
	}{
		{name: "no configuration: nothing", cfg: nil, services: []Service{{ClusterIPs: addrs("10.96.0.10"), ExternalIPs: addrs("192.0.2.1")}}},
		{name: "cluster ranges from every node; a Cluster service adds nothing", cfg: cfg,
			services: []Service{{ClusterIPs: addrs("10.96.0.10"), LocalEndpoint: true}}, want: ranges},
		{name: "internalTrafficPolicy Local: the cluster IP from a node with a local endpoint", cfg: cfg,
			services: []Service{{ClusterIPs: addrs("10.96.0.10", "fd00:96::10"), InternalLocal: true, LocalEndpoint: true}},
			want:     append([]string{"10.96.0.10/32", "fd00:96::10/128"}, ranges...)},
		{name: "internalTrafficPolicy Local: not from a node without one", cfg: cfg,
			services: []Service{{ClusterIPs: addrs("10.96.0.10"), InternalLocal: true}}, want: ranges},
		{name: "externalTrafficPolicy Local: the cluster IP too", cfg: cfg,
			services: []Service{{ClusterIPs: addrs("10.96.0.10"), ExternalLocal: true, LocalEndpoint: true}},
			want:     append([]string{"10.96.0.10/32"}, ranges...)},
		{name: "a Local cluster IP outside the ranges: nothing", cfg: cfg,
			services: []Service{{ClusterIPs: addrs("10.97.0.10"), InternalLocal: true, LocalEndpoint: true}}, want: ranges},
		{name: "external IP of a Cluster service: from every node", cfg: cfg,
			services: []Service{{ExternalIPs: addrs("192.0.2.7")}}, want: append([]string{"192.0.2.7/32"}, ranges...)},
		{name: "external IP outside serviceExternalIPs: never", cfg: cfg,
			services: []Service{{ExternalIPs: addrs("203.0.113.7", "198.51.100.7"), LocalEndpoint: true}}, want: ranges},
		{name: "LoadBalancer IP, Local, endpoint here", cfg: cfg,
			services: []Service{{LoadBalancerIPs: addrs("198.51.100.9", "2001:db8:1b::9"), ExternalIPs: addrs("192.0.2.9"), ExternalLocal: true, LocalEndpoint: true}},
			want:     append([]string{"192.0.2.9/32", "198.51.100.9/32", "2001:db8:1b::9/128"}, ranges...)},
		{name: "LoadBalancer IP, Local, no endpoint here: withdrawn", cfg: cfg,
			services: []Service{{LoadBalancerIPs: addrs("198.51.100.9"), ExternalIPs: addrs("192.0.2.9"), ExternalLocal: true}}, want: ranges},
		{name: "LoadBalancer IP in the external range only: never", cfg: cfg,
			services: []Service{{LoadBalancerIPs: addrs("192.0.2.10")}}, want: ranges},
		{name: "external and LoadBalancer ranges alone are not announced",
			cfg: &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{ServiceExternalIPs: cfg.Spec.ServiceExternalIPs, ServiceLoadBalancerIPs: cfg.Spec.ServiceLoadBalancerIPs}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := Advertisements(ExportInput{Config: tc.cfg, Services: tc.services})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			var prefixes []string
			for _, a := range got {
				prefixes = append(prefixes, a.Prefix.String())
			}
			want := tc.want
			sortPrefixStrings(want)
			if !reflect.DeepEqual(prefixes, want) {
				t.Errorf("announced %v, want %v", prefixes, want)
			}
		})
	}
}

func sortPrefixStrings(ps []string) {
	for i := range ps {
		for j := i + 1; j < len(ps); j++ {
			if netip.MustParsePrefix(ps[j]).Compare(netip.MustParsePrefix(ps[i])) < 0 {
				ps[i], ps[j] = ps[j], ps[i]
			}
		}
	}
}
