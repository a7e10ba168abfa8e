package view

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Cluster is what the API server says about addresses: pools, blocks and
// who holds each allocation. The zero value means it could not be read.
type Cluster struct {
	Known  bool
	Pools  []Pool
	Blocks []Block
}

// Pool is an IP pool's name and CIDR.
type Pool struct {
	Name string
	CIDR netip.Prefix
}

// Block is an IPAM block, the node it is affine to and its allocations.
type Block struct {
	CIDR        netip.Prefix
	Node        string
	Allocations []Allocation
}

// Allocation is one allocated address and whose pod holds it.
type Allocation struct {
	Addr netip.Addr
	Node string
	Pod  string // namespace/name
}

// Verdicts of an explanation.
const (
	VerdictLocalPod   = "local-pod"       // a pod on this node: host route to its veth
	VerdictOwnedBlock = "owned-block"     // a block this node owns and announces
	VerdictBlackholed = "blackholed"      // an unallocated address of an owned block
	VerdictInstalled  = "installed"       // learned from peers and in the kernel
	VerdictStale      = "stale"           // in the kernel, but every peer it came from is down: kept for graceful restart only
	VerdictRefused    = "refused"         // learned, not installed: felix says why
	VerdictFiltered   = "import-filtered" // outside every pool: never accepted from a peer
	VerdictNotLearned = "not-learned"     // accepted if sent, but no peer sends it
)

// Explanation says how a node routes one prefix, and why.
type Explanation struct {
	Target    string `json:"target"`
	Prefix    string `json:"prefix"`
	Node      string `json:"node"`
	Pod       string `json:"pod,omitempty"`
	PodNode   string `json:"podNode,omitempty"`
	Pool      string `json:"pool,omitempty"`
	Block     string `json:"block,omitempty"`
	BlockNode string `json:"blockNode,omitempty"`
	Verdict   string `json:"verdict"`
	// Announced is the prefix this node advertises that covers the target.
	Announced string   `json:"announced,omitempty"`
	Learned   *Learned `json:"learned,omitempty"`
	Reasons   []string `json:"reasons"`
}

// Routed reports whether the node has a working route for the target:
// what "route explain" exits 0 for.
func (e Explanation) Routed() bool {
	switch e.Verdict {
	case VerdictLocalPod, VerdictOwnedBlock, VerdictInstalled:
		return true
	}
	return false
}

// Explain says how node n routes target, with what the cluster knows.
// target is a prefix (an address is its /32 or /128); pod names the pod
// it was asked for, if any.
func Explain(n Node, c Cluster, target netip.Prefix, asked, pod string) Explanation {
	target = target.Masked()
	e := Explanation{Target: asked, Prefix: target.String(), Node: n.Node, Pod: pod, Reasons: []string{}}
	alloc := e.locate(c, target)
	if a := covering(n.Announced, target); a.IsValid() {
		e.Announced = a.String()
		e.say("announced by this node as %s to its %d BGP peers", a, len(n.Sessions))
	}
	switch {
	case e.localPod(n, alloc, target):
	case e.ownBlock(n, alloc, target):
	case e.learned(n, target):
	case !inFilter(n, c, target):
		e.Verdict = VerdictFiltered
		e.say("outside every IP pool: the import filter refuses it from every peer, whatever they send")
		for _, s := range n.Sessions {
			if s.PrefixesIn > s.Accepted {
				e.say("the import filter refused %d of the %d prefixes %s sent", s.PrefixesIn-s.Accepted, s.PrefixesIn, s.Peer)
			}
		}
	default:
		e.Verdict = VerdictNotLearned
		e.notLearned(n, alloc)
	}
	return e
}

func (e *Explanation) say(format string, args ...any) {
	e.Reasons = append(e.Reasons, fmt.Sprintf(format, args...))
}

// locate fills in the pool, the block and, for an address, the pod
// holding it.
func (e *Explanation) locate(c Cluster, target netip.Prefix) *Allocation {
	if !c.Known {
		return nil
	}
	for _, p := range c.Pools {
		if p.CIDR.Bits() <= target.Bits() && p.CIDR.Contains(target.Addr()) {
			e.Pool = p.Name
			break
		}
	}
	for _, b := range c.Blocks {
		if b.CIDR.Bits() > target.Bits() || !b.CIDR.Contains(target.Addr()) {
			continue
		}
		e.Block, e.BlockNode = b.CIDR.String(), b.Node
		if target.Bits() != target.Addr().BitLen() {
			return nil
		}
		for i, a := range b.Allocations {
			if a.Addr == target.Addr() {
				if e.Pod == "" {
					e.Pod = a.Pod
				}
				e.PodNode = a.Node
				return &b.Allocations[i]
			}
		}
	}
	return nil
}

