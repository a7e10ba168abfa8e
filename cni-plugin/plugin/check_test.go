package plugin

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// goodState is the kernel state that matches what the fixture's ADD makes.
func goodState() (netsetup.PodState, netsetup.HostState) {
	v4, def := mustCIDR("169.254.1.1/32"), mustCIDR("0.0.0.0/0")
	pod := netsetup.PodState{
		Index: 2, Up: true, IsVeth: true, MAC: net.HardwareAddr{0x42, 0x42, 0x42, 0x42, 0x42, 0x42},
		Addresses: []*net.IPNet{mustCIDR("198.51.100.7/32")},
		Routes: []netsetup.Route{
			{Dst: v4, LinkScope: true},
			{Dst: def, Gw: net.IPv4(169, 254, 1, 1)},
		},
		Neighbors: []netsetup.Neighbor{{IP: net.IPv4(169, 254, 1, 1), MAC: netsetup.HostMAC(), Permanent: true}},
	}
	host := netsetup.HostState{Index: 9, Up: true, IsVeth: true, MAC: netsetup.HostMAC(), PeerIndex: 2}
	return pod, host
}

// checkConf runs ADD on a fixture and returns a netconf carrying its result
// as prevResult.
func checkConf(t *testing.T, f *fixture) string {
	t.Helper()
	var v string
	if err := f.p.funcs(context.Background(), &v).Add(cmdArgs(testConf)); err != nil {
		t.Fatalf("Add: %v", err)
	}
	return `{"cniVersion":"1.1.0","name":"cairn","prevResult":` + f.out.String() + `}`
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*netsetup.PodState, *netsetup.HostState)
		problem string // empty: CHECK passes
	}{
		{"matches", func(*netsetup.PodState, *netsetup.HostState) {}, ""},
		{"default route removed", func(p *netsetup.PodState, _ *netsetup.HostState) { p.Routes = p.Routes[:1] }, "route missing: 0.0.0.0/0 via 169.254.1.1"},
		{"gateway route not link scope", func(p *netsetup.PodState, _ *netsetup.HostState) { p.Routes[0].LinkScope = false }, "route missing: 169.254.1.1/32"},
		{"address removed", func(p *netsetup.PodState, _ *netsetup.HostState) { p.Addresses = nil }, "address missing: 198.51.100.7/32"},
		{"extra address", func(p *netsetup.PodState, _ *netsetup.HostState) {
			p.Addresses = append(p.Addresses, mustCIDR("198.51.100.99/32"))
		}, "unexpected address: 198.51.100.99/32"},
		{"neighbour not permanent", func(p *netsetup.PodState, _ *netsetup.HostState) { p.Neighbors[0].Permanent = false }, "no permanent neighbour"},
		{"neighbour wrong MAC", func(p *netsetup.PodState, _ *netsetup.HostState) {
			p.Neighbors[0].MAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}
		}, "no permanent neighbour"},
		{"pod down", func(p *netsetup.PodState, _ *netsetup.HostState) { p.Up = false }, "pod interface is down"},
		{"pod MAC changed", func(p *netsetup.PodState, _ *netsetup.HostState) { p.MAC = net.HardwareAddr{2, 0, 0, 0, 0, 1} }, "pod MAC is"},
		{"host down", func(_ *netsetup.PodState, h *netsetup.HostState) { h.Up = false }, "host veth is down"},
		{"host not the peer", func(_ *netsetup.PodState, h *netsetup.HostState) { h.PeerIndex = 77 }, "not the pod interface's peer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			conf := checkConf(t, f)
			f.dp.pod, f.dp.host = goodState()
			tc.mutate(&f.dp.pod, &f.dp.host)
			err := f.p.Check(context.Background(), cmdArgs(conf))
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if cniCode(err) != CodeCheckFailed || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("Check error = %v (code %d), want code %d mentioning %q", err, cniCode(err), CodeCheckFailed, tc.problem)
			}
		})
	}
}

func TestCheckAgentDisagrees(t *testing.T) {
	f := newFixture()
	conf := checkConf(t, f)
	f.dp.pod, f.dp.host = goodState()
	f.agent.problems = []string{"host route missing"}
	err := f.p.Check(context.Background(), cmdArgs(conf))
	if cniCode(err) != CodeCheckFailed || !strings.Contains(err.Error(), "agent: host route missing") {
		t.Errorf("Check error = %v", err)
	}
	f.agent.problems = nil
	f.rec.fail["agent.Check"] = status.Error(codes.NotFound, "unknown")
	err = f.p.Check(context.Background(), cmdArgs(conf))
	if cniCode(err) != CodeCheckFailed || !strings.Contains(err.Error(), "agent has no record") {
		t.Errorf("Check error = %v", err)
	}
	f.rec.fail["agent.Check"] = status.Error(codes.Unavailable, "down")
	if err := f.p.Check(context.Background(), cmdArgs(conf)); cniCode(err) != types.ErrTryAgainLater {
		t.Errorf("Check error = %v, want code 11", err)
	}
}

func TestCheckNeedsPrevResult(t *testing.T) {
	f := newFixture()
	err := f.p.Check(context.Background(), cmdArgs(testConf))
	if cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "prevResult") {
		t.Errorf("Check error = %v, want code 7 naming prevResult", err)
	}
}

func TestCheckOtherAttachment(t *testing.T) {
	f := newFixture()
	conf := checkConf(t, f)
	f.dp.pod, f.dp.host = goodState()
	args := cmdArgs(conf)
	args.IfName = "eth1"
	err := f.p.Check(context.Background(), args)
	if cniCode(err) != CodeCheckFailed || !strings.Contains(err.Error(), "prevResult has no interface eth1") {
		t.Errorf("Check error = %v", err)
	}
	if slices.Contains(f.rec.log(), "dp.InspectPod") {
		t.Error("kernel inspected although prevResult does not describe the attachment")
	}
}

func TestPrintErrorHasVersion(t *testing.T) {
	var buf bytes.Buffer
	if err := printError(&buf, types.NewError(7, "bad field", ""), "1.1.0"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"cniVersion": "1.1.0"`, `"code": 7`, `"msg": "bad field"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%s missing from %s", want, buf.String())
		}
	}
}
