package natoutgoing

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables/expr"
)

func TestRules(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name  string
		pools []Pool
		want  []string
	}{
		{"no pools", nil, nil},
		{"pool without NAT only exempts", []Pool{{CIDR: p("10.65.0.0/16")}}, []string{"cairn: to pool 10.65.0.0/16: no NAT"}},
		{"dual stack, sorted, unmasked input", []Pool{
			{CIDR: p("fd00:65::/48"), NATOutgoing: true},
			{CIDR: p("10.66.1.2/16")},
			{CIDR: p("10.65.0.0/16"), NATOutgoing: true},
		}, []string{
			"cairn: to pool 10.65.0.0/16: no NAT",
			"cairn: to pool 10.66.0.0/16: no NAT",
			"cairn: to pool fd00:65::/48: no NAT",
			"cairn: from NAT pool 10.65.0.0/16 to outside: masquerade",
			"cairn: from NAT pool fd00:65::/48 to outside: masquerade",
		}},
		{"duplicates collapse", []Pool{{CIDR: p("10.65.0.0/16"), NATOutgoing: true}, {CIDR: p("10.65.0.0/16"), NATOutgoing: true}}, []string{
			"cairn: to pool 10.65.0.0/16: no NAT",
			"cairn: from NAT pool 10.65.0.0/16 to outside: masquerade",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range Rules(tc.pools) {
				got = append(got, r.Comment)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestMatchPrefix(t *testing.T) {
	tests := []struct {
		prefix string
		source bool
		offset uint32
		mask   []byte
	}{
		{"10.65.0.0/16", false, 16, []byte{255, 255, 0, 0}},
		{"10.65.0.0/18", true, 12, []byte{255, 255, 192, 0}},
		{"fd00:65::/48", false, 24, []byte{255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"fd00:65::/48", true, 8, []byte{255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tc := range tests {
		e := matchPrefix(netip.MustParsePrefix(tc.prefix), tc.source)
		pl := e[2].(*expr.Payload)
		bw := e[3].(*expr.Bitwise)
		if pl.Offset != tc.offset || !slices.Equal(bw.Mask, tc.mask) || int(pl.Len) != len(tc.mask) {
			t.Errorf("%s source=%v: offset %d mask %v", tc.prefix, tc.source, pl.Offset, bw.Mask)
		}
	}
}
