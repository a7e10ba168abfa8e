package pools

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

func pool(name, cidr string, mod ...func(*v1.IPPoolSpec)) *v1.IPPool {
	p := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.IPPoolSpec{CIDR: cidr}}
	for _, m := range mod {
		m(&p.Spec)
	}
	return p
}

func TestAnalyze(t *testing.T) {
	all := Analyze([]*v1.IPPool{
		pool("a", "10.0.0.0/16"),
		pool("b", "10.0.128.0/24", func(s *v1.IPPoolSpec) { s.Disabled = true }),
		pool("c", "10.1.0.0/16", func(s *v1.IPPoolSpec) { s.BlockSize = 28 }),
		pool("d", "fd00::/48"),
		pool("e", "not-a-cidr"),
		pool("f", "10.2.0.0/16", func(s *v1.IPPoolSpec) { s.NodeSelector = "a in (" }),
		pool("lb", "192.0.2.0/29", lbUse), // blockSize does not apply: the defaulted 26 is not an error
		pool("lb-sized", "192.0.2.8/29", lbUse, func(s *v1.IPPoolSpec) { s.BlockSize = 26 }),
	})
	want := map[string]struct {
		overlaps []string
		bits     int
		usable   bool
	}{
		"a":        {[]string{"b"}, 26, true},  // created first: keeps serving
		"b":        {[]string{"a"}, 26, false}, // a disabled pool still overlaps
		"c":        {nil, 28, true},
		"d":        {nil, 122, true},
		"e":        {nil, 0, false},
		"f":        {nil, 26, false},
		"lb":       {nil, 32, true},
		"lb-sized": {nil, 32, true},
	}
	for _, p := range all {
		w := want[p.Name]
		if !slices.Equal(p.Overlaps, w.overlaps) || p.BlockBits != w.bits || p.Usable() != w.usable {
			t.Errorf("%s: overlaps %v bits %d usable %v (invalid %v); want %v %d %v", p.Name, p.Overlaps, p.BlockBits, p.Usable(), p.Invalid, w.overlaps, w.bits, w.usable)
		}
	}
}

