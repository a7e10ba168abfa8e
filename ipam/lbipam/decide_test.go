package lbipam

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam/pools"
)

func TestDecide(t *testing.T) {
	lb4 := ippool("lb4", "192.0.2.0/29", true)      // .1 to .6 handed out unasked
	lb4b := ippool("lb4b", "198.51.100.0/30", true) // .1 and .2
	lb6 := ippool("lb6", "2001:db8::/125", true)    // ::1 to ::7
	pods := ippool("pods", "10.244.0.0/16", false)
	for _, c := range []struct {
		name    string
		svc     *corev1.Service
		held    []string
		pools   []*v1.IPPool
		taken   []string
		want    []string // the Service's addresses
		from    map[string]string
		lost    []string
		problem string // reason: part of the message; "" means none
	}{
		{"lowest free address, not the network address", svc("a", 0), nil, []*v1.IPPool{lb4}, nil,
			[]string{"192.0.2.1"}, map[string]string{"192.0.2.1": "lb4"}, nil, ""},
		{"taken ones skipped", svc("a", 0), nil, []*v1.IPPool{lb4}, []string{"192.0.2.1", "192.0.2.2"},
			[]string{"192.0.2.3"}, map[string]string{"192.0.2.3": "lb4"}, nil, ""},
		{"never the broadcast address: next pool by name", svc("a", 0), nil, []*v1.IPPool{lb4b, lb4},
			[]string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6"},
			[]string{"198.51.100.1"}, map[string]string{"198.51.100.1": "lb4b"}, nil, ""},
		{"pools full", svc("a", 0), nil, []*v1.IPPool{lb4b}, []string{"198.51.100.1", "198.51.100.2"},
			nil, nil, nil, ReasonAllocationFailed + ": every IPv4 LoadBalancer IP pool is full (lb4b)"},
		{"a pod pool is no LoadBalancer pool", svc("a", 0), nil, []*v1.IPPool{pods}, nil,
			nil, nil, nil, ReasonAllocationFailed + ": no IPv4 LoadBalancer IP pool"},
		{"Manual pool: not unasked", svc("a", 0), nil, []*v1.IPPool{ippool("m", "192.0.2.0/29", true, manual)}, nil,
			nil, nil, nil, ReasonAllocationFailed + ": no IPv4 LoadBalancer IP pool"},
		{"Manual pool: asked", svc("a", 0, lbIP("192.0.2.4")), nil, []*v1.IPPool{ippool("m", "192.0.2.0/29", true, manual)}, nil,
			[]string{"192.0.2.4"}, map[string]string{"192.0.2.4": "m"}, nil, ""},
		{"disabled pool: not unasked", svc("a", 0), nil, []*v1.IPPool{ippool("off", "192.0.2.0/29", true, disabled)}, nil,
			nil, nil, nil, ReasonAllocationFailed + ": no IPv4 LoadBalancer IP pool"},
		{"disabled pool: not asked either", svc("a", 0, lbIP("192.0.2.4")), nil, []*v1.IPPool{ippool("off", "192.0.2.0/29", true, disabled)}, nil,
			nil, nil, nil, ReasonUnavailable + ": requested address 192.0.2.4 is in IP pool off, which is disabled"},
		{"requested and free, even the network address", svc("a", 0, lbIP("192.0.2.0")), nil, []*v1.IPPool{lb4}, nil,
			[]string{"192.0.2.0"}, map[string]string{"192.0.2.0": "lb4"}, nil, ""},
		{"requested and taken", svc("a", 0, lbIP("192.0.2.4")), nil, []*v1.IPPool{lb4}, []string{"192.0.2.4"},
			nil, nil, nil, ReasonUnavailable + ": requested address 192.0.2.4 is in use by another Service"},
		{"requested outside every LoadBalancer pool", svc("a", 0, lbIP("10.244.0.9")), nil, []*v1.IPPool{lb4, pods}, nil,
			nil, nil, nil, ReasonUnavailable + ": requested address 10.244.0.9 is not in any LoadBalancer IP pool"},
		{"request unmet: keeps what it has", svc("a", 0, lbIP("192.0.2.4")), []string{"192.0.2.1"}, []*v1.IPPool{lb4}, []string{"192.0.2.4"},
			[]string{"192.0.2.1"}, nil, nil, ReasonUnavailable + ": requested address 192.0.2.4 is in use"},
		{"request changed: the new one", svc("a", 0, lbIP("192.0.2.4")), []string{"192.0.2.1"}, []*v1.IPPool{lb4}, nil,
			[]string{"192.0.2.4"}, map[string]string{"192.0.2.4": "lb4"}, nil, ""},
		{"request met already", svc("a", 0, lbIP("192.0.2.4")), []string{"192.0.2.4"}, []*v1.IPPool{lb4}, nil,
			[]string{"192.0.2.4"}, nil, nil, ""},
		{"dual request all or nothing", svc("a", 0, dual, annotated("192.0.2.4,2001:db8::4")), nil, []*v1.IPPool{lb4, lb6}, []string{"2001:db8::4"},
			nil, nil, nil, ReasonUnavailable + ": requested address 2001:db8::4 is in use"},
		{"bad request keeps what it has", svc("a", 0, lbIP("nope")), []string{"192.0.2.1"}, []*v1.IPPool{lb4}, nil,
			[]string{"192.0.2.1"}, nil, nil, ReasonUnavailable + ": spec.loadBalancerIP"},
		{"held is kept, pool gone or not", svc("a", 0), []string{"203.0.113.9"}, []*v1.IPPool{lb4}, nil,
			[]string{"203.0.113.9"}, nil, nil, ""},
		{"a free status address is adopted", svc("a", 0, status("192.0.2.5")), nil, []*v1.IPPool{lb4}, nil,
			[]string{"192.0.2.5"}, nil, nil, ""},
		{"a status address another Service holds is lost", svc("a", 0, status("192.0.2.1")), nil, []*v1.IPPool{lb4}, []string{"192.0.2.1"},
			[]string{"192.0.2.2"}, map[string]string{"192.0.2.2": "lb4"}, []string{"192.0.2.1"}, ""},
		{"held wins over another status address of its family", svc("a", 0, status("192.0.2.5")), []string{"192.0.2.1"}, []*v1.IPPool{lb4}, nil,
			[]string{"192.0.2.1"}, nil, nil, ""},
		{"dual stack", svc("a", 0, families(corev1.IPv6Protocol, corev1.IPv4Protocol)), nil, []*v1.IPPool{lb4, lb6}, nil,
			[]string{"2001:db8::1", "192.0.2.1"}, map[string]string{"2001:db8::1": "lb6", "192.0.2.1": "lb4"}, nil, ""},
		{"prefer dual stack without a v6 pool: v4 alone, fine", svc("a", 0, dual, policy(corev1.IPFamilyPolicyPreferDualStack)), nil, []*v1.IPPool{lb4}, nil,
			[]string{"192.0.2.1"}, map[string]string{"192.0.2.1": "lb4"}, nil, ""},
		{"require dual stack without a v6 pool", svc("a", 0, dual, policy(corev1.IPFamilyPolicyRequireDualStack)), nil, []*v1.IPPool{lb4}, nil,
			[]string{"192.0.2.1"}, map[string]string{"192.0.2.1": "lb4"}, nil, ReasonAllocationFailed + ": no IPv6 LoadBalancer IP pool"},
		{"dual stack, v6 pools full", svc("a", 0, dual), nil, []*v1.IPPool{lb4, ippool("lb6", "2001:db8::/127", true)}, []string{"2001:db8::", "2001:db8::1"},
			[]string{"192.0.2.1"}, map[string]string{"192.0.2.1": "lb4"}, nil, ReasonAllocationFailed + ": every IPv6 LoadBalancer IP pool is full"},
		{"family dropped from ipFamilies", svc("a", 0), []string{"192.0.2.1", "2001:db8::1"}, []*v1.IPPool{lb4, lb6}, nil,
			[]string{"192.0.2.1"}, nil, nil, ""},
		{"another class: nothing", svc("a", 0, class("example.com/metal")), []string{"192.0.2.1"}, []*v1.IPPool{lb4}, nil,
			nil, nil, nil, ""},
		{"no longer LoadBalancer: nothing", svc("a", 0, clusterIP, status("192.0.2.1")), []string{"192.0.2.1"}, []*v1.IPPool{lb4}, nil,
			nil, nil, nil, ""},
		{"a /32 pool gives its one address", svc("a", 0), nil, []*v1.IPPool{ippool("one", "192.0.2.9/32", true)}, nil,
			[]string{"192.0.2.9"}, map[string]string{"192.0.2.9": "one"}, nil, ""},
		{"a /31 pool gives both", svc("a", 0), nil, []*v1.IPPool{ippool("two", "192.0.2.8/31", true)}, []string{"192.0.2.8"},
			[]string{"192.0.2.9"}, map[string]string{"192.0.2.9": "two"}, nil, ""},
		{"v6: the last address is given", svc("a", 0, families(corev1.IPv6Protocol)), nil, []*v1.IPPool{lb6},
			[]string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4", "2001:db8::5", "2001:db8::6"},
			[]string{"2001:db8::7"}, map[string]string{"2001:db8::7": "lb6"}, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			taken := addrs(c.taken...)
			d := Decide(Input{Service: View(c.svc), Held: addrs(c.held...), Pools: pools.Analyze(c.pools),
				Taken: func(a netip.Addr) bool { return slices.Contains(taken, a) }})
			if !slices.Equal(d.Addrs, addrs(c.want...)) {
				t.Errorf("addresses %v, want %v", d.Addrs, c.want)
			}
			if len(d.From) != len(c.from) {
				t.Errorf("from %v, want %v", d.From, c.from)
			}
			for a, p := range c.from {
				if d.From[netip.MustParseAddr(a)] != p {
					t.Errorf("from %v, want %v", d.From, c.from)
				}
			}
			if !slices.Equal(d.Lost, addrs(c.lost...)) {
				t.Errorf("lost %v, want %v", d.Lost, c.lost)
			}
			var got []string
			for _, p := range d.Problems {
				got = append(got, p.Reason+": "+p.Message)
			}
			if c.problem == "" && len(got) > 0 || c.problem != "" && (len(got) != 1 || !strings.HasPrefix(got[0], c.problem)) {
				t.Errorf("problems %q, want one starting %q", got, c.problem)
			}
		})
	}
}

// Decide never hands out an address someone holds, whatever the pools
// and the Service: checked over every address of a small pool, each
// taken in turn.
func TestDecideNeverTaken(t *testing.T) {
	all := pools.Analyze([]*v1.IPPool{ippool("lb", "192.0.2.0/28", true), ippool("lb6", "2001:db8::/124", true)})
	var taken []netip.Addr
	for range 40 {
		d := Decide(Input{Service: View(svc("a", 0, dual)), Pools: all, Taken: func(a netip.Addr) bool { return slices.Contains(taken, a) }})
		for _, a := range d.Addrs {
			if slices.Contains(taken, a) {
				t.Fatalf("%s handed out twice", a)
			}
			taken = append(taken, a)
		}
	}
	if len(taken) != 14+15 {
		t.Errorf("%d addresses handed out, want every one of the pools' but the network, broadcast and anycast ones (29)", len(taken))
	}
}
