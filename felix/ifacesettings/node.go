package ifacesettings

import (
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/cairn-net/cairn/felix/kernel"
)

// ErrNodeUnfit reports node settings that make Cairn's routing impossible.
var ErrNodeUnfit = errors.New("node settings defeat Cairn's dataplane")

// NodeReport is what CheckNode found.
type NodeReport struct {
	// Warnings are settings that weaken the design without breaking it.
	Warnings []string
	// IPv6 is false when the node has IPv6 disabled.
	IPv6 bool
}

// CheckNode enables IPv4 forwarding and inspects the settings that would
// defeat the design. IPv6 forwarding is left alone here: the Manager turns
// it on once an IPv6 pool serves the node (see SetIPv6Forwarding), so a
// node without IPv6 pods keeps its IPv6 host behaviour. It returns an
// error wrapping ErrNodeUnfit when forwarding cannot be enabled; other
// findings are logged as warnings and returned in the report.
func CheckNode(k kernel.Kernel, log *slog.Logger) (NodeReport, error) {
	var rep NodeReport
	if err := ensure(k, "net/ipv4/ip_forward", "1"); err != nil {
		return rep, fmt.Errorf("%w: cannot enable IPv4 forwarding: %w", ErrNodeUnfit, err)
	}
	_, err := k.ReadSysctl("net/ipv6/conf/all/forwarding")
	switch {
	case errors.Is(err, unix.ENOENT):
		rep.Warnings = append(rep.Warnings, "IPv6 is disabled on this node (no net/ipv6 sysctls): IPv6 pods cannot be routed")
	case err != nil:
		return rep, fmt.Errorf("read IPv6 forwarding: %w", err)
	default:
		rep.IPv6 = true
		if v, err := k.ReadSysctl("net/ipv6/conf/all/disable_ipv6"); err == nil && v == "1" {
			rep.Warnings = append(rep.Warnings, "net.ipv6.conf.all.disable_ipv6=1: IPv6 pods cannot be routed")
		}
	}
	if v, err := k.ReadSysctl("net/ipv4/conf/all/rp_filter"); err == nil && v == "2" {
		rep.Warnings = append(rep.Warnings, "net.ipv4.conf.all.rp_filter=2 (loose) overrides the strict per-veth setting; "+
			"pod anti-spoofing then rests on Cairn's nftables rule alone")
	}
	if v, err := k.ReadSysctl("net/ipv4/conf/all/proxy_arp"); err == nil && v == "1" {
		rep.Warnings = append(rep.Warnings, "net.ipv4.conf.all.proxy_arp=1 turns proxy ARP on for every host veth; "+
			"Cairn does not need it and it answers ARP for addresses the host merely routes")
	}
	for _, w := range rep.Warnings {
		log.Warn("node setting", "finding", w)
	}
	return rep, nil
}

func ensure(k kernel.Kernel, name, value string) error {
	if v, err := k.ReadSysctl(name); err == nil && v == value {
		return nil
	}
	return k.WriteSysctl(name, value)
}