func TestForRequest(t *testing.T) {
	all := Analyze([]*v1.IPPool{
		pool("r1", "10.1.0.0/16", func(s *v1.IPPoolSpec) { s.NodeSelector = "rack=r1" }),
		pool("any", "10.2.0.0/16"),
		pool("manual", "10.3.0.0/16", func(s *v1.IPPoolSpec) { s.AssignmentMode = "Manual" }),
		pool("off", "10.4.0.0/16", func(s *v1.IPPoolSpec) { s.Disabled = true }),
		pool("v6", "fd00::/48"),
		pool("lb", "10.5.0.0/24", lbUse),
		pool("lb-manual", "10.6.0.0/24", lbUse, func(s *v1.IPPoolSpec) { s.AssignmentMode = "Manual" }),
		pool("workload", "10.7.0.0/16", func(s *v1.IPPoolSpec) { s.AllowedUses = []v1.IPPoolUse{v1.IPPoolUseWorkload} }),
	})
	for _, c := range []struct {
		name   string
		fam    Family
		names  []string
		labels map[string]string
		want   []string
	}{
		{"rack r1 node", V4, nil, map[string]string{"rack": "r1"}, []string{"any", "r1", "workload"}},
		{"unlabelled node", V4, nil, nil, []string{"any", "workload"}},
		{"v6", V6, nil, nil, []string{"v6"}},
		{"named, in order", V4, []string{"manual", "any"}, nil, []string{"manual", "any"}},
		{"named disabled", V4, []string{"off"}, nil, nil},
		{"named unknown", V4, []string{"nope"}, nil, nil},
		{"named wrong family", V6, []string{"any"}, nil, nil},
		{"named LoadBalancer pool", V4, []string{"lb", "lb-manual"}, nil, nil},
	} {
		if got := names(ForRequest(all, c.fam, c.names, c.labels)); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func names(ps []Pool) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func lbUse(s *v1.IPPoolSpec) { s.AllowedUses = []v1.IPPoolUse{v1.IPPoolUseLoadBalancer} }

func TestUses(t *testing.T) {
	for _, c := range []struct {
		uses         []v1.IPPoolUse
		workload, lb bool
		invalid      bool
	}{
		{nil, true, false, false}, // the API's default, for objects that never passed through it
		{[]v1.IPPoolUse{v1.IPPoolUseWorkload}, true, false, false},
		{[]v1.IPPoolUse{v1.IPPoolUseLoadBalancer}, false, true, false},
		{[]v1.IPPoolUse{v1.IPPoolUseWorkload, v1.IPPoolUseLoadBalancer}, false, false, true},
		{[]v1.IPPoolUse{"Tunnel"}, false, false, false}, // a use this version does not know: neither
	} {
		p := Parse(pool("p", "10.0.0.0/24", func(s *v1.IPPoolSpec) { s.AllowedUses = c.uses }))
		if p.Workload != c.workload || p.LoadBalancer != c.lb || (p.Invalid != nil) != c.invalid {
			t.Errorf("%v: workload %v lb %v invalid %v; want %v %v %v", c.uses, p.Workload, p.LoadBalancer, p.Invalid, c.workload, c.lb, c.invalid)
		}
	}
}

func TestForLoadBalancer(t *testing.T) {
	all := Analyze([]*v1.IPPool{
		pool("pods", "10.1.0.0/16"),
		pool("lb-b", "10.5.1.0/24", lbUse),
		pool("lb-a", "10.5.0.0/24", lbUse),
		pool("lb-manual", "10.6.0.0/24", lbUse, func(s *v1.IPPoolSpec) { s.AssignmentMode = "Manual" }),
		pool("lb-off", "10.7.0.0/24", lbUse, func(s *v1.IPPoolSpec) { s.Disabled = true }),
		pool("lb-v6", "fd00:5::/120", lbUse),
	})
	for _, c := range []struct {
		fam  Family
		want []string
	}{{V4, []string{"lb-a", "lb-b"}}, {V6, []string{"lb-v6"}}} {
		if got := names(ForLoadBalancer(all, c.fam)); !slices.Equal(got, c.want) {
			t.Errorf("%v: got %v, want %v", c.fam, got, c.want)
		}
	}
	for _, c := range []struct {
		addr string
		want string
	}{
		{"10.5.0.7", "lb-a"}, {"10.6.0.1", "lb-manual"}, {"10.7.0.1", "lb-off"}, {"fd00:5::9", "lb-v6"},
		{"10.1.0.1", ""}, // a Workload pool's address is no LoadBalancer address
		{"192.0.2.1", ""},
	} {
		p, ok := LoadBalancerContaining(all, netip.MustParseAddr(c.addr))
		if p.Name != c.want || ok != (c.want != "") {
			t.Errorf("LoadBalancerContaining(%s) = %s, %v; want %q", c.addr, p.Name, ok, c.want)
		}
	}
}

// The pool that was there first keeps serving, whatever the names: adding
// a mistaken overlapping pool never stops allocation in the one in use.
func TestOlderOverlappingPoolKeepsServing(t *testing.T) {
	first, later := pool("zz-in-use", "10.0.0.0/16"), pool("aa-mistake", "10.0.5.0/24")
	first.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	later.CreationTimestamp = metav1.NewTime(first.CreationTimestamp.Add(time.Hour))
	for _, p := range Analyze([]*v1.IPPool{later, first}) {
		switch p.Name {
		case "zz-in-use":
			if !p.Usable() || len(p.YieldsTo) != 0 || !slices.Equal(p.Overlaps, []string{"aa-mistake"}) {
				t.Errorf("the pool in use: usable %v, yields to %v, overlaps %v", p.Usable(), p.YieldsTo, p.Overlaps)
			}
		case "aa-mistake":
			if p.Usable() || !slices.Equal(p.YieldsTo, []string{"zz-in-use"}) {
				t.Errorf("the newer pool: usable %v, yields to %v", p.Usable(), p.YieldsTo)
			}
		}
	}
}
