package lbipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam/pools"
)

// A LoadBalancer pool does not make its addresses announced: nodes
// announce a Service's LoadBalancer address only inside
// BGPConfiguration.serviceLoadBalancerIPs, the one list of what the
// cluster may put into the data centre's routing. Creating a pool is not
// a routing decision (whoever may create one must not be able to inject a
// prefix towards the routers), so a pool outside that list is served but
// not announced, and said so: a warning in the leader's log per pool, and
// a Warning Event on every Service given an address that is not announced.

// ReasonNotAdvertised (Warning): the Service was given an address that no
// node announces, because it lies outside serviceLoadBalancerIPs.
const ReasonNotAdvertised = "LoadBalancerIPNotAdvertised"

// advertisedConfig names the BGPConfiguration whose
// serviceLoadBalancerIPs the nodes announce from.
const advertisedConfig = "default"

// Advertised parses serviceLoadBalancerIPs of cfg (nil: nothing is
// announced); entries that do not parse are left out, as the nodes do.
func Advertised(cfg *v1.BGPConfiguration) []netip.Prefix {
	if cfg == nil {
		return nil
	}
	var out []netip.Prefix
	for _, b := range cfg.Spec.ServiceLoadBalancerIPs {
		if p, err := netip.ParsePrefix(b.CIDR); err == nil && p.Bits() > 0 {
			out = append(out, p.Masked())
		}
	}
	return out
}

// NotAdvertised lists the addresses of addrs outside every range.
func NotAdvertised(addrs []netip.Addr, ranges []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if !slices.ContainsFunc(ranges, func(r netip.Prefix) bool { return r.Contains(a) }) {
			out = append(out, a)
		}
	}
	return out
}

// PoolsNotAdvertised lists the LoadBalancer pools with addresses outside
// ranges, each with why ("wholly" or "partly" outside).
func PoolsNotAdvertised(all []pools.Pool, ranges []netip.Prefix) map[string]string {
	out := map[string]string{}
	for _, p := range all {
		if !p.LoadBalancer || !p.CIDR.IsValid() || covered(p.CIDR, ranges) {
			continue
		}
		how := "partly"
		if !slices.ContainsFunc(ranges, p.CIDR.Overlaps) {
			how = "wholly"
		}
		out[p.Name] = fmt.Sprintf("LoadBalancer pool %s (%s) lies %s outside BGPConfiguration %s's serviceLoadBalancerIPs [%s]: "+
			"Services get its addresses, but no node announces them; add its cidr to serviceLoadBalancerIPs to announce them",
			p.Name, p.CIDR, how, advertisedConfig, rangesString(ranges))
	}
	return out
}

// covered reports whether the ranges together cover all of p. Ranges
// inside p are looked at by halving p; a range that does not overlap a
// half ends the descent there, so this costs little for any real list.
func covered(p netip.Prefix, ranges []netip.Prefix) bool {
	overlap := false
	for _, r := range ranges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
		overlap = overlap || r.Overlaps(p)
	}
	if !overlap || p.Bits() == p.Addr().BitLen() {
		return false
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hiAddr := p.Addr().AsSlice()
	bit := p.Bits()
	hiAddr[bit/8] |= 0x80 >> (bit % 8)
	hi, _ := netip.AddrFromSlice(hiAddr)
	return covered(lo, ranges) && covered(netip.PrefixFrom(hi, p.Bits()+1), ranges)
}

// advertised reads the ranges nodes announce LoadBalancer addresses from;
// ok is false when the controller has no view of BGPConfigurations (then
// nothing is reported).
func (c *Controller) advertised() (ranges []netip.Prefix, ok bool) {
	if c.configs == nil {
		return nil, false
	}
	cfg, err := c.configs.Get(advertisedConfig)
	if apierrors.IsNotFound(err) {
		return nil, true
	}
	if err != nil {
		return nil, false // a cache lister does not fail otherwise
	}
	return Advertised(cfg), true
}

// warnPools logs each LoadBalancer pool lying outside the announced
// ranges, once per pool and message: at the start of a term and whenever
// pools or the configuration change.
func (c *Controller) warnPools() {
	ranges, ok := c.advertised()
	if !ok {
		return
	}
	all, err := c.allPools()
	if err != nil {
		return
	}
	now := PoolsNotAdvertised(all, ranges)
	c.warnedMu.Lock()
	defer c.warnedMu.Unlock()
	for name, msg := range now {
		if c.warned[name] != msg {
			c.log.Warn("LoadBalancer pool not announced", "pool", name, "why", msg)
		}
	}
	c.warned = now
}

// reportNotAdvertised writes a Warning Event when addresses just given to
// a Service are not announced.
func (c *Controller) reportNotAdvertised(svc *corev1.Service, key string, added []netip.Addr) {
	ranges, ok := c.advertised()
	if !ok {
		return
	}
	out := NotAdvertised(added, ranges)
	if len(out) == 0 {
		return
	}
	msg := fmt.Sprintf("%s lies outside BGPConfiguration %s's serviceLoadBalancerIPs [%s]: no node announces it, so it is not reachable from outside the cluster",
		joinAddrs(out), advertisedConfig, rangesString(ranges))
	c.log.Warn("LoadBalancer address not announced", "service", key, "addresses", out, "ranges", rangesString(ranges))
	c.opts.Recorder.Event(svc, corev1.EventTypeWarning, ReasonNotAdvertised, msg)
}

func rangesString(ranges []netip.Prefix) string {
	s := make([]string, len(ranges))
	for i, r := range ranges {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}
