package lbipam

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/cairn-net/cairn/ipam/pools"
)

func TestView(t *testing.T) {
	v4, v6 := corev1.IPv4Protocol, corev1.IPv6Protocol
	for _, c := range []struct {
		name      string
		svc       *corev1.Service
		managed   bool
		lb        bool
		families  []pools.Family
		requested []string
		err       string // part of RequestErr; "" means none
		status    []string
	}{
		{"no class", svc("a", 0), true, true, []pools.Family{pools.V4}, nil, "", nil},
		{"cairn class", svc("a", 0, class(Class)), true, true, []pools.Family{pools.V4}, nil, "", nil},
		{"other class", svc("a", 0, class("example.com/metal")), false, true, []pools.Family{pools.V4}, nil, "", nil},
		{"ClusterIP", svc("a", 0, clusterIP), false, false, []pools.Family{pools.V4}, nil, "", nil},
		{"no ipFamilies means IPv4", svc("a", 0, families()), true, true, []pools.Family{pools.V4}, nil, "", nil},
		{"v6 first", svc("a", 0, families(v6, v4)), true, true, []pools.Family{pools.V6, pools.V4}, nil, "", nil},
		{"loadBalancerIP", svc("a", 0, lbIP("192.0.2.5")), true, true, []pools.Family{pools.V4}, []string{"192.0.2.5"}, "", nil},
		{"annotation, ordered by family", svc("a", 0, dual, annotated(" 2001:db8::5 , 192.0.2.5")), true, true,
			[]pools.Family{pools.V4, pools.V6}, []string{"192.0.2.5", "2001:db8::5"}, "", nil},
		{"both agree", svc("a", 0, dual, lbIP("192.0.2.5"), annotated("192.0.2.5,2001:db8::5")), true, true,
			[]pools.Family{pools.V4, pools.V6}, []string{"192.0.2.5", "2001:db8::5"}, "", nil},
		{"both disagree", svc("a", 0, lbIP("192.0.2.6"), annotated("192.0.2.5")), true, true, []pools.Family{pools.V4}, nil, "not among", nil},
		{"bad loadBalancerIP", svc("a", 0, lbIP("192.0.2.300")), true, true, []pools.Family{pools.V4}, nil, "spec.loadBalancerIP", nil},
		{"bad annotation", svc("a", 0, annotated("lb.example.com")), true, true, []pools.Family{pools.V4}, nil, RequestAnnotation, nil},
		{"zone", svc("a", 0, families(v6), annotated("fe80::1%eth0")), true, true, []pools.Family{pools.V6}, nil, "not an IP address", nil},
		{"two of a family", svc("a", 0, annotated("192.0.2.5,192.0.2.6")), true, true, []pools.Family{pools.V4}, nil, "one IPv4 address", nil},
		{"family the Service lacks", svc("a", 0, annotated("2001:db8::5")), true, true, []pools.Family{pools.V4}, nil, "ipFamilies are [IPv4]", nil},
		{"empty annotation", svc("a", 0, annotated(" ")), true, true, []pools.Family{pools.V4}, nil, "", nil},
		{"status, hostnames skipped, mapped unmapped, duplicates once", svc("a", 0, status("192.0.2.7", "", "::ffff:192.0.2.8", "192.0.2.7")), true, true,
			[]pools.Family{pools.V4}, nil, "", []string{"192.0.2.7", "192.0.2.8"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := View(c.svc)
			if v.Key != "default/a" || v.UID != "uid-a" {
				t.Errorf("key %q uid %q", v.Key, v.UID)
			}
			if v.Managed != c.managed || v.LoadBalancer != c.lb || !slices.Equal(v.Families, c.families) {
				t.Errorf("managed %v lb %v families %v; want %v %v %v", v.Managed, v.LoadBalancer, v.Families, c.managed, c.lb, c.families)
			}
			if !slices.Equal(v.Requested, addrs(c.requested...)) {
				t.Errorf("requested %v, want %v", v.Requested, c.requested)
			}
			if (v.RequestErr == nil) != (c.err == "") || (v.RequestErr != nil && !strings.Contains(v.RequestErr.Error(), c.err)) {
				t.Errorf("request error %v, want one containing %q", v.RequestErr, c.err)
			}
			if !slices.Equal(v.Status, addrs(c.status...)) {
				t.Errorf("status %v, want %v", v.Status, c.status)
			}
		})
	}
}

func TestRequireDualStack(t *testing.T) {
	if !View(svc("a", 0, dual, policy(corev1.IPFamilyPolicyRequireDualStack))).RequireAll {
		t.Error("RequireDualStack not read")
	}
	if View(svc("a", 0, dual, policy(corev1.IPFamilyPolicyPreferDualStack))).RequireAll {
		t.Error("PreferDualStack read as required")
	}
}
