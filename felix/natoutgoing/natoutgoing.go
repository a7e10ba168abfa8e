// Package natoutgoing owns outgoing NAT: traffic from a pool with
// natOutgoing to a destination outside every pool leaves with the node's
// address (masquerade); traffic to any pool, pod to pod, is never NATed. It
// is one nftables chain, "nat-outgoing", in Cairn's table, written through
// the nftables netlink API (no nft binary).
package natoutgoing

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/cairn-net/cairn/felix/nftchain"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ChainName is the nftables chain this package owns.
const ChainName = "nat-outgoing"

// Pool is an IP pool as far as NAT is concerned.
type Pool struct {
	CIDR        netip.Prefix
	NATOutgoing bool
}

// Rules renders the chain for pools: first "destination in a pool: return"
// for every pool, then "source in a NAT pool: masquerade". Pools are sorted
// so that the same pools always give the same rules.
func Rules(pools []Pool) []nftchain.Rule {
	pools = slices.Clone(pools)
	for i := range pools {
		pools[i].CIDR = pools[i].CIDR.Masked()
	}
	slices.SortFunc(pools, func(a, b Pool) int { return a.CIDR.Compare(b.CIDR) })
	pools = slices.CompactFunc(pools, func(a, b Pool) bool {
		return a.CIDR == b.CIDR && a.NATOutgoing == b.NATOutgoing
	})
	var rules []nftchain.Rule
	for _, p := range pools {
		rules = append(rules, nftchain.Rule{
			Comment: fmt.Sprintf("cairn: to pool %s: no NAT", p.CIDR),
			Exprs:   append(matchPrefix(p.CIDR, false), &expr.Verdict{Kind: expr.VerdictReturn}),
		})
	}
	for _, p := range pools {
		if !p.NATOutgoing {
			continue
		}
		rules = append(rules, nftchain.Rule{
			Comment: fmt.Sprintf("cairn: from NAT pool %s to outside: masquerade", p.CIDR),
			Exprs:   append(matchPrefix(p.CIDR, true), &expr.Counter{}, &expr.Masq{}),
		})
	}
	return rules
}

// matchPrefix matches packets of p's family whose source (or destination)
// address is inside p.
func matchPrefix(p netip.Prefix, source bool) []expr.Any {
	proto, offset, size := byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
	if source {
		offset = 12
	}
	if p.Addr().Is6() {
		proto, offset, size = unix.NFPROTO_IPV6, 24, 16
		if source {
			offset = 8
		}
	}
	mask := make([]byte, size)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
	}
}

// Manager reconciles the chain. Not safe for concurrent use.
type Manager struct {
	chain *nftchain.Chain
}

// New returns a Manager writing through conn.
func New(conn nftchain.Conn, log *slog.Logger) *Manager {
	return &Manager{chain: nftchain.New(conn, nftchain.Spec{
		Name:     ChainName,
		Type:     nftables.ChainTypeNAT,
		Hook:     nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	}, log)}
}

// SetPools states the pools.
func (m *Manager) SetPools(pools []Pool) { m.chain.SetRules(Rules(pools)) }

// Apply writes the chain if it changed, or (full) if the kernel's copy
// drifted.
func (m *Manager) Apply(full bool) error {
	if err := m.chain.Apply(full); err != nil {
		return fmt.Errorf("outgoing NAT: %w", err)
	}
	return nil
}
