package plugin

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

const testConf = `{"cniVersion":"1.1.0","name":"cairn","type":"cairn-cni"}`

func cmdArgs(conf string) *skel.CmdArgs {
	return &skel.CmdArgs{
		ContainerID: "c1",
		IfName:      "eth0",
		Netns:       "/var/run/netns/pod1",
		Args:        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx;K8S_POD_UID=u-1",
		StdinData:   []byte(conf),
	}
}

// cniCode returns the CNI code the runtime would see for err.
func cniCode(err error) uint {
	if err == nil {
		return 0
	}
	return toCNIError(err).Code
}

func TestAddStepsInOrder(t *testing.T) {
	f := newFixture()
	if _, err := f.p.Add(context.Background(), cmdArgs(testConf)); err != nil {
		t.Fatalf("Add: %v", err)
	}
	want := []string{"dp.CheckPod", "agent.Allocate", "dp.CreateVeth", "dp.ConfigurePod", "agent.EndpointUp"}
	if got := f.rec.log(); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	a := f.agent.lastAlloc
	if a.GetContainerId() != "c1" || a.GetIfname() != "eth0" || a.GetPodNamespace() != "default" || a.GetPodName() != "nginx" ||
		a.GetPodUid() != "u-1" || a.GetNetwork() != "cairn" ||
		!slices.Equal(a.GetIpFamilies(), []agentv1.IPFamily{agentv1.IPFamily_IP_FAMILY_V4}) {
		t.Errorf("Allocate request = %v", a)
	}
	hostVeth := netsetup.HostVethName("default", "nginx", "c1", "eth0")
	if f.dp.veth.HostName != hostVeth || f.dp.veth.PodIfName != "eth0" || f.dp.veth.HostMAC.String() != "ee:ee:ee:ee:ee:ee" {
		t.Errorf("veth = %+v", f.dp.veth)
	}
	c := f.dp.config
	if len(c.Addresses) != 1 || c.Addresses[0].String() != "198.51.100.7/32" ||
		len(c.Gateways) != 1 || !c.Gateways[0].Equal(net.IPv4(169, 254, 1, 1)) || c.GatewayMAC.String() != "ee:ee:ee:ee:ee:ee" {
		t.Errorf("pod config = %+v", c)
	}
	up := f.agent.lastUp
	if up.GetHostIface() != hostVeth || !slices.Equal(up.GetAddresses(), []string{"198.51.100.7/32"}) {
		t.Errorf("EndpointUp request = %v", up)
	}
}

func TestAddResult(t *testing.T) {
	f := newFixture()
	f.agent.addresses = []string{"fd00::7/128", "198.51.100.7/32"}
	conf := `{"cniVersion":"1.1.0","name":"cairn","ipFamilies":["ipv4","ipv6"],"mtu":1400}`
	res, err := f.p.Add(context.Background(), cmdArgs(conf))
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if len(res.Interfaces) != 2 {
		t.Fatalf("interfaces = %v", res.Interfaces)
	}
	host, pod := res.Interfaces[0], res.Interfaces[1]
	if host.Sandbox != "" || host.Mac != "ee:ee:ee:ee:ee:ee" || !netsetup.IsHostVethName(host.Name) {
		t.Errorf("host interface = %+v", host)
	}
	if pod.Name != "eth0" || pod.Sandbox != "/var/run/netns/pod1" || pod.Mac != "42:42:42:42:42:42" || pod.Mtu != 1400 {
		t.Errorf("pod interface = %+v", pod)
	}
	var ips []string
	for _, ip := range res.IPs {
		if ip.Interface == nil || *ip.Interface != 1 {
			t.Errorf("ip %s not on interface 1", ip.Address.String())
		}
		ips = append(ips, ip.Address.String()+" gw "+ip.Gateway.String())
	}
	// Family order is the netconf's, not the agent's.
	if want := []string{"198.51.100.7/32 gw 169.254.1.1", "fd00::7/128 gw fe80::1"}; !slices.Equal(ips, want) {
		t.Errorf("ips = %v, want %v", ips, want)
	}
	var routes []string
	for _, r := range res.Routes {
		routes = append(routes, routeString(r))
	}
	want := []string{"169.254.1.1/32", "0.0.0.0/0 via 169.254.1.1", "fe80::1/128", "::/0 via fe80::1"}
	if !slices.Equal(routes, want) {
		t.Errorf("routes = %v, want %v", routes, want)
	}
	if len(res.DNS.Nameservers) != 0 || res.DNS.Domain != "" {
		t.Errorf("DNS returned without configuration: %+v", res.DNS)
	}
}

