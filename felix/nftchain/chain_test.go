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
