// Package antispoof owns the rule that stops a pod from sending with
// another pod's (or any foreign) source address: a packet coming in on a
// host veth is dropped unless the route back to its source leaves through
// that same veth (strict reverse-path filtering done by nftables' fib
// lookup, for IPv4 and IPv6 alike; IPv6 has no rp_filter sysctl, and the
// IPv4 one can be loosened node-wide by net.ipv4.conf.all.rp_filter=2).
package antispoof

import (
	"fmt"
	"log/slog"

	"github.com/cairn-net/cairn/felix/nftchain"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// ChainName is the nftables chain this package owns.
const ChainName = "antispoof"

// Rules renders the chain for host veths named with ifacePrefix.
func Rules(ifacePrefix string) []nftchain.Rule {
	return []nftchain.Rule{{
		Comment: fmt.Sprintf("cairn: from %s* with a source not routed back there: drop", ifacePrefix),
		Exprs: []expr.Any{
			// Without a NUL terminator the comparison is a prefix match,
			// as nft's iifname "crn*".
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(ifacePrefix)},
			&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
	}}
}

// Manager reconciles the chain. Not safe for concurrent use.
type Manager struct {
	chain *nftchain.Chain
}

// New returns a Manager guarding interfaces named ifacePrefix*.
func New(conn nftchain.Conn, ifacePrefix string, log *slog.Logger) *Manager {
	c := nftchain.New(conn, nftchain.Spec{
		Name:     ChainName,
		Type:     nftables.ChainTypeFilter,
		Hook:     nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRaw,
	}, log)
	c.SetRules(Rules(ifacePrefix))
	return &Manager{chain: c}
}

// Apply writes the chain if never written, or (full) if it drifted.
func (m *Manager) Apply(full bool) error {
	if err := m.chain.Apply(full); err != nil {
		return fmt.Errorf("anti-spoofing: %w", err)
	}
	return nil
}
