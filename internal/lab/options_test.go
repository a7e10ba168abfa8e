package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Options that do not go together are refused with a clear error, not
// silently ignored.
func TestCheckModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string // "" for accepted
	}{
		{"fast mode", Options{}, ""},
		{"dual-stack", Options{DualStack: true}, ""},
		{"real nodes", Options{Kubelet: true}, ""},
		{"real nodes, agents as processes", Options{Kubelet: true, AgentProcesses: true}, ""},
		{"dual-stack real nodes", Options{DualStack: true, Kubelet: true}, "a dual-stack lab runs in the fast mode only: leave out --kubelet"},
		{"dual-stack real nodes, agents as processes", Options{DualStack: true, Kubelet: true, AgentProcesses: true}, "dual-stack lab runs in the fast mode only"},
		{"agents as processes without real nodes", Options{AgentProcesses: true}, "--agent-processes chooses how real nodes run cairn-node: it needs --kubelet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.checkModes()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// Up refuses a dual-stack lab of real nodes before it creates anything:
// no state directory, so nothing to tear down (and no root needed).
func TestUpRefusesDualStackRealNodes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	_, err := Up(context.Background(), Options{StateDir: dir, RepoRoot: t.TempDir(), DualStack: true, Kubelet: true, Instance: "dsb"})
	if err == nil || !strings.Contains(err.Error(), "leave out --kubelet") {
		t.Fatalf("Up: %v, want the dual-stack refusal", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Up made %s before refusing (%v)", dir, err)
	}
}
