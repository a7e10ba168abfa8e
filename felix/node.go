package felix

import (
	"fmt"
	"log/slog"

	"github.com/cairn-net/cairn/felix/ifacesettings"
	"github.com/cairn-net/cairn/felix/kernel"
)

// NodeReport is what CheckNodeSettings found.
type NodeReport = ifacesettings.NodeReport

// ErrNodeUnfit reports node settings that make Cairn's routing impossible.
var ErrNodeUnfit = ifacesettings.ErrNodeUnfit

// CheckNodeSettings enables IPv4 forwarding on the node reached through k
// (nil: the current network namespace) and checks the settings that would
// defeat Cairn: it refuses (an error wrapping ErrNodeUnfit) when forwarding
// cannot be enabled, and warns (logged and reported) about settings that
// weaken anti-spoofing or proxy ARP, or a node without IPv6. IPv6
// forwarding waits for an IPv6 pool that serves the node (SetPools).
func CheckNodeSettings(k kernel.Kernel, log *slog.Logger) (NodeReport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if k == nil {
		nk, err := kernel.NewNetlink(kernel.NetlinkOptions{})
		if err != nil {
			return NodeReport{}, fmt.Errorf("check node settings: open kernel: %w", err)
		}
		defer nk.Close()
		k = nk
	}
	rep, err := ifacesettings.CheckNode(k, log)
	if err != nil {
		return rep, fmt.Errorf("check node settings: %w", err)
	}
	return rep, nil
}
