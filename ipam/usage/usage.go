// Package usage answers "how full is each IP pool, and on which nodes":
// pure functions of the pools and blocks, for the agent's metrics and for
// cairnctl. It reads nothing and writes nothing.
package usage

import (
	"cmp"
	"math"
	"net/netip"
	"slices"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/pools"
)

// Pool is one pool's usage.
type Pool struct {
	Name string       `json:"name"`
	CIDR netip.Prefix `json:"cidr"`
	// BlockBits is the prefix length of the pool's blocks.
	BlockBits int `json:"blockBits"`
	// Size is the number of addresses in the pool (a float: an IPv6 pool
	// holds more than any integer type does).
	Size float64 `json:"size"`
	// Blocks is how many blocks exist; BlockAddresses how many addresses
	// they hold; Allocated how many of those are in use.
	Blocks         int `json:"blocks"`
	BlockAddresses int `json:"blockAddresses"`
	Allocated      int `json:"allocated"`
	// Nodes is the pool's usage by node, by name.
	Nodes []Node `json:"nodes,omitempty"`
}

// Utilisation is the fraction of the pool's addresses in use.
func (p Pool) Utilisation() float64 {
	if p.Size == 0 {
		return 0
	}
	return float64(p.Allocated) / p.Size
}

// Node is one node's part of a pool.
type Node struct {
	Name string `json:"name"`
	// Blocks the node is affine to, and the addresses they hold.
	Blocks         int `json:"blocks"`
	BlockAddresses int `json:"blockAddresses"`
	// Allocated counts the node's pods' addresses, wherever they are;
	// Borrowed those of them in other nodes' blocks; Lent the addresses of
	// this node's blocks held by other nodes' pods.
	Allocated int `json:"allocated"`
	Borrowed  int `json:"borrowed"`
	Lent      int `json:"lent"`
}

// Compute returns the usage of every pool, by name. A block is counted in
// the pool it names, else in the pool whose CIDR holds it; a block of no
// known pool (its pool deleted while pods run) is counted nowhere.
func Compute(ips []*v1.IPPool, blocks []*v1.IPAMBlock) []Pool {
	parsed := pools.Analyze(ips)
	out := make([]Pool, 0, len(parsed))
	index := map[string]int{}
	nodes := make([]map[string]*Node, len(parsed))
	for i, p := range parsed {
		index[p.Name] = i
		nodes[i] = map[string]*Node{}
		out = append(out, Pool{Name: p.Name, CIDR: p.CIDR, BlockBits: p.BlockBits, Size: size(p.CIDR)})
	}
	for _, b := range blocks {
		prefix, err := ipam.BlockPrefix(b)
		if err != nil || b.Spec.Deleted {
			continue
		}
		i, ok := index[b.Spec.Pool]
		if !ok {
			p, found := pools.Containing(parsed, prefix)
			if !found {
				continue
			}
			i = index[p.Name]
		}
		addBlock(&out[i], nodes[i], b, prefix)
	}
	for i := range out {
		for _, n := range nodes[i] {
			out[i].Nodes = append(out[i].Nodes, *n)
		}
		slices.SortFunc(out[i].Nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(out, func(a, b Pool) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func addBlock(p *Pool, nodes map[string]*Node, b *v1.IPAMBlock, prefix netip.Prefix) {
	node := func(name string) *Node {
		n := nodes[name]
		if n == nil {
			n = &Node{Name: name}
			nodes[name] = n
		}
		return n
	}
	capacity := ipam.BlockCapacity(prefix)
	owner := ipam.AffinityNode(b.Spec.Affinity)
	p.Blocks++
	p.BlockAddresses += capacity
	p.Allocated += len(b.Spec.Allocations)
	if owner != "" {
		o := node(owner)
		o.Blocks++
		o.BlockAddresses += capacity
	}
	for _, a := range b.Spec.Allocations {
		holder := cmp.Or(a.Node, owner)
		if holder == "" {
			continue
		}
		h := node(holder)
		h.Allocated++
		if owner != "" && holder != owner {
			h.Borrowed++
			nodes[owner].Lent++
		}
	}
}

// size is the number of addresses in p.
func size(p netip.Prefix) float64 {
	if !p.IsValid() {
		return 0
	}
	return math.Exp2(float64(p.Addr().BitLen() - p.Bits()))
}

// ForNode returns the pools in which node has blocks or addresses, each
// with only that node's entry in Nodes.
func ForNode(all []Pool, node string) []Pool {
	var out []Pool
	for _, p := range all {
		i := slices.IndexFunc(p.Nodes, func(n Node) bool { return n.Name == node })
		if i < 0 {
			continue
		}
		p.Nodes = []Node{p.Nodes[i]}
		out = append(out, p)
	}
	return out
}
