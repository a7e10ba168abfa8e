package usage

import (
	"net/netip"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

func pool(name, cidr string) *v1.IPPool {
	return &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.IPPoolSpec{CIDR: cidr}}
}

// block makes a block affine to owner (empty: none) whose allocations
// belong to the nodes listed, one address each.
func block(cidr, poolName, owner string, holders ...string) *v1.IPAMBlock {
	b := &v1.IPAMBlock{Spec: v1.IPAMBlockSpec{CIDR: cidr, Pool: poolName}}
	if owner != "" {
		b.Spec.Affinity = "node:" + owner
	}
	for i, h := range holders {
		b.Spec.Allocations = append(b.Spec.Allocations, v1.BlockAllocation{Ordinal: int32(i), Handle: "h", Node: h})
	}
	return b
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name   string
		pools  []*v1.IPPool
		blocks []*v1.IPAMBlock
		want   []Pool
	}{
		{
			name:  "empty pool",
			pools: []*v1.IPPool{pool("p", "10.0.0.0/24")},
			want:  []Pool{{Name: "p", CIDR: pfx("10.0.0.0/24"), BlockBits: 26, Size: 256}},
		},
		{
			name:  "blocks of two nodes, one borrowing from the other",
			pools: []*v1.IPPool{pool("p", "10.0.0.0/24")},
			blocks: []*v1.IPAMBlock{
				block("10.0.0.0/26", "p", "n1", "n1", "n1", "n2"),
				block("10.0.0.64/26", "p", "n2", "n2"),
			},
			want: []Pool{{Name: "p", CIDR: pfx("10.0.0.0/24"), BlockBits: 26, Size: 256, Blocks: 2, BlockAddresses: 128, Allocated: 4,
				Nodes: []Node{
					{Name: "n1", Blocks: 1, BlockAddresses: 64, Allocated: 2, Lent: 1},
					{Name: "n2", Blocks: 1, BlockAddresses: 64, Allocated: 2, Borrowed: 1},
				}}},
		},
		{
			name:  "a block found by CIDR when it names no pool; deleted and orphaned blocks are not counted",
			pools: []*v1.IPPool{pool("a", "10.0.0.0/24"), pool("b", "10.1.0.0/24")},
			blocks: []*v1.IPAMBlock{
				block("10.1.0.0/26", "", "n1", "n1"),
				func() *v1.IPAMBlock { b := block("10.0.0.0/26", "a", "n1", "n1"); b.Spec.Deleted = true; return b }(),
				block("10.9.0.0/26", "gone", "n1", "n1"),
			},
			want: []Pool{
				{Name: "a", CIDR: pfx("10.0.0.0/24"), BlockBits: 26, Size: 256},
				{Name: "b", CIDR: pfx("10.1.0.0/24"), BlockBits: 26, Size: 256, Blocks: 1, BlockAddresses: 64, Allocated: 1,
					Nodes: []Node{{Name: "n1", Blocks: 1, BlockAddresses: 64, Allocated: 1}}},
			},
		},
		{
			name:   "an allocation without a node is its block owner's; a block without affinity has no node",
			pools:  []*v1.IPPool{pool("p", "fd00::/120")},
			blocks: []*v1.IPAMBlock{block("fd00::/122", "p", "n1", ""), block("fd00::40/122", "p", "", "")},
			want: []Pool{{Name: "p", CIDR: pfx("fd00::/120"), BlockBits: 122, Size: 256, Blocks: 2, BlockAddresses: 128, Allocated: 2,
				Nodes: []Node{{Name: "n1", Blocks: 1, BlockAddresses: 64, Allocated: 1}}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Compute(tc.pools, tc.blocks)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUtilisationAndForNode(t *testing.T) {
	all := Compute([]*v1.IPPool{pool("p", "10.0.0.0/24"), pool("q", "10.1.0.0/24")},
		[]*v1.IPAMBlock{block("10.0.0.0/26", "p", "n1", "n1", "n2"), block("10.1.0.0/26", "q", "n1", "n1")})
	if got := all[0].Utilisation(); got != 2.0/256 {
		t.Errorf("utilisation %v, want %v", got, 2.0/256)
	}
	if got := (Pool{}).Utilisation(); got != 0 {
		t.Errorf("utilisation of an invalid pool %v", got)
	}
	n2 := ForNode(all, "n2")
	if len(n2) != 1 || n2[0].Name != "p" || len(n2[0].Nodes) != 1 || n2[0].Nodes[0] != (Node{Name: "n2", Allocated: 1, Borrowed: 1}) {
		t.Errorf("ForNode(n2) = %+v", n2)
	}
	if got := ForNode(all, "n9"); got != nil {
		t.Errorf("ForNode of an unknown node = %+v", got)
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
