// Package codegen checks that generated code and manifests match their
// sources: it regenerates into a copy of the repository and compares.
package codegen

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cairn-net/cairn/internal/controlplane"
)

// generated lists what hack/update-codegen.sh writes; sources lists what it
// reads. Both are copied so the copy regenerates like the real tree.
var (
	generated = []string{"apis", "deploy/crds"}
	sources   = []string{"go.mod", "go.sum", "hack", "apis"}
)

func TestGeneratedFilesAreFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short: runs the code generators (tens of seconds)")
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, s := range sources {
		copyTree(t, filepath.Join(root, s), filepath.Join(tmp, s))
	}
	cmd := exec.Command("bash", filepath.Join(tmp, "hack", "update-codegen.sh"), tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/update-codegen.sh: %v\n%s", err, out)
	}
	for _, g := range generated {
		want := readTree(t, filepath.Join(tmp, g))
		got := readTree(t, filepath.Join(root, g))
		for _, name := range union(want, got) {
			if !bytes.Equal(want[name], got[name]) {
				t.Errorf("%s is stale: run `make generate` and commit the result", filepath.Join(g, name))
			}
		}
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return files
}

func union(a, b map[string][]byte) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