// localPod: an address of a pod on this node.
func (e *Explanation) localPod(n Node, alloc *Allocation, target netip.Prefix) bool {
	for _, ep := range n.Endpoints {
		if slices.Contains(prefixes(ep.Addresses), target) {
			e.Verdict = VerdictLocalPod
			e.say("a pod on this node (%s): host route %s dev %s, installed", orUnknown(ep.Pod), target, ep.HostIface)
			return true
		}
	}
	if alloc != nil && alloc.Node == n.Node {
		e.Verdict = VerdictLocalPod
		if n.Source == SourceAgent {
			// The agent has no endpoint for an address IPAM gave one of
			// its pods: the pod's ADD never finished, or its DEL did not
			// release it.
			e.Verdict = VerdictBlackholed
			e.say("IPAM gave it to %s on this node, but the agent has no endpoint for it: no host route", orUnknown(alloc.Pod))
			return true
		}
		e.say("a pod on this node (%s, per IPAM): the agent routes it to the pod's veth (ask the node's agent socket for the host route)", orUnknown(alloc.Pod))
		return true
	}
	return false
}

// ownBlock: inside a block this node owns.
func (e *Explanation) ownBlock(n Node, alloc *Allocation, target netip.Prefix) bool {
	b := covering(n.Blocks, target)
	if !b.IsValid() {
		return false
	}
	e.Block, e.BlockNode = b.String(), n.Node
	if target.Bits() < target.Addr().BitLen() {
		e.Verdict = VerdictOwnedBlock
		e.say("block %s is this node's: announced, with a blackhole for its unallocated addresses", b)
		return true
	}
	if alloc != nil && alloc.Node != "" && alloc.Node != n.Node {
		// Borrowed by another node: that node announces the /32.
		e.say("an address of this node's block %s borrowed by %s, which announces it as a /32", b, alloc.Node)
		return e.learned(n, target) || e.missing(n, fmt.Sprintf("the /32 from %s is not learned", alloc.Node))
	}
	if e.learned(n, target) {
		return true // borrowed, as far as the peers say
	}
	e.Verdict = VerdictBlackholed
	e.say("in this node's block %s, but no pod on this node holds it: dropped by the block's blackhole route", b)
	return true
}

// missing records a borrowed address whose /32 is not learned.
func (e *Explanation) missing(n Node, why string) bool {
	e.Verdict = VerdictNotLearned
	e.say("%s", why)
	e.sessionsDown(n)
	return true
}

// learned: the most specific learned route covering the target.
func (e *Explanation) learned(n Node, target netip.Prefix) bool {
	// The kernel routes by the most specific installed route; refused
	// paths more specific than it (a peer's hijack attempt, a route felix
	// would not install) are said too.
	installed := mostSpecific(n.Learned, target, func(l Learned) bool { return l.Installed })
	refusedAbove := -1
	if installed != nil {
		refusedAbove = netip.MustParsePrefix(installed.Prefix).Bits()
	}
	var refused []Learned
	for _, l := range n.Learned {
		if p, err := netip.ParsePrefix(l.Prefix); err == nil && !l.Installed && p.Bits() <= target.Bits() && p.Contains(target.Addr()) && p.Bits() >= refusedAbove {
			refused = append(refused, l)
		}
	}
	if installed == nil && len(refused) == 0 {
		return false
	}
	if installed == nil {
		best := mostSpecific(refused, target, func(Learned) bool { return true })
		e.Learned = best
		e.Verdict = VerdictRefused
		e.say("learned as %s from %s, next hop %s: not installed: %s", best.Prefix, orUnknown(strings.Join(peerNames(n, best.Peers), ", ")), strings.Join(best.NextHops, ", "), best.Reason)
		for _, l := range refused {
			if l.Prefix != best.Prefix || !slices.Equal(l.Peers, best.Peers) || !slices.Equal(l.NextHops, best.NextHops) {
				e.say("also %s from %s, next hop %s: not installed: %s", l.Prefix, orUnknown(strings.Join(peerNames(n, l.Peers), ", ")), strings.Join(l.NextHops, ", "), l.Reason)
			}
		}
		return true
	}
	e.Learned = installed
	e.Verdict = VerdictInstalled
	e.say("learned as %s from %s, next hop %s: installed", installed.Prefix, orUnknown(strings.Join(peerNames(n, installed.Peers), ", ")), strings.Join(installed.NextHops, ", "))
	for _, l := range refused {
		e.say("%s from %s, next hop %s: refused: %s", l.Prefix, orUnknown(strings.Join(peerNames(n, l.Peers), ", ")), strings.Join(l.NextHops, ", "), l.Reason)
	}
	if down := downPeers(n, installed.Peers); len(down) > 0 && len(down) == len(installed.Peers) {
		e.Verdict = VerdictStale
		for _, s := range down {
			e.say("but the session to %s (%s) is %s: %s", s.Peer, s.Address, s.State, orUnknown(s.LastError))
		}
		e.say("its paths are kept as stale (graceful restart) until the session is back or the restart time ends")
	}
	return true
}

