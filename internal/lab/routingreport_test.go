package lab

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// The report a convergence timeout ends with names, per node, its routes
// into the pools (and no others) and the learned routes it refused with
// the reason, so a missing route explains itself.
func TestFormatRoutingReport(t *testing.T) {
	pools := []netip.Prefix{netip.MustParsePrefix(PoolCIDR), netip.MustParsePrefix(PoolCIDR6)}
	got := formatRoutingReport([]nodeRouting{
		{
			Node: "node3",
			Routes: []KernelRoute{
				{Dst: "10.244.0.0/16", Gateway: "172.30.2.1", Dev: "eth0", Protocol: "77"},
				{Dst: "172.30.0.0/16", Gateway: "172.30.2.1", Dev: "eth0"},
				{Dst: "fd00:10:244:2::/122", Gateway: "fd30:0:0:2::c", Dev: "eth0", Protocol: "77"},
			},
			Status: &cairnv1.NodeRouteStatus{LearnedCount: 3, RefusedCount: 2, Learned: []cairnv1.LearnedRouteStatus{
				{Prefix: "fd00:10:244:3::/122", NextHops: []string{"fd30:0:0:2::1"}, State: cairnv1.LearnedRouteRefused, Reason: "owner-only import: next hop fd30:0:0:2::1 is not its owner"},
				{Prefix: "10.244.0.0/16", NextHops: []string{"172.30.2.1"}, State: cairnv1.LearnedRouteInstalled},
			}},
		},
		{Node: "node4", RoutesErr: errors.New("no such namespace"), StatusErr: errors.New("API server down")},
		{Node: "node5"},
	}, pools)
	for _, want := range []string{
		"routing into the pools [10.244.0.0/16 fd00:10:244::/56]",
		"node3 kernel routes:\n    10.244.0.0/16 via 172.30.2.1 dev eth0 proto 77\n    fd00:10:244:2::/122 via fd30:0:0:2::c dev eth0 proto 77",
		"node3 refused 2 of 3 learned routes\n    fd00:10:244:3::/122 via fd30:0:0:2::1: owner-only import: next hop fd30:0:0:2::1 is not its owner\n    (1 more not listed in the status)",
		"node4 kernel routes: cannot read: no such namespace",
		"node4 refused routes: cannot read its CairnNodeStatus: API server down",
		"node5 kernel routes: none",
		"node5 refused routes: it has written no CairnNodeStatus",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "172.30.0.0/16") || strings.Contains(got, "10.244.0.0/16 via 172.30.2.1: ") {
		t.Errorf("report shows a route outside the pools or an installed route as refused:\n%s", got)
	}
}