func TestAddPrintsResultInConfVersion(t *testing.T) {
	f := newFixture()
	var v string
	funcs := f.p.funcs(context.Background(), &v)
	if err := funcs.Add(cmdArgs(`{"cniVersion":"0.4.0","name":"cairn"}`)); err != nil {
		t.Fatalf("Add: %v", err)
	}
	out := f.out.String()
	if !strings.Contains(out, `"cniVersion": "0.4.0"`) || !strings.Contains(out, `"version": "4"`) {
		t.Errorf("result not printed as 0.4.0:\n%s", out)
	}
	if v != "0.4.0" {
		t.Errorf("noted cniVersion = %q", v)
	}
}

func TestAddRollback(t *testing.T) {
	cases := []struct {
		failAt string
		want   []string // calls after the failing one
	}{
		// The Release undo is pushed before Allocate: an Allocate that
		// timed out here may still have committed on the agent.
		{"agent.Allocate", []string{"agent.Release"}},
		{"dp.CreateVeth", []string{"agent.Release"}},
		{"dp.ConfigurePod", []string{"dp.DeleteHostVeth", "agent.Release"}},
		{"agent.EndpointUp", []string{"dp.DeleteHostVeth", "agent.Release"}},
	}
	for _, tc := range cases {
		t.Run(tc.failAt, func(t *testing.T) {
			f := newFixture()
			boom := errors.New("boom")
			f.rec.fail[tc.failAt] = boom
			_, err := f.p.Add(context.Background(), cmdArgs(testConf))
			if !errors.Is(err, boom) {
				t.Fatalf("Add error = %v, want boom", err)
			}
			calls := f.rec.log()
			i := slices.Index(calls, tc.failAt)
			if i < 0 || !slices.Equal(calls[i+1:], tc.want) {
				t.Errorf("calls = %v, want %v after %s", calls, tc.want, tc.failAt)
			}
		})
	}
}

func TestAddRollbackContinuesPastFailedUndo(t *testing.T) {
	f := newFixture()
	f.rec.fail["agent.EndpointUp"] = status.Error(codes.Internal, "route failed")
	f.rec.fail["dp.DeleteHostVeth"] = errors.New("delete failed")
	_, err := f.p.Add(context.Background(), cmdArgs(testConf))
	if err == nil || !strings.Contains(err.Error(), "rollback incomplete") || !strings.Contains(err.Error(), "delete failed") {
		t.Fatalf("Add error = %v, want it to report the failed undo", err)
	}
	if calls := f.rec.log(); calls[len(calls)-1] != "agent.Release" {
		t.Errorf("Release not attempted after a failed undo: %v", calls)
	}
	if code := cniCode(err); code != CodeAgentFailed {
		t.Errorf("code = %d, want %d (the original failure's)", code, CodeAgentFailed)
	}
}

func TestAddInterfaceExists(t *testing.T) {
	f := newFixture()
	f.dp.exists = true
	_, err := f.p.Add(context.Background(), cmdArgs(testConf))
	if cniCode(err) != CodeInterfaceExists {
		t.Fatalf("Add error = %v (code %d), want code %d", err, cniCode(err), CodeInterfaceExists)
	}
	if calls := f.rec.log(); !slices.Equal(calls, []string{"dp.CheckPod"}) {
		t.Errorf("calls = %v: nothing may be allocated or created", calls)
	}
}

