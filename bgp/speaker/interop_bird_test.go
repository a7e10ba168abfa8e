package speaker

import (
	"fmt"
	"strings"
	"testing"
)

// birdInteropConf is BIRD 2 as the interop ToR: the pool routes from
// static protocols (pool4 is disabled to withdraw it), a session per node
// and family, each carrying its own family, MD5-signed.
func birdInteropConf(nodes []*interopNode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id %s;\nprotocol device { }\n", interopRouterID)
	fmt.Fprintf(&b, "protocol static pool4 { ipv4; route %s blackhole; }\n", interopPool4)
	fmt.Fprintf(&b, "protocol static pool6 { ipv6; route %s blackhole; }\n", interopPool6)
	for i, s := range interopSessions(nodes) {
		fmt.Fprintf(&b, `protocol bgp s%d {
	local %s as %d;
	neighbor %s as %d;
	password %q;
	hold time 9;
	connect retry time 1;
	error wait time 1, 5;
	%s { import all; export where source = RTS_STATIC; };
}
`, i, s.local, interopTorAS, s.peer, interopNodeAS, interopPassword, s.family)
	}
	return b.String()
}

type birdInterop struct{ *birdRouter }

func startInteropBird(t *testing.T, netns string, nodes []*interopNode) interopRouter {
	return birdInterop{startBird(t, netns, birdInteropConf(nodes))}
}

func (b birdInterop) established() (int, error) {
	out, err := b.show("show", "protocols")
	return countLines(out, "BGP", "Established"), err
}

func (b birdInterop) routeVia(_, prefix, nh string) (bool, error) {
	out, err := b.show("show", "route", prefix)
	if err != nil && strings.Contains(out, "Network not found") {
		return false, nil // birdc's exit status says the same
	}
	return strings.Contains(out, "via "+nh+" "), err
}

func (b birdInterop) withdrawPool4(t *testing.T) {
	if out, err := b.show("disable", "pool4"); err != nil || !strings.Contains(out, "disabled") {
		t.Fatalf("birdc disable pool4: %v\n%s", err, out)
	}
}
