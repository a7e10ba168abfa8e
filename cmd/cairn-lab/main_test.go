package main

import (
	"testing"

	"github.com/cairn-net/cairn/internal/lab"
)

// An instance gets a state directory of its own, so that two labs never
// share one by accident; an explicit directory always wins.
func TestUpFlagsStateDir(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		args []string
		want string
	}{
		{lab.DefaultStateDir, nil, lab.DefaultStateDir},
		{lab.DefaultStateDir, []string{"--instance", "x1"}, lab.DefaultStateDir + "-x1"},
		{"/tmp/mine", []string{"--instance", "x1"}, "/tmp/mine"},
	} {
		o, _, err := upFlags("up", tc.args, tc.dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if o.StateDir != tc.want {
			t.Errorf("dir %s, args %v: state dir %s, want %s", tc.dir, tc.args, o.StateDir, tc.want)
		}
	}
}