func TestAddErrorCodes(t *testing.T) {
	cases := []struct {
		name      string
		allocErr  error
		addresses []string
		want      uint
	}{
		{"agent unavailable", status.Error(codes.Unavailable, "connection refused"), nil, types.ErrTryAgainLater},
		{"agent deadline", status.Error(codes.DeadlineExceeded, "slow"), nil, types.ErrTryAgainLater},
		{"pool exhausted", status.Error(codes.ResourceExhausted, "no free block"), nil, types.ErrTryAgainLater},
		{"agent refuses", status.Error(codes.InvalidArgument, "bad"), nil, CodeAgentFailed},
		{"not a host prefix", nil, []string{"198.51.100.0/24"}, CodeAgentFailed},
		{"not a CIDR", nil, []string{"198.51.100.7"}, CodeAgentFailed},
		{"wrong family", nil, []string{"fd00::1/128"}, CodeAgentFailed},
		{"two addresses for one family", nil, []string{"198.51.100.7/32", "198.51.100.8/32"}, CodeAgentFailed},
		{"no address", nil, nil, CodeAgentFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.rec.fail["agent.Allocate"] = tc.allocErr
			f.agent.addresses = tc.addresses
			_, err := f.p.Add(context.Background(), cmdArgs(testConf))
			if got := cniCode(err); got != tc.want {
				t.Errorf("code = %d (%v), want %d", got, err, tc.want)
			}
			if calls := f.rec.log(); calls[len(calls)-1] != "agent.Release" {
				t.Errorf("no Release after a failed Allocate: %v", calls)
			}
		})
	}
}

func TestAgentTimeoutIsTryAgain(t *testing.T) {
	f := newFixture()
	f.agent.block = true
	_, err := f.p.Add(context.Background(), cmdArgs(`{"cniVersion":"1.1.0","name":"cairn","agentTimeoutSeconds":1}`))
	if got := cniCode(err); got != types.ErrTryAgainLater {
		t.Errorf("code = %d (%v), want 11", got, err)
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*skel.CmdArgs)
		want   uint
	}{
		{"bad container ID", func(a *skel.CmdArgs) { a.ContainerID = "../etc" }, types.ErrInvalidEnvironmentVariables},
		{"empty container ID", func(a *skel.CmdArgs) { a.ContainerID = "" }, types.ErrUnknownContainer},
		{"ifname too long", func(a *skel.CmdArgs) { a.IfName = "eth0123456789012" }, types.ErrInvalidEnvironmentVariables},
		{"ifname with slash", func(a *skel.CmdArgs) { a.IfName = "a/b" }, types.ErrInvalidEnvironmentVariables},
		{"relative netns", func(a *skel.CmdArgs) { a.Netns = "netns/pod1" }, types.ErrInvalidEnvironmentVariables},
		{"missing netns", func(a *skel.CmdArgs) { a.Netns = "" }, types.ErrInvalidEnvironmentVariables},
		{"bad CNI_ARGS", func(a *skel.CmdArgs) { a.Args = "K8S_POD_NAMESPACE=a;K8S_POD_NAME=x y" }, types.ErrInvalidEnvironmentVariables},
		{"bad netconf field", func(a *skel.CmdArgs) { a.StdinData = []byte(`{"cniVersion":"1.1.0","name":"n","mtu":1}`) }, types.ErrInvalidNetworkConfig},
		{"netconf not JSON", func(a *skel.CmdArgs) { a.StdinData = []byte(`{`) }, types.ErrDecodingFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			args := cmdArgs(testConf)
			tc.mutate(args)
			_, err := f.p.Add(context.Background(), args)
			if got := cniCode(err); got != tc.want {
				t.Errorf("code = %d (%v), want %d", got, err, tc.want)
			}
			if calls := f.rec.log(); len(calls) != 0 {
				t.Errorf("calls made despite invalid input: %v", calls)
			}
		})
	}
}

// TestAddMTUFollowsTheUplinks: without "mtu" in the configuration the
// veth and the result take the uplinks' MTU; with it, the configuration's.
func TestAddMTUFollowsTheUplinks(t *testing.T) {
	for _, tc := range []struct {
		name      string
		conf      string
		uplinkMTU int
		want      int
	}{
		{"unset: the uplinks' MTU", testConf, 9000, 9000},
		{"unset, no uplink found: the kernel's default", testConf, 0, 0},
		{"configured: the configuration's", `{"cniVersion":"1.1.0","name":"cairn","type":"cairn-cni","mtu":1400}`, 9000, 1400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.dp.uplinkMTU = tc.uplinkMTU
			res, err := f.p.Add(context.Background(), cmdArgs(tc.conf))
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if f.dp.veth.MTU != tc.want || res.Interfaces[1].Mtu != tc.want {
				t.Errorf("veth MTU %d, result MTU %d, want %d", f.dp.veth.MTU, res.Interfaces[1].Mtu, tc.want)
			}
		})
	}
}