// mostSpecific is the longest of ls, among those ok accepts, that
// contains target; the first of equals.
func mostSpecific(ls []Learned, target netip.Prefix, ok func(Learned) bool) *Learned {
	var best *Learned
	bestBits := -1
	for i, l := range ls {
		p, err := netip.ParsePrefix(l.Prefix)
		if err != nil || !ok(l) || p.Bits() > target.Bits() || !p.Contains(target.Addr()) || p.Bits() <= bestBits {
			continue
		}
		best, bestBits = &ls[i], p.Bits()
	}
	return best
}

// notLearned explains a prefix the import filter allows but no peer
// sends: who should announce it, and which sessions are down.
func (e *Explanation) notLearned(n Node, alloc *Allocation) {
	switch {
	case alloc != nil && alloc.Node != "" && alloc.Node != e.BlockNode:
		e.say("%s on %s borrowed it from %s's block: %s should announce it as a /32", orUnknown(alloc.Pod), alloc.Node, orUnknown(e.BlockNode), alloc.Node)
	case e.BlockNode != "":
		e.say("in block %s of node %s, which should announce it", e.Block, e.BlockNode)
	case e.Block != "":
		e.say("in block %s, which no node owns: nobody announces it", e.Block)
	default:
		e.say("in no IPAM block: no node announces it")
	}
	e.say("no peer sent it")
	e.sessionsDown(n)
	if !n.LearnedComplete {
		e.say("(the status object lists only part of the learned routes: run this on the node for the agent's full list)")
	}
}

// sessionsDown lists the sessions that could have brought a route but are
// not Established, with their last error (a max-prefix shutdown says so).
func (e *Explanation) sessionsDown(n Node) {
	for _, s := range n.Sessions {
		if s.Established() {
			continue
		}
		why := s.LastError
		if why == "" {
			why = "no error recorded"
		}
		e.say("session to %s (%s) is %s: %s", s.Peer, s.Address, s.State, why)
	}
}

// inFilter reports whether the node would accept target from a peer.
func inFilter(n Node, c Cluster, target netip.Prefix) bool {
	if len(n.ImportFilter) > 0 {
		return covering(n.ImportFilter, target).IsValid()
	}
	if !c.Known {
		return true // cannot tell: say what else is known
	}
	for _, p := range c.Pools {
		if p.CIDR.Bits() <= target.Bits() && p.CIDR.Contains(target.Addr()) {
			return true
		}
	}
	for _, b := range c.Blocks {
		if b.CIDR.Bits() <= target.Bits() && b.CIDR.Contains(target.Addr()) {
			return true
		}
	}
	return false
}

// covering is the most specific of ss that contains target.
func covering(ss []string, target netip.Prefix) netip.Prefix {
	var best netip.Prefix
	for _, p := range prefixes(ss) {
		if p.Bits() <= target.Bits() && p.Contains(target.Addr()) && (!best.IsValid() || p.Bits() > best.Bits()) {
			best = p
		}
	}
	return best
}

// downPeers are the sessions, among the peer addresses given, that are
// not Established.
func downPeers(n Node, addrs []string) []Session {
	var out []Session
	for _, s := range n.Sessions {
		if slices.Contains(addrs, s.Address) && !s.Established() {
			out = append(out, s)
		}
	}
	return out
}

// peerNames turns peer addresses into session names where known.
func peerNames(n Node, addrs []string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		name := a
		for _, s := range n.Sessions {
			if s.Address == a && s.Peer != a {
				name = s.Peer + " (" + a + ")"
			}
		}
		out = append(out, name)
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
