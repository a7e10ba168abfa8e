package agent

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseNodeIPs reads --node-ip: one address, or an IPv4 and an IPv6
// address separated by a comma ("172.30.1.11,fd30:0:1::11", as the
// kubelet's --node-ip takes them). Either may be missing (invalid).
func ParseNodeIPs(s string) (v4, v6 netip.Addr, err error) {
	if strings.TrimSpace(s) == "" {
		return v4, v6, nil
	}
	for _, part := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(part))
		if err != nil {
			return netip.Addr{}, netip.Addr{}, fmt.Errorf("node IP %q: %w", part, err)
		}
		a = a.Unmap()
		slot := &v6
		if a.Is4() {
			slot = &v4
		}
		if slot.IsValid() {
			return netip.Addr{}, netip.Addr{}, fmt.Errorf("node IPs %q: two addresses of one family; give at most one IPv4 and one IPv6", s)
		}
		*slot = a
	}
	return v4, v6, nil
}
