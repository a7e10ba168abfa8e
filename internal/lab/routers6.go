package lab

import (
	"fmt"
	"strings"
)

// The IPv6 half of a dual-stack lab's router configurations, BIRD and
// FRR: the same filters as the IPv4 ones over the IPv6 ranges, with names
// ending in 6 (a BIRD prefix set or an FRR prefix list holds one family),
// each IPv6 session beside its IPv4 twin with the same role.

// dualStack reports whether a router has IPv6 sessions.
func dualStack(rp RouterPlan) bool {
	for _, p := range rp.Peers {
		if p.Addr.Is6() {
			return true
		}
	}
	return false
}

// familySuffix ends the names of a session's filters: "6" for IPv6.
func familySuffix(p Peer) string {
	if p.Addr.Is6() {
		return "6"
	}
	return ""
}

// birdProtocolName names a session's protocol: the peer's name, with
// "_v6" for the IPv6 twin of a session.
func birdProtocolName(p Peer) string {
	if p.Addr.Is6() {
		return p.Name + "_v6"
	}
	return p.Name
}

func birdIPv6Globals(rp RouterPlan) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("define POOL6 = [ %s{%d,128} ];", PoolCIDR6, prefixLen(PoolCIDR6))
	w("define LAB6 = [ %s{%d,128} ];", LabCIDR6, prefixLen(LabCIDR6))
	if rp.ExportConnected {
		w("protocol direct direct6 { ipv6; interface \"*\"; }")
	}
	if rp.AnnouncePool {
		// The twin of pool_aggregate: without it a node has no route to
		// another rack's IPv6 pods (it refuses their blocks from the ToR).
		w("protocol static pool_aggregate6 { ipv6; route %s unreachable; }", PoolCIDR6)
	}
	w("protocol kernel kernel6 {")
	w("  merge paths on;")
	w("  ipv6 { import none; export where source = RTS_BGP; };")
	w("}")
	w("filter pool_only6 { if net ~ POOL6 then accept; reject; }")
	w("filter from_nodes6 { if net ~ POOL6 then accept; reject; }")
	w("filter from_routers6 { if net ~ POOL6 || net ~ LAB6 then accept; reject; }")
	w("filter to_routers6 {")
	w("  if source = RTS_STATIC then reject;")
	w("  if net ~ POOL6 then accept;")
	w("  if net ~ LAB6 && (source = RTS_DEVICE || source = RTS_BGP) then accept;")
	w("  reject;")
	w("}")
	return b.String()
}

// frrFamilies are the address families whose tables a router has.
func frrFamilies(rp RouterPlan) []string {
	if dualStack(rp) {
		return []string{"ipv4", "ipv6"}
	}
	return []string{"ipv4"}
}

// frrIPv6Policy is the IPv6 twin of the prefix lists and route maps of
// frrBGPConfig. Paths from FRR peers carry a link-local next hop beside
// the global one, which zebra would install; prefer-global installs the
// global one, as the IPv4 side has its peer's address.
func frrIPv6Policy() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("ipv6 prefix-list POOL6 seq 10 permit %s le 128", PoolCIDR6)
	w("ipv6 prefix-list LAB6 seq 10 permit %s le 128", LabCIDR6)
	w("ipv6 prefix-list POOL6-AGGREGATE seq 10 permit %s", PoolCIDR6)
	w("route-map POOL-ONLY6 permit 10")
	w(" match ipv6 address prefix-list POOL6")
	w("route-map FROM-NODES6 permit 10")
	w(" match ipv6 address prefix-list POOL6")
	w(" set ipv6 next-hop prefer-global")
	w("route-map ROUTERS6 deny 5")
	w(" match ipv6 address prefix-list POOL6-AGGREGATE")
	w("route-map ROUTERS6 permit 10")
	w(" match ipv6 address prefix-list POOL6")
	w(" set ipv6 next-hop prefer-global")
	w("route-map ROUTERS6 permit 20")
	w(" match ipv6 address prefix-list LAB6")
	w(" set ipv6 next-hop prefer-global")
	w("route-map CONNECTED6 permit 10")
	w(" match ipv6 address prefix-list LAB6")
	return b.String()
}

// frrIPv6Family is the IPv6 unicast address family of bgpd: the IPv6
// sessions activated, with the same roles as their IPv4 twins.
func frrIPv6Family(rp RouterPlan) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w(" !")
	w(" address-family ipv6 unicast")
	if rp.ExportConnected {
		w("  redistribute connected route-map CONNECTED6")
	}
	if rp.AnnouncePool {
		// Sent to the nodes only (ROUTERS6 denies it): see AnnouncePool.
		w("  aggregate-address %s", PoolCIDR6)
	}
	w("  maximum-paths %d", frrMaxPaths)
	w("  maximum-paths ibgp %d", frrMaxPaths)
	frrFamilyNeighbours(w, rp.Peers, true)
	w(" exit-address-family")
	return b.String()
}
