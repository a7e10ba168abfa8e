// Package fake is an in-memory nftables connection for unit tests: it keeps
// the chains of committed batches, and can be told to fail the next commit.
package fake

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"

	"github.com/cairn-net/cairn/felix/nftchain"
)

// Conn is the fake; the zero value is ready.
type Conn struct {
	mu       sync.Mutex
	batch    []func()
	chains   map[string][]*nftables.Rule
	failNext []error
	flushes  int
}

var _ nftchain.Conn = (*Conn)(nil)

// FailNextFlush makes the next commit fail with err (the batch is dropped,
// as the kernel aborts a failed transaction).
func (c *Conn) FailNextFlush(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failNext = append(c.failNext, err)
}

// Flushes counts committed batches.
func (c *Conn) Flushes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushes
}

// Comments returns the comments of a chain's rules, in order; ok is false
// when the chain does not exist.
func (c *Conn) Comments(chain string) (out []string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rules, ok := c.chains[chain]
	for _, r := range rules {
		s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		out = append(out, s)
	}
	return out, ok
}

// DeleteChain drops a chain, as an operator's `nft delete` would.
func (c *Conn) DeleteChain(chain string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.chains, chain)
}

// AddTable implements nftchain.Conn.
func (c *Conn) AddTable(t *nftables.Table) *nftables.Table { return t }

// AddChain implements nftchain.Conn.
func (c *Conn) AddChain(ch *nftables.Chain) *nftables.Chain {
	c.queue(func() {
		if _, ok := c.chains[ch.Name]; !ok {
			c.chains[ch.Name] = nil
		}
	})
	return ch
}

// FlushChain implements nftchain.Conn.
func (c *Conn) FlushChain(ch *nftables.Chain) {
	c.queue(func() { c.chains[ch.Name] = nil })
}

// AddRule implements nftchain.Conn.
func (c *Conn) AddRule(r *nftables.Rule) *nftables.Rule {
	c.queue(func() { c.chains[r.Chain.Name] = append(c.chains[r.Chain.Name], r) })
	return r
}

func (c *Conn) queue(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batch = append(c.batch, f)
}

// GetRules implements nftchain.Conn.
func (c *Conn) GetRules(_ *nftables.Table, ch *nftables.Chain) ([]*nftables.Rule, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rules, ok := c.chains[ch.Name]
	if !ok {
		return nil, fmt.Errorf("list chain %s: %w", ch.Name, errors.New("no such file or directory"))
	}
	return append([]*nftables.Rule(nil), rules...), nil
}

// Flush implements nftchain.Conn.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	batch := c.batch
	c.batch = nil
	if len(c.failNext) > 0 {
		err := c.failNext[0]
		c.failNext = c.failNext[1:]
		return err
	}
	if c.chains == nil {
		c.chains = map[string][]*nftables.Rule{}
	}
	for _, f := range batch {
		f()
	}
	c.flushes++
	return nil
}
