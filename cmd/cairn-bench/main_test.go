package main

import (
	"slices"
	"testing"
	"time"
)

func TestDurations(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []time.Duration
	}{
		{"9s", []time.Duration{9 * time.Second}},
		{"9s, 90s", []time.Duration{9 * time.Second, 90 * time.Second}},
		{"1m30s", []time.Duration{90 * time.Second}},
		{"2s", nil},   // below BGP's 3 s
		{"9.5s", nil}, // not whole seconds
		{"nine", nil}, // not a duration
		{"9s,", nil},  // an empty item
		{"", nil},     // nothing
	} {
		got, err := durations("-linkcut-holds", c.in)
		if c.want == nil {
			if err == nil {
				t.Errorf("durations(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("durations(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
