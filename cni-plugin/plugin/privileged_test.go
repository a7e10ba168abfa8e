package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/apis/agent/v1/agenttest"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
	"github.com/cairn-net/cairn/cni-plugin/nstest"
)

// node is a privileged test's world: a "host" namespace standing in for
// the node's root namespace, the fake agent on a real unix socket (it
// installs host routes in the host namespace, as felix would), and the
// plugin with the real kernel dataplane.
type node struct {
	t      *testing.T
	hostNS ns.NetNS
	agent  *agenttest.Agent
	sock   string
	p      *Plugin
}

func newNode(t *testing.T) *node {
	t.Helper()
	nstest.RequireRoot(t)
	n := &node{t: t, hostNS: nstest.New(t), agent: agenttest.New()}
	n.agent.OnEndpointUp = n.installHostRoutes
	n.sock = n.agent.Serve(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n.p = New(Options{Log: log, Dataplane: &netsetup.Kernel{HostNS: n.hostNS, Log: log}, Stdout: io.Discard})
	return n
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// installHostRoutes is what felix does on EndpointUp: a scope-link route
// per pod address through the host veth.
func (n *node) installHostRoutes(req *agentv1.EndpointUpRequest) error {
	return n.hostNS.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName(req.GetHostIface())
		if err != nil {
			return err
		}
		for _, a := range req.GetAddresses() {
			_, dst, err := net.ParseCIDR(a)
			if err != nil {
				return err
			}
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}); err != nil {
				return err
			}
		}
		return nil
	})
}

