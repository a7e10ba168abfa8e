package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The lab's binaries are fresh copies, never hard links to the build
// cache's linker output (see CopyBinary): a linked file carries the
// linker's page-cache layout into every agent's RSS. A second copy over
// an older one (possibly a hard link left by an older lab) replaces it
// without writing through to the cache.
func TestCopyBinaryIsAFreshFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "built")
	want := bytes.Repeat([]byte("cairn"), 100_000)
	if err := os.WriteFile(src, want, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "lab-bin")
	// An older lab's hard link to the cache's file.
	if err := os.Link(src, dst); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := CopyBinary(src, dst); err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("copy %d: %d bytes differ from the built %d", i, len(got), len(want))
		}
		si, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		di, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		if os.SameFile(si, di) {
			t.Fatalf("copy %d: %s is a hard link to the built file", i, dst)
		}
		if di.Mode().Perm()&0o111 == 0 {
			t.Fatalf("copy %d: %s is not executable: %v", i, dst, di.Mode())
		}
	}
	if got, _ := os.ReadFile(src); !bytes.Equal(got, want) {
		t.Fatal("the built file changed")
	}
}
