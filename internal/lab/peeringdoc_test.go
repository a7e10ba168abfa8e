package lab

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// peeringDoc is the network engineer's guide; its router configurations
// are the lab's own, rendered here, so they cannot drift from what the
// interop tests run.
const peeringDoc = "../../docs/peering.md"

// docPassword is the example TCP-MD5 key the guide shows.
const docPassword = "change-me-MD5-key"

// docBlocks renders every generated block of the guide by name.
func docBlocks(t *testing.T) map[string]string {
	t.Helper()
	p, err := NewPlan(PlanOptions{Racks: 1, NodesPerRack: 2, Router: RouterBIRD, DualStack: true})
	if err != nil {
		t.Fatal(err)
	}
	p.setNodePasswords(docPassword)
	tor := p.Racks[0].ToR
	return map[string]string{
		"bird":   birdConfig(tor),
		"frr":    frrBGPConfig(tor),
		"gobgpd": gobgpdConfig(tor),
	}
}

var docBlockRE = regexp.MustCompile("(?s)(<!-- generated: ([a-z0-9-]+) -->\n```[a-z]*\n)(.*?)(```)")

// TestPeeringDocMatchesTheLab fails when a router configuration in
// docs/peering.md is not what the lab writes for the same topology.
// CAIRN_UPDATE_DOCS=1 rewrites the blocks instead.
func TestPeeringDocMatchesTheLab(t *testing.T) {
	path := filepath.Clean(peeringDoc)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := docBlocks(t)
	seen := map[string]bool{}
	out := docBlockRE.ReplaceAllStringFunc(string(raw), func(m string) string {
		sub := docBlockRE.FindStringSubmatch(m)
		name, body := sub[2], sub[3]
		want, ok := blocks[name]
		if !ok {
			t.Errorf("%s: generated block %q is not one the lab renders", path, name)
			return m
		}
		seen[name] = true
		if body != want {
			if os.Getenv("CAIRN_UPDATE_DOCS") == "" {
				t.Errorf("%s: block %q differs from what the lab writes; run CAIRN_UPDATE_DOCS=1 go test -run TestPeeringDocMatchesTheLab ./internal/lab/\n--- lab writes ---\n%s", path, name, want)
			}
		}
		return sub[1] + want + sub[4]
	})
	for name := range blocks {
		if !seen[name] {
			t.Errorf("%s has no generated block %q", path, name)
		}
	}
	if os.Getenv("CAIRN_UPDATE_DOCS") != "" && out != string(raw) {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", path)
	}
	if !strings.Contains(string(raw), docPassword) {
		t.Errorf("%s does not show the example password the CRDs use", path)
	}
}
