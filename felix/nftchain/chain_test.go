package nftchain_test

import (
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/google/nftables"

	"github.com/cairn-net/cairn/felix/nftchain"
	"github.com/cairn-net/cairn/felix/nftchain/fake"
)

func TestChainWritesOnlyWhenNeeded(t *testing.T) {
	conn := &fake.Conn{}
	c := nftchain.New(conn, nftchain.Spec{Name: "test", Type: nftables.ChainTypeFilter,
		Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter}, slog.New(slog.DiscardHandler))
	rules := []nftchain.Rule{{Comment: "a"}, {Comment: "b"}}
	c.SetRules(rules)
	steps := []struct {
		name        string
		do          func()
		full        bool
		wantErr     bool
		wantFlushes int
		want        []string
	}{
		{"first write", func() {}, false, false, 1, []string{"a", "b"}},
		{"nothing changed", func() {}, false, false, 1, []string{"a", "b"}},
		{"full resync, no drift", func() {}, true, false, 1, []string{"a", "b"}},
		{"same rules stated again", func() { c.SetRules(slices.Clone(rules)) }, false, false, 1, []string{"a", "b"}},
		{"drift only seen by a full resync", func() { conn.DeleteChain("test") }, false, false, 1, nil},
		{"full resync repairs", func() {}, true, false, 2, []string{"a", "b"}},
		{"failed commit", func() { c.SetRules(rules[:1]); conn.FailNextFlush(errors.New("boom")) }, false, true, 2, []string{"a", "b"}},
		{"retried", func() {}, false, false, 3, []string{"a"}},
	}
	for _, s := range steps {
		s.do()
		err := c.Apply(s.full)
		if (err != nil) != s.wantErr {
			t.Fatalf("%s: err %v", s.name, err)
		}
		got, _ := conn.Comments("test")
		if conn.Flushes() != s.wantFlushes || !slices.Equal(got, s.want) {
			t.Fatalf("%s: %d flushes, rules %q; want %d, %q", s.name, conn.Flushes(), got, s.wantFlushes, s.want)
		}
	}
}

// A chain whose rules are not stated yet is left as the kernel has it: a
// restarted agent must not empty the previous agent's NAT rules while it
// waits for its first sync.
func TestChainUntouchedUntilRulesAreKnown(t *testing.T) {
	conn := &fake.Conn{}
	spec := nftchain.Spec{Name: "nat", Type: nftables.ChainTypeNAT,
		Hook: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource}
	before := nftchain.New(conn, spec, slog.New(slog.DiscardHandler))
	before.SetRules([]nftchain.Rule{{Comment: "masquerade"}})
	if err := before.Apply(false); err != nil {
		t.Fatal(err)
	}
	restarted := nftchain.New(conn, spec, slog.New(slog.DiscardHandler))
	for _, full := range []bool{false, true} {
		if err := restarted.Apply(full); err != nil {
			t.Fatal(err)
		}
		if got, _ := conn.Comments("nat"); !slices.Equal(got, []string{"masquerade"}) || conn.Flushes() != 1 {
			t.Fatalf("apply (full %v) before the rules are known: rules %q after %d flushes, want the previous agent's", full, got, conn.Flushes())
		}
	}
	// Stating no rules at all is a decision, and is written.
	restarted.SetRules(nil)
	if err := restarted.Apply(false); err != nil {
		t.Fatal(err)
	}
	if got, _ := conn.Comments("nat"); len(got) != 0 {
		t.Fatalf("rules %q after stating none", got)
	}
}
