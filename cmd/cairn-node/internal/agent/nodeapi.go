package agent

import (
	"context"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/ipam"
)

// nodeAPI is the agent's gRPC API: the plugin's calls, served by
// cniServer, and NodeStatus for cairnctl on the node.
type nodeAPI struct {
	*cniServer
	describe func(context.Context) *agentv1.NodeStatusResponse
}

// NodeStatus answers cairnctl with the node's state as of now.
func (n nodeAPI) NodeStatus(ctx context.Context, _ *agentv1.NodeStatusRequest) (*agentv1.NodeStatusResponse, error) {
	return n.describe(ctx), nil
}

// api is the gRPC API served on the agent socket.
func (a *agent) api() nodeAPI { return nodeAPI{cniServer: a.cni, describe: a.describe} }

// describe gathers the node's state from the controller's last sync, the
// speaker, felix, the caches and the endpoint records.
func (a *agent) describe(context.Context) *agentv1.NodeStatusResponse {
	last := a.ctrl.lastResult()
	out := &agentv1.NodeStatusResponse{Node: a.opts.NodeName, AgentVersion: a.opts.Version,
		NodeAddress: a.self.Addr.String(), Asn: a.self.ASN}
	out.Ready, out.ReadyReason = a.cni.ready()
	if last.err != nil {
		out.LastError = last.err.Error()
	}
	out.Sessions = sessionsOf(a.status.speaker.PeerStates())
	out.Blocks = prefixStrings(last.blocks)
	for _, ad := range last.announced {
		out.Announced = append(out.Announced, ad.Prefix.String())
	}
	var refused map[netip.Prefix]string
	if a.dataplane != nil {
		if rr, ok := a.dataplane.(interface {
			RefusedRoutes() map[netip.Prefix]string
		}); ok {
			refused = rr.RefusedRoutes()
		}
		if st, ok := a.dataplane.(interface{ Stats() felix.Stats }); ok {
			s := st.Stats()
			out.Routes = &agentv1.RouteCounts{Endpoint: int64(s.EndpointRoutes), Blackhole: int64(s.BlackholeRoutes), Learned: int64(s.LearnedRoutes)}
		}
	}
	out.Learned = learnedOf(a.learned.get(), a.learned.getPaths(), refused)
	imports, _ := a.status.speaker.RefusedPaths()
	out.Learned = append(out.Learned, importRefusedOf(imports)...)
	if out.Routes == nil {
		out.Routes = &agentv1.RouteCounts{}
	}
	out.Routes.Refused = int64(len(refused))
	for _, r := range a.endpoints.all() {
		out.Endpoints = append(out.Endpoints, &agentv1.Endpoint{ContainerId: r.ContainerID, Ifname: r.IfName, HostIface: r.HostIface,
			Addresses: prefixStrings(r.Addresses), PodNamespace: r.Namespace, PodName: r.Pod})
	}
	out.Borrowed, out.ImportFilter = a.borrowedAndFilter()
	return out
}

// borrowedAndFilter reads, from the caches, the addresses this node
// borrowed and the import filter the controller gives the speaker.
func (a *agent) borrowedAndFilter() (borrowed, filter []string) {
	blocks, err := a.inf.blockLister.List(labels.Everything())
	if err != nil {
		return nil, nil
	}
	affinities, err := a.inf.affinityLister.List(labels.Everything())
	if err != nil {
		return nil, nil
	}
	pools, err := a.inf.poolLister.List(labels.Everything())
	if err != nil {
		return nil, nil
	}
	_, b := ipam.NodeRoutes(a.opts.NodeName, blocks, affinities)
	var cidrs []netip.Prefix
	for _, bl := range blocks {
		if p, err := ipam.BlockPrefix(bl); err == nil {
			cidrs = append(cidrs, p)
		}
	}
	return prefixStrings(b), prefixStrings(peering.ImportFilter(deref(pools), cidrs))
}

func sessionsOf(peers []speaker.PeerState) []*agentv1.BGPSession {
	out := make([]*agentv1.BGPSession, 0, len(peers))
	for _, p := range peers {
		out = append(out, &agentv1.BGPSession{Name: p.Name, Address: p.Address.String(), Asn: p.ASN, State: string(p.State),
			UptimeSeconds: int64(p.Uptime.Seconds()), Received: p.Received, Accepted: p.Accepted, Advertised: p.Advertised,
			LastError: p.LastError, Flaps: p.Flaps})
	}
	return out
}

// importRefusedOf lists the paths the speaker's import rules refuse as
// learned routes that are not installed, after the learned ones.
func importRefusedOf(paths []speaker.RefusedPath) []*agentv1.LearnedRoute {
	out := make([]*agentv1.LearnedRoute, 0, len(paths))
	for _, p := range paths {
		out = append(out, &agentv1.LearnedRoute{Prefix: p.Prefix.String(), NextHops: []string{p.NextHop.String()},
			Peers: []string{p.Peer.String()}, RefusedReason: p.Reason})
	}
	return out
}

// learnedOf lists every learned route with the peers its paths came from
// and whether felix installed it.
func learnedOf(routes []felix.LearnedRoute, paths []speaker.Path, refused map[netip.Prefix]string) []*agentv1.LearnedRoute {
	from := map[netip.Prefix][]string{}
	for _, p := range paths {
		if s := p.Peer.String(); !slices.Contains(from[p.Prefix], s) {
			from[p.Prefix] = append(from[p.Prefix], s)
		}
	}
	out := make([]*agentv1.LearnedRoute, 0, len(routes))
	for _, r := range routes {
		lr := &agentv1.LearnedRoute{Prefix: r.Prefix.String(), Peers: from[r.Prefix], Installed: true}
		for _, h := range r.NextHops {
			lr.NextHops = append(lr.NextHops, h.String())
		}
		if why, ok := refused[r.Prefix]; ok {
			lr.Installed, lr.RefusedReason = false, why
		}
		out = append(out, lr)
	}
	return out
}
