package peering

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

// ExportInput is everything that decides what one node announces.
type ExportInput struct {
	// Owned are the blocks affine to this node.
	Owned []netip.Prefix
	// Borrowed are host routes (/32, /128) to the addresses this node's
	// pods use from other nodes' blocks; each is announced.
	Borrowed []netip.Prefix
	Pools    []v1.IPPool
	Config   *v1.BGPConfiguration
	// Services are the cluster's Services, with whether each has a ready
	// endpoint on this node (see serviceAdvertisements).
	Services []Service
}

// Advertisements lists the prefixes a node announces: its blocks and
// borrowed addresses (except those of pools with disableBGPExport) and
// Service addresses inside the configured service ranges (see
// serviceAdvertisements), with the communities prefixAdvertisements
// attach. Nothing else is ever exported: not the node's routing table, not
// a default route. Sorted by prefix.
func Advertisements(in ExportInput) ([]speaker.Advertisement, []error) {
	noExport := noExportPools(in.Pools)
	set := map[netip.Prefix]bool{}
	for _, b := range in.Owned {
		if !withinAny(b, noExport) {
			set[b.Masked()] = true
		}
	}
	for _, p := range in.Borrowed {
		if !withinAny(p, noExport) {
			set[p] = true
		}
	}
	ranges, errs := parseServiceRanges(in.Config)
	serviceAdvertisements(set, ranges, in.Services)
	communities := map[netip.Prefix]communitySet{}
	if cfg := in.Config; cfg != nil {
		var err error
		communities, err = prefixCommunities(cfg)
		if err != nil {
			errs = append(errs, err)
		}
	}
	out := make([]speaker.Advertisement, 0, len(set))
	for p := range set {
		cs := communitiesFor(p, communities)
		out = append(out, speaker.Advertisement{Prefix: p, Communities: cs.standard, LargeCommunities: cs.large})
	}
	slices.SortFunc(out, func(a, b speaker.Advertisement) int { return a.Prefix.Compare(b.Prefix) })
	return out, errs
}

// ImportFilter is the set of prefixes learned routes must fall within:
// every workload IP pool, enabled or not (a disabled pool still has live pods), and
// every IPAM block that still exists outside them: a pool deleted while
// its pods run leaves their blocks, which their nodes still announce, and
// the other nodes must keep routing to those pods until the blocks go.
func ImportFilter(pools []v1.IPPool, blocks []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range pools {
		// A LoadBalancer pool's addresses are Service VIPs, which
		// kube-proxy serves on every node: a node needs no route to
		// another node's.
		if slices.Contains(p.Spec.AllowedUses, v1.IPPoolUseLoadBalancer) {
			continue
		}
		if c, err := netip.ParsePrefix(p.Spec.CIDR); err == nil && c.Bits() > 0 {
			out = append(out, c.Masked())
		}
	}
	inPools := len(out)
	for _, b := range blocks {
		if b.IsValid() && b.Bits() > 0 && !withinAny(b, out[:inPools]) {
			out = append(out, b.Masked())
		}
	}
	slices.SortFunc(out, netip.Prefix.Compare)
	return slices.Compact(out)
}

func noExportPools(pools []v1.IPPool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range pools {
		if !p.Spec.DisableBGPExport {
			continue
		}
		if c, err := netip.ParsePrefix(p.Spec.CIDR); err == nil {
			out = append(out, c.Masked())
		}
	}
	return out
}

func withinAny(p netip.Prefix, pools []netip.Prefix) bool {
	for _, pool := range pools {
		if pool.Bits() <= p.Bits() && pool.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// communitySet are the communities attached to a prefix.
type communitySet struct {
	standard []uint32
	large    []speaker.LargeCommunity
}

// prefixCommunities resolves prefixAdvertisements to standard (RFC 1997)
// and large (RFC 8092) communities. The most specific matching
// advertisement applies to a prefix.
func prefixCommunities(cfg *v1.BGPConfiguration) (map[netip.Prefix]communitySet, error) {
	named := map[string]string{}
	for _, c := range cfg.Spec.Communities {
		named[c.Name] = c.Value
	}
	out := map[netip.Prefix]communitySet{}
	for _, pa := range cfg.Spec.PrefixAdvertisements {
		p, err := netip.ParsePrefix(pa.CIDR)
		if err != nil {
			return out, fmt.Errorf("prefixAdvertisements cidr %q: %w", pa.CIDR, err)
		}
		set := out[p.Masked()]
		for _, c := range pa.Communities {
			if v, ok := named[c]; ok {
				c = v
			}
			if strings.Count(c, ":") == 2 {
				lc, err := ParseLargeCommunity(c)
				if err != nil {
					return out, fmt.Errorf("prefixAdvertisements %s: %w", pa.CIDR, err)
				}
				set.large = append(set.large, lc)
				continue
			}
			val, err := ParseCommunity(c)
			if err != nil {
				return out, fmt.Errorf("prefixAdvertisements %s: %w", pa.CIDR, err)
			}
			set.standard = append(set.standard, val)
		}
		out[p.Masked()] = set
	}
	return out, nil
}

func communitiesFor(p netip.Prefix, all map[netip.Prefix]communitySet) communitySet {
	var best communitySet
	bestBits := -1
	for cidr, cs := range all {
		if cidr.Bits() <= p.Bits() && cidr.Contains(p.Addr()) && cidr.Bits() > bestBits {
			best, bestBits = cs, cidr.Bits()
		}
	}
	return best
}

// ParseCommunity parses a standard community "asn:value" (RFC 1997).
func ParseCommunity(s string) (uint32, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 2 {
		return 0, fmt.Errorf("community %q: want asn:value, or a large community asn:value:value", s)
	}
	hi, err1 := strconv.ParseUint(parts[0], 10, 16)
	lo, err2 := strconv.ParseUint(parts[1], 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("community %q: both halves must be 0..65535", s)
	}
	return uint32(hi<<16 | lo), nil
}

// ParseLargeCommunity parses a large community "global:local1:local2"
// (RFC 8092), each part 0..4294967295.
func ParseLargeCommunity(s string) (speaker.LargeCommunity, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return speaker.LargeCommunity{}, fmt.Errorf("large community %q: want global:local1:local2", s)
	}
	var v [3]uint32
	for i, part := range parts {
		n, err := strconv.ParseUint(part, 10, 32)
		if err != nil {
			return speaker.LargeCommunity{}, fmt.Errorf("large community %q: each part must be 0..4294967295", s)
		}
		v[i] = uint32(n)
	}
	return speaker.LargeCommunity{GlobalAdmin: v[0], LocalData1: v[1], LocalData2: v[2]}, nil
}
