package plugin

import (
	"bytes"
	"fmt"
	"net"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

// expected is what prevResult says this plugin made.
type expected struct {
	podMAC    net.HardwareAddr // nil when prevResult gives none
	hostMAC   net.HardwareAddr
	mtu       int
	addresses []*net.IPNet
	gateways  []net.IP
	routes    []*types.Route
}

// expectedFrom extracts this attachment's part of prevResult. A nil
// expected comes with the problems that prevented reading it.
func expectedFrom(prev *current.Result, r *request) (*expected, []string) {
	podIdx, hostIdx := -1, -1
	for i, iface := range prev.Interfaces {
		switch {
		case iface.Name == r.ifName && iface.Sandbox == r.netns:
			podIdx = i
		case iface.Name == r.hostVeth && iface.Sandbox == "":
			hostIdx = i
		}
	}
	var problems []string
	if podIdx < 0 {
		problems = append(problems, fmt.Sprintf("prevResult has no interface %s in %s", r.ifName, r.netns))
	}
	if hostIdx < 0 {
		problems = append(problems, fmt.Sprintf("prevResult has no host interface %s", r.hostVeth))
	}
	if problems != nil {
		return nil, problems
	}
	want := &expected{mtu: prev.Interfaces[podIdx].Mtu, routes: prev.Routes}
	var err error
	if want.podMAC, err = parseOptionalMAC(prev.Interfaces[podIdx].Mac); err != nil {
		problems = append(problems, fmt.Sprintf("prevResult pod MAC: %v", err))
	}
	if want.hostMAC, err = parseOptionalMAC(prev.Interfaces[hostIdx].Mac); err != nil {
		problems = append(problems, fmt.Sprintf("prevResult host MAC: %v", err))
	}
	for _, ipc := range prev.IPs {
		if ipc.Interface == nil || *ipc.Interface != podIdx {
			continue
		}
		addr := ipc.Address
		want.addresses = append(want.addresses, &addr)
		if ipc.Gateway != nil {
			want.gateways = append(want.gateways, ipc.Gateway)
		}
	}
	if len(want.addresses) == 0 {
		problems = append(problems, "prevResult has no address on "+r.ifName)
	}
	return want, problems
}

func parseOptionalMAC(s string) (net.HardwareAddr, error) {
	if s == "" {
		return nil, nil
	}
	return net.ParseMAC(s)
}

// comparePod lists every difference between prevResult and the pod side.
func comparePod(want *expected, pod netsetup.PodState) []string {
	var problems []string
	if !pod.IsVeth {
		problems = append(problems, "pod interface is not a veth")
	}
	if !pod.Up {
		problems = append(problems, "pod interface is down")
	}
	if want.podMAC != nil && !bytes.Equal(want.podMAC, pod.MAC) {
		problems = append(problems, fmt.Sprintf("pod MAC is %s, want %s", pod.MAC, want.podMAC))
	}
	if want.mtu != 0 && want.mtu != pod.MTU {
		problems = append(problems, fmt.Sprintf("pod MTU is %d, want %d", pod.MTU, want.mtu))
	}
	problems = append(problems, compareAddresses(want.addresses, pod.Addresses)...)
	for _, rt := range want.routes {
		if !slices.ContainsFunc(pod.Routes, func(got netsetup.Route) bool { return routeMatches(rt, got) }) {
			problems = append(problems, "route missing: "+routeString(rt))
		}
	}
	for _, gw := range want.gateways {
		if !slices.ContainsFunc(pod.Neighbors, func(n netsetup.Neighbor) bool {
			return n.IP.Equal(gw) && n.Permanent && (want.hostMAC == nil || bytes.Equal(n.MAC, want.hostMAC))
		}) {
			problems = append(problems, fmt.Sprintf("no permanent neighbour %s at %s", gw, want.hostMAC))
		}
	}
	return problems
}

// compareAddresses wants exactly the prevResult addresses, no more.
func compareAddresses(want, got []*net.IPNet) []string {
	var problems []string
	has := func(list []*net.IPNet, a *net.IPNet) bool {
		return slices.ContainsFunc(list, func(b *net.IPNet) bool { return a.IP.Equal(b.IP) && bytes.Equal(a.Mask, b.Mask) })
	}
	for _, a := range want {
		if !has(got, a) {
			problems = append(problems, "address missing: "+a.String())
		}
	}
	for _, a := range got {
		if !has(want, a) {
			problems = append(problems, "unexpected address: "+a.String())
		}
	}
	return problems
}

func routeMatches(want *types.Route, got netsetup.Route) bool {
	if got.Dst == nil || !want.Dst.IP.Equal(got.Dst.IP) || !bytes.Equal(normMask(want.Dst), normMask(*got.Dst)) {
		return false
	}
	if want.GW != nil && !want.GW.Equal(got.Gw) {
		return false
	}
	if want.Scope != nil && (*want.Scope == scopeLink) != got.LinkScope {
		return false
	}
	return true
}

// normMask makes a v4 mask 4 bytes long whatever form it was parsed in.
func normMask(n net.IPNet) net.IPMask {
	ones, bits := n.Mask.Size()
	if n.IP.To4() != nil && bits == 128 {
		return net.CIDRMask(ones-96, 32)
	}
	return net.CIDRMask(ones, bits)
}

func routeString(rt *types.Route) string {
	if rt.GW != nil {
		return rt.Dst.String() + " via " + rt.GW.String()
	}
	return rt.Dst.String()
}

// compareHost lists every difference on the host side.
func compareHost(want *expected, host netsetup.HostState, pod netsetup.PodState) []string {
	var problems []string
	if !host.IsVeth {
		problems = append(problems, "host interface is not a veth")
	}
	if !host.Up {
		problems = append(problems, "host veth is down")
	}
	if want.hostMAC != nil && !bytes.Equal(want.hostMAC, host.MAC) {
		problems = append(problems, fmt.Sprintf("host veth MAC is %s, want %s", host.MAC, want.hostMAC))
	}
	if host.PeerIndex != pod.Index {
		problems = append(problems, "host veth is not the pod interface's peer")
	}
	return problems
}
