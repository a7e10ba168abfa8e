// Package nftchain owns one base chain of Cairn's nftables table ("cairn",
// family inet): it writes the chain's rules in one atomic transaction and,
// on a resync, reads them back and rewrites them only if they drifted. Each
// rule carries its own description as the rule comment, which is what the
// read-back compares.
package nftchain

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// TableName is Cairn's nftables table.
const TableName = "cairn"

// Conn is the part of *nftables.Conn that a Chain uses.
type Conn interface {
	AddTable(t *nftables.Table) *nftables.Table
	AddChain(c *nftables.Chain) *nftables.Chain
	FlushChain(c *nftables.Chain)
	AddRule(r *nftables.Rule) *nftables.Rule
	GetRules(t *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error)
	Flush() error
}

// Rule is one rule: a unique description (stored as its comment) and its
// expressions.
type Rule struct {
	Comment string
	Exprs   []expr.Any
}

// Spec describes a base chain.
type Spec struct {
	Name     string
	Type     nftables.ChainType
	Hook     *nftables.ChainHook
	Priority *nftables.ChainPriority
}

// Chain reconciles one base chain. Not safe for concurrent use.
type Chain struct {
	conn    Conn
	log     *slog.Logger
	table   *nftables.Table
	chain   *nftables.Chain
	desired []Rule
	dirty   bool
	// known: SetRules was called. Until then the chain is left as the
	// kernel has it: after a restart, the previous agent's rules are the
	// best guess, and an empty chain would be a wrong one (no NAT for
	// pods until the first sync, 10 s or more on a slow start).
	known bool
}

// New returns a Chain that will write spec into Cairn's table.
func New(conn Conn, spec Spec, log *slog.Logger) *Chain {
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	return &Chain{
		conn:  conn,
		log:   log,
		table: table,
		chain: &nftables.Chain{
			Name: spec.Name, Table: table, Type: spec.Type,
			Hooknum: spec.Hook, Priority: spec.Priority,
		},
		dirty: true,
	}
}

// SetRules states the chain's rules.
func (c *Chain) SetRules(rules []Rule) {
	if !c.known || !slices.EqualFunc(rules, c.desired, func(a, b Rule) bool { return a.Comment == b.Comment }) {
		c.dirty = true
	}
	c.desired = rules
	c.known = true
}

// Apply writes the rules if they changed since the last write or, when
// full is set, if the kernel's copy differs from them. Before the first
// SetRules it does nothing: nothing is removed until the desired state is
// known.
func (c *Chain) Apply(full bool) error {
	if !c.known {
		return nil
	}
	if !c.dirty && full {
		c.dirty = c.drifted()
	}
	if !c.dirty {
		return nil
	}
	// Table and chain are created if missing (no EXCL); flushing and
	// refilling the chain in the same batch is atomic for packets.
	c.conn.AddTable(c.table)
	c.conn.AddChain(c.chain)
	c.conn.FlushChain(c.chain)
	for _, r := range c.desired {
		c.conn.AddRule(&nftables.Rule{
			Table:    c.table,
			Chain:    c.chain,
			Exprs:    r.Exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment),
		})
	}
	if err := c.conn.Flush(); err != nil {
		return fmt.Errorf("write nftables chain %s/%s (%d rules): %w", TableName, c.chain.Name, len(c.desired), err)
	}
	c.dirty = false
	c.log.Debug("wrote nftables chain", "chain", c.chain.Name, "rules", len(c.desired))
	return nil
}

func (c *Chain) drifted() bool {
	rules, err := c.conn.GetRules(c.table, c.chain)
	if err != nil {
		// A missing table or chain reads as an error: rewrite.
		return true
	}
	if len(rules) != len(c.desired) {
		return true
	}
	for i, r := range rules {
		got, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		if got != c.desired[i].Comment {
			return true
		}
	}
	return false
}