func (n *node) conf(extra string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"cairn","type":"cairn-cni","agentSocket":%q%s}`, n.sock, extra)
}

func (n *node) args(containerID string, pod ns.NetNS, podName string, conf []byte) *skel.CmdArgs {
	netnsPath := ""
	if pod != nil {
		netnsPath = pod.Path()
	}
	return &skel.CmdArgs{
		ContainerID: containerID, IfName: "eth0", Netns: netnsPath,
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + podName, StdinData: conf,
	}
}

// hostLink returns the host namespace's link of that name, or nil.
func (n *node) hostLink(name string) netlink.Link {
	n.t.Helper()
	var link netlink.Link
	err := n.hostNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err == nil {
			link = l
		}
		return nil
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return link
}

func podLink(t *testing.T, pod ns.NetNS, name string) netlink.Link {
	t.Helper()
	var link netlink.Link
	if err := pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err == nil {
			link = l
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return link
}

func TestPrivilegedAddWiresPod(t *testing.T) {
	n := newNode(t)
	pod := nstest.New(t)
	// What the agent sets on a node: host veths' link-local addresses,
	// the source of the host's neighbour solicitations towards pods, are
	// usable at once instead of after duplicate address detection.
	if err := n.hostNS.Do(func(ns.NetNS) error {
		return writeSysctl("net/ipv6/conf/default/accept_dad", "0")
	}); err != nil {
		t.Fatal(err)
	}
	res, err := n.p.Add(context.Background(), n.args("c1", pod, "web-0", n.conf(`,"ipFamilies":["ipv4","ipv6"],"mtu":1400`)))
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	hostVeth := netsetup.HostVethName("default", "web-0", "c1", "eth0")
	if res.Interfaces[0].Name != hostVeth {
		t.Errorf("result host interface %q, want %q", res.Interfaces[0].Name, hostVeth)
	}

	host := n.hostLink(hostVeth)
	if host == nil {
		t.Fatalf("host veth %s missing from the host namespace", hostVeth)
	}
	if host.Type() != "veth" || host.Attrs().Flags&net.FlagUp == 0 || host.Attrs().HardwareAddr.String() != "ee:ee:ee:ee:ee:ee" || host.Attrs().MTU != 1400 {
		t.Errorf("host veth = %s up=%v mac=%s mtu=%d", host.Type(), host.Attrs().Flags&net.FlagUp != 0, host.Attrs().HardwareAddr, host.Attrs().MTU)
	}
	if l := podLink(t, pod, "eth0"); l == nil || l.Attrs().MTU != 1400 {
		t.Errorf("pod eth0 MTU not 1400: %v", l)
	}
	assertPodWired(t, pod, "198.51.100.2/32", "fd00:cafe::2/128", res.Interfaces[1].Mac)
	// IPv6 link-local addresses on both ends are the kernel's (and, for
	// duplicate address detection, the agent's sysctls') business, and are
	// finished asynchronously after the pod end comes up. Under -race and
	// parallel load, a connection opened while the pod's was still
	// tentative failed with ENETUNREACH at its first SYN retransmit; wait
	// for both so the traffic check tests the plugin's wiring only.
	waitLinkLocal(t, n.hostNS, host.Attrs().Index)
	waitLinkLocal(t, pod, podLink(t, pod, "eth0").Attrs().Index)
	assertTraffic(t, n.hostNS, pod)

	var v string
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.p.funcs(context.Background(), &v).Check(n.args("c1", pod, "web-0", n.conf(`,"ipFamilies":["ipv4","ipv6"],"mtu":1400,"prevResult":`+string(out)))); err != nil {
		t.Errorf("CHECK right after ADD: %v", err)
	}
}

// assertPodWired checks the pod side: addresses, gateway routes, default
// routes and permanent gateway neighbours pointing at the host MAC.
func assertPodWired(t *testing.T, pod ns.NetNS, v4, v6, mac string) {
	t.Helper()
	err := pod.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return fmt.Errorf("eth0 missing: %w", err)
		}
		if link.Attrs().Flags&net.FlagUp == 0 || link.Attrs().HardwareAddr.String() != mac {
			t.Errorf("eth0 up=%v mac=%s, want up and %s", link.Attrs().Flags&net.FlagUp != 0, link.Attrs().HardwareAddr, mac)
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		var global []string
		for _, a := range addrs {
			if a.Scope == unix.RT_SCOPE_UNIVERSE {
				global = append(global, a.IPNet.String())
			}
		}
		if want := []string{v4, v6}; !slices.Equal(global, want) {
			t.Errorf("addresses %v, want %v", global, want)
		}
		routes, err := netlink.RouteList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		var got []string
		for _, r := range routes {
			got = append(got, fmt.Sprintf("%s gw=%s scope=%d", routeDst(r), r.Gw, r.Scope))
		}
		for _, want := range []string{
			"169.254.1.1/32 gw=<nil> scope=253", "0.0.0.0/0 gw=169.254.1.1 scope=0",
			"fe80::1/128 gw=<nil> scope=0", "::/0 gw=fe80::1 scope=0",
		} {
			if !slices.Contains(got, want) {
				t.Errorf("route %q missing from %v", want, got)
			}
		}
		neighs, err := netlink.NeighList(link.Attrs().Index, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, gw := range []string{"169.254.1.1", "fe80::1"} {
			if !slices.ContainsFunc(neighs, func(nb netlink.Neigh) bool {
				return nb.IP.String() == gw && nb.State == netlink.NUD_PERMANENT && nb.HardwareAddr.String() == "ee:ee:ee:ee:ee:ee"
			}) {
				t.Errorf("no permanent neighbour %s -> ee:ee:ee:ee:ee:ee in %v", gw, neighs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func routeDst(r netlink.Route) string {
	if r.Dst == nil {
		if r.Family == unix.AF_INET6 {
			return "::/0"
		}
		return "0.0.0.0/0"
	}
	return r.Dst.String()
}

// assertTraffic opens TCP connections from the pod to addresses of the
// host namespace, over the pod's default routes and back over the host
// routes the fake agent installed. Nothing leaves the two namespaces.
func assertTraffic(t *testing.T, hostNS, pod ns.NetNS) {
	t.Helper()
	hostAddrs := []string{"203.0.113.1/32", "fd00:beef::1/128"}
	var listeners []net.Listener
	err := hostNS.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		for _, a := range hostAddrs {
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				return err
			}
			addr.Flags = unix.IFA_F_NODAD // usable at once, not tentative
			if err := netlink.AddrAdd(lo, addr); err != nil {
				return err
			}
			l, err := net.Listen("tcp", net.JoinHostPort(addr.IP.String(), "0"))
			if err != nil {
				return err
			}
			listeners = append(listeners, l)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("host namespace setup: %v", err)
	}
	for _, l := range listeners {
		defer l.Close()
		accepted := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				_, err = c.Write([]byte("ok"))
				c.Close()
			}
			accepted <- err
		}()
		dialStart := time.Now()
		err := pod.Do(func(ns.NetNS) error {
			c, err := net.DialTimeout("tcp", l.Addr().String(), 10*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			buf := make([]byte, 2)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
			return nil
		})
		if err != nil {
			t.Errorf("pod -> host %s: %v", l.Addr(), err)
			continue
		}
		t.Logf("pod -> host %s ok after %v", l.Addr(), time.Since(dialStart))
		if err := <-accepted; err != nil {
			t.Errorf("host accept: %v", err)
		}
	}
}

func writeSysctl(name, value string) error {
	return writeFile("/proc/sys/"+name, value)
}

func TestPrivilegedDelRemovesAll(t *testing.T) {
	n := newNode(t)
	pod := nstest.New(t)
	args := n.args("c1", pod, "web-0", n.conf(""))
	if _, err := n.p.Add(context.Background(), args); err != nil {
		t.Fatalf("Add: %v", err)
	}
	hostVeth := netsetup.HostVethName("default", "web-0", "c1", "eth0")
	for i := range 2 {
		if err := n.p.Del(context.Background(), args); err != nil {
			t.Fatalf("Del #%d: %v", i+1, err)
		}
		if n.hostLink(hostVeth) != nil {
			t.Errorf("Del #%d: host veth %s still there", i+1, hostVeth)
		}
		if podLink(t, pod, "eth0") != nil {
			t.Errorf("Del #%d: eth0 still in the pod", i+1)
		}
		if _, ok := n.agent.Get(agenttest.Key{ContainerID: "c1", IfName: "eth0"}); ok {
			t.Errorf("Del #%d: addresses not released", i+1)
		}
	}
	// No netns at all (runtime lost it): still fine.
	args.Netns = ""
	if err := n.p.Del(context.Background(), args); err != nil {
		t.Errorf("Del without netns: %v", err)
	}
}

func TestPrivilegedDelNetnsGone(t *testing.T) {
	n := newNode(t)
	pod := nstest.New(t)
	args := n.args("c1", pod, "web-0", n.conf(""))
	if _, err := n.p.Add(context.Background(), args); err != nil {
		t.Fatalf("Add: %v", err)
	}
	hostVeth := netsetup.HostVethName("default", "web-0", "c1", "eth0")
	gone := n.watchLinkDeleted(hostVeth)
	nstest.Remove(t, pod)
	if err := n.p.Del(context.Background(), args); err != nil {
		t.Fatalf("Del with the netns gone: %v", err)
	}
	if _, ok := n.agent.Get(agenttest.Key{ContainerID: "c1", IfName: "eth0"}); ok {
		t.Error("addresses not released")
	}
	// The kernel destroys a namespace asynchronously; its veth, and so the
	// host end, go with it.
	select {
	case <-gone:
	case <-time.After(30 * time.Second):
		t.Errorf("host veth %s outlived the pod namespace", hostVeth)
	}
}

// watchLinkDeleted returns a channel closed once the host namespace reports
// that link name deleted.
func (n *node) watchLinkDeleted(name string) <-chan struct{} {
	n.t.Helper()
	h, err := netns.GetFromPath(n.hostNS.Path())
	if err != nil {
		n.t.Fatal(err)
	}
	defer h.Close()
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	n.t.Cleanup(func() { close(done) })
	if err := netlink.LinkSubscribeAt(h, updates, done); err != nil {
		n.t.Fatal(err)
	}
	gone := make(chan struct{})
	go func() {
		for u := range updates {
			if u.Header.Type == unix.RTM_DELLINK && u.Attrs().Name == name {
				close(gone)
				return
			}
		}
	}()
	return gone
}

// waitLinkLocal waits until link index in netns n has a usable (not
// tentative) IPv6 link-local address, watching address events.
func waitLinkLocal(t *testing.T, n ns.NetNS, index int) {
	t.Helper()
	h, err := netns.GetFromPath(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	updates := make(chan netlink.AddrUpdate, 16)
	done := make(chan struct{})
	defer close(done)
	opts := netlink.AddrSubscribeOptions{Namespace: &h, ListExisting: true}
	if err := netlink.AddrSubscribeWithOptions(updates, done, opts); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case u := <-updates:
			if u.NewAddr && u.LinkIndex == index && u.LinkAddress.IP.IsLinkLocalUnicast() && u.Flags&unix.IFA_F_TENTATIVE == 0 {
				return
			}
		case <-timeout:
			t.Fatalf("link %d in %s got no usable IPv6 link-local address", index, n.Path())
		}
	}
}

func TestPrivilegedAddOnExistingInterfaceFails(t *testing.T) {
	n := newNode(t)
	pod := nstest.New(t)
	if err := pod.Do(func(ns.NetNS) error {
		// Another plugin's interface: a veth whose peer is in the pod too.
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "other0"})
	}); err != nil {
		t.Fatal(err)
	}
	args := n.args("c1", pod, "web-0", n.conf(""))
	_, err := n.p.Add(context.Background(), args)
	if cniCode(err) != CodeInterfaceExists {
		t.Fatalf("Add error = %v (code %d), want code %d", err, cniCode(err), CodeInterfaceExists)
	}
	if slices.Contains(n.agent.Calls(), "Allocate") {
		t.Error("addresses allocated for an ADD that could not succeed")
	}
	if n.hostLink(netsetup.HostVethName("default", "web-0", "c1", "eth0")) != nil {
		t.Error("host veth created")
	}
	// The runtime follows a failed ADD with DEL: it must not delete the
	// interface that was there before.
	if err := n.p.Del(context.Background(), args); err != nil {
		t.Fatalf("Del: %v", err)
	}
	if podLink(t, pod, "eth0") == nil || podLink(t, pod, "other0") == nil {
		t.Error("DEL deleted an interface Cairn did not create")
	}
}

func TestPrivilegedCheckDetectsRemovedRoute(t *testing.T) {
	n := newNode(t)
	pod := nstest.New(t)
	res, err := n.p.Add(context.Background(), n.args("c1", pod, "web-0", n.conf("")))
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	prev, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	checkArgs := n.args("c1", pod, "web-0", n.conf(`,"prevResult":`+string(prev)))
	if err := n.p.Check(context.Background(), checkArgs); err != nil {
		t.Fatalf("Check before any change: %v", err)
	}
	if err := pod.Do(func(ns.NetNS) error {
		return netlink.RouteDel(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: net.IPv4(169, 254, 1, 1)})
	}); err != nil {
		t.Fatal(err)
	}
	err = n.p.Check(context.Background(), checkArgs)
	if cniCode(err) != CodeCheckFailed || !strings.Contains(err.Error(), "route missing: 0.0.0.0/0 via 169.254.1.1") {
		t.Errorf("Check error = %v, want the missing default route", err)
	}
}

func TestPrivilegedRollbackWhenEndpointUpFails(t *testing.T) {
	n := newNode(t)
	pod := nstest.New(t)
	n.agent.Lock()
	n.agent.Fail["EndpointUp"] = status.Error(codes.Internal, "route install failed")
	n.agent.Unlock()
	_, err := n.p.Add(context.Background(), n.args("c1", pod, "web-0", n.conf("")))
	if err == nil || !strings.Contains(err.Error(), "route install failed") {
		t.Fatalf("Add error = %v, want the EndpointUp failure", err)
	}
	if n.hostLink(netsetup.HostVethName("default", "web-0", "c1", "eth0")) != nil {
		t.Error("host veth left behind")
	}
	if podLink(t, pod, "eth0") != nil {
		t.Error("pod interface left behind")
	}
	if n.agent.Len() != 0 {
		t.Error("addresses not released")
	}
	if calls := n.agent.Calls(); !slices.Equal(calls, []string{"Allocate", "EndpointUp", "Release"}) {
		t.Errorf("agent calls = %v", calls)
	}
}

func TestPrivilegedNewSandboxReplacesStaleVeth(t *testing.T) {
	n := newNode(t)
	oldPod, newPod := nstest.New(t), nstest.New(t)
	oldArgs := n.args("old", oldPod, "web-0", n.conf(""))
	if _, err := n.p.Add(context.Background(), oldArgs); err != nil {
		t.Fatalf("Add old sandbox: %v", err)
	}
	// The old sandbox's DEL never came; the pod's new sandbox gets the same
	// host veth name.
	newArgs := n.args("new", newPod, "web-0", n.conf(""))
	if _, err := n.p.Add(context.Background(), newArgs); err != nil {
		t.Fatalf("Add new sandbox: %v", err)
	}
	if podLink(t, oldPod, "eth0") != nil {
		t.Error("old sandbox still wired")
	}
	// The late DEL of the old sandbox must not touch the new one.
	if err := n.p.Del(context.Background(), oldArgs); err != nil {
		t.Fatalf("Del old sandbox: %v", err)
	}
	if podLink(t, newPod, "eth0") == nil || n.hostLink(netsetup.HostVethName("default", "web-0", "new", "eth0")) == nil {
		t.Error("a late DEL of the old sandbox broke the new one")
	}
	if _, ok := n.agent.Get(agenttest.Key{ContainerID: "new", IfName: "eth0"}); !ok {
		t.Error("the new sandbox's addresses were released")
	}
}

func TestPrivilegedCNIResultIsValidJSON(t *testing.T) {
	n := newNode(t)
	pod := nstest.New(t)
	var out strings.Builder
	n.p.stdout = &out
	var v string
	if err := n.p.funcs(context.Background(), &v).Add(n.args("c1", pod, "web-0", n.conf(""))); err != nil {
		t.Fatalf("Add: %v", err)
	}
	res, err := current.NewResult([]byte(out.String()))
	if err != nil {
		t.Fatalf("result does not parse: %v\n%s", err, out.String())
	}
	r := res.(*current.Result)
	if len(r.IPs) != 1 || r.IPs[0].Address.String() != "198.51.100.2/32" || *r.IPs[0].Interface != 1 {
		t.Errorf("result = %s", out.String())
	}
}

func TestPrivilegedAddRefusesHostNetns(t *testing.T) {
	n := newNode(t)
	// The runtime names the host namespace itself as the pod's.
	_, err := n.p.Add(context.Background(), n.args("c1", n.hostNS, "web-0", n.conf("")))
	if cniCode(err) != types.ErrInvalidNetNS {
		t.Fatalf("Add error = %v (code %d), want code %d", err, cniCode(err), types.ErrInvalidNetNS)
	}
	if len(n.agent.Calls()) != 0 {
		t.Errorf("agent called: %v", n.agent.Calls())
	}
}
