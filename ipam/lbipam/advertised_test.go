package lbipam

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestPoolsNotAdvertised(t *testing.T) {
	for _, c := range []struct {
		name   string
		cidr   string
		ranges []string
		want   string // "" (announced), "wholly" or "partly"
	}{
		{"inside one range", "10.98.0.128/25", []string{"10.98.0.0/24"}, ""},
		{"equal to a range", "10.98.0.0/24", []string{"10.98.0.0/24"}, ""},
		{"covered by two halves", "10.98.0.0/24", []string{"10.98.0.128/25", "10.98.0.0/25"}, ""},
		{"covered by uneven parts", "10.98.0.0/24", []string{"10.98.0.0/25", "10.98.0.128/26", "10.98.0.192/26"}, ""},
		{"no ranges", "10.98.0.0/24", nil, "wholly"},
		{"beside a range", "10.99.0.0/24", []string{"10.98.0.0/24"}, "wholly"},
		{"larger than its range", "10.98.0.0/23", []string{"10.98.0.0/24"}, "partly"},
		{"one address short", "10.98.0.0/24", []string{"10.98.0.0/25", "10.98.0.128/26", "10.98.0.192/27", "10.98.0.224/28",
			"10.98.0.240/29", "10.98.0.248/30", "10.98.0.252/31", "10.98.0.254/32"}, "partly"},
		{"IPv6 inside", "fd00:98::/120", []string{"fd00:98::/112"}, ""},
		{"IPv6 beside an IPv4 range", "fd00:98::/120", []string{"10.98.0.0/24"}, "wholly"},
	} {
		t.Run(c.name, func(t *testing.T) {
			all := analyze(ippool("lb", c.cidr, true), ippool("pods", "10.244.0.0/16", false))
			got := PoolsNotAdvertised(all, prefixes(c.ranges...))
			if _, ok := got["pods"]; ok {
				t.Errorf("a Workload pool reported: %q", got["pods"])
			}
			msg, ok := got["lb"]
			switch {
			case c.want == "" && ok:
				t.Errorf("reported %q, want nothing", msg)
			case c.want != "" && !strings.Contains(msg, "lies "+c.want+" outside"):
				t.Errorf("got %q, want it to lie %s outside", msg, c.want)
			}
		})
	}
}

func TestNotAdvertised(t *testing.T) {
	got := NotAdvertised(addrs("10.98.0.130", "10.99.0.1", "fd00::1"), prefixes("10.98.0.0/24"))
	if want := addrs("10.99.0.1", "fd00::1"); !slices.Equal(got, want) {
		t.Errorf("NotAdvertised = %v, want %v", got, want)
	}
	cfg := &v1.BGPConfiguration{Spec: v1.BGPConfigurationSpec{ServiceLoadBalancerIPs: []v1.ServiceIPBlock{
		{CIDR: "10.98.0.0/24"}, {CIDR: "not a cidr"}, {CIDR: "0.0.0.0/0"}, {CIDR: "10.99.0.1/24"}}}}
	if got, want := Advertised(cfg), prefixes("10.98.0.0/24", "10.99.0.0/24"); !slices.Equal(got, want) {
		t.Errorf("Advertised = %v, want %v (bad entries and default routes left out, as nodes do)", got, want)
	}
}

// withConfig gives the harness's controller a BGPConfiguration default
// announcing ranges.
func (h *harness) withConfig(ranges ...string) {
	h.t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	cfg := &v1.BGPConfiguration{}
	cfg.Name = advertisedConfig
	for _, r := range ranges {
		cfg.Spec.ServiceLoadBalancerIPs = append(cfg.Spec.ServiceLoadBalancerIPs, v1.ServiceIPBlock{CIDR: r})
	}
	if err := idx.Add(cfg); err != nil {
		h.t.Fatal(err)
	}
	h.c.configs = cairnlisters.NewBGPConfigurationLister(idx)
}

// A Service given an address outside serviceLoadBalancerIPs still gets it
// (the pool is the operator's to use) and a Warning Event saying no node
// announces it; one given an announced address gets no such Event.
func TestAddressNotAnnouncedGetsAnEvent(t *testing.T) {
	ps := []*v1.IPPool{ippool("a-announced", "192.0.2.0/30", true), ippool("b-not", "198.51.100.0/30", true)}
	h := newHarness(t, ps, svc("one", 1), svc("two", 2))
	h.withConfig("192.0.2.0/24")
	h.mustSync("one", "two")
	events := h.drain()
	if hasEvent(events, "Warning "+ReasonNotAdvertised+" 192.0.2.") {
		t.Errorf("an announced address was reported: %q", events)
	}
	h.create(svc("three", 3))
	h.create(svc("four", 4))
	h.mustSync("three", "four")
	events = h.drain()
	want := "Warning " + ReasonNotAdvertised + " 198.51.100.1 lies outside BGPConfiguration default's serviceLoadBalancerIPs [192.0.2.0/24]"
	if !hasEvent(events, want) {
		t.Errorf("events %q, want one starting %q", events, want)
	}
	if got := h.status("three"); !slices.Equal(got, []string{"198.51.100.1"}) {
		t.Errorf("three has %v, want 198.51.100.1 all the same", got)
	}
}

// Without a view of BGPConfigurations nothing is said either way.
func TestNoConfigViewSaysNothing(t *testing.T) {
	h := newHarness(t, []*v1.IPPool{ippool("lb", "198.51.100.0/30", true)}, svc("one", 1))
	h.mustSync("one")
	if events := h.drain(); hasEvent(events, "Warning "+ReasonNotAdvertised) {
		t.Errorf("events %q", events)
	}
}
