package images

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fakeGo stands in for the go command: for "go build ... -o DIR/ PKG..."
// it writes DIR/<base of PKG> holding the package, the environment a
// static build needs and the build tags, so tests check what reaches the image without
// compiling anything.
const fakeGo = `#!/bin/sh
out=""; pkgs=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2;;
    -ldflags) ldflags="$2"; shift 2;;
    -tags) tags="$2"; shift 2;;
    build|-trimpath) shift;;
    *) pkgs="$pkgs $1"; shift;;
  esac
done
for p in $pkgs; do
  printf '%s CGO_ENABLED=%s GOOS=%s GOARCH=%s tags=%s %s\n' "$p" "$CGO_ENABLED" "$GOOS" "$GOARCH" "$tags" "$ldflags" > "$out$(basename "$p")"
done
`

// fakeRepo is a repository with the files the specs take from it, and a
// fake go command.
func fakeRepo(t *testing.T) (repo, goCmd string) {
	t.Helper()
	repo = t.TempDir()
	for _, s := range Specs() {
		for _, f := range s.Files {
			if f.Source.RepoFile == "" {
				continue
			}
			p := filepath.Join(repo, f.Source.RepoFile)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("content of "+f.Source.RepoFile), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	goCmd = filepath.Join(t.TempDir(), "go")
	if err := os.WriteFile(goCmd, []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	return repo, goCmd
}

// layerEntry is what a test checks of one tar entry.
type layerEntry struct {
	typ     byte
	mode    int64
	uid     int
	content string
}

// readImage loads a built tarball: its configuration and its one layer.
func readImage(t *testing.T, img Image) (cfg map[string]any, entries map[string]layerEntry, id string) {
	t.Helper()
	tag, err := name.NewTag(img.Ref)
	if err != nil {
		t.Fatal(err)
	}
	i, err := tarball.ImageFromPath(img.Tarball, &tag)
	if err != nil {
		t.Fatalf("read %s from %s: %v", img.Ref, img.Tarball, err)
	}
	cf, err := i.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cn, err := i.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := i.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%s: layers %d (%v), want 1", img.Ref, len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries = map[string]layerEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: %s has time %v, want the fixed epoch", img.Ref, h.Name, h.ModTime)
		}
		entries["/"+strings.TrimSuffix(h.Name, "/")] = layerEntry{typ: h.Typeflag, mode: h.Mode, uid: h.Uid + h.Gid, content: string(b)}
	}
	cfg = map[string]any{
		"os": cf.OS, "arch": cf.Architecture, "entrypoint": cf.Config.Entrypoint, "cmd": cf.Config.Cmd,
		"env": cf.Config.Env, "user": cf.Config.User, "workdir": cf.Config.WorkingDir,
	}
	return cfg, entries, cn.String()
}

func TestBuildPutsExactlyTheSpecIntoEachImage(t *testing.T) {
	repo, goCmd := fakeRepo(t)
	out := t.TempDir()
	imgs, err := Build(context.Background(), Options{OutDir: out, RepoRoot: repo, Go: goCmd, GOARCH: "arm64", Tag: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != len(Specs()) {
		t.Fatalf("built %d images, want %d", len(imgs), len(Specs()))
	}
	for i, s := range Specs() {
		img := imgs[i]
		if img.Name != s.Name || img.Ref != Registry+"/"+s.Name+":t1" || img.Tarball != filepath.Join(out, s.Name+".tar") {
			t.Errorf("image %d: %+v, want %s as %s:t1 in %s", i, img, s.Name, s.Name, out)
		}
		cfg, entries, id := readImage(t, img)
		if id != img.ID {
			t.Errorf("%s: Build says ID %s, the tarball has %s", s.Name, img.ID, id)
		}
		want := map[string]any{"os": "linux", "arch": "arm64", "entrypoint": s.Config.Entrypoint, "cmd": s.Config.Cmd,
			"env": s.Config.Env, "user": s.Config.User, "workdir": s.Config.WorkingDir}
		for k, v := range want {
			if !equalAny(cfg[k], v) {
				t.Errorf("%s: config %s = %v, want %v", s.Name, k, cfg[k], v)
			}
		}
		checkEntries(t, s, entries)
	}
}

func checkEntries(t *testing.T, s Spec, entries map[string]layerEntry) {
	t.Helper()
	want := map[string]layerEntry{}
	for _, f := range s.Files {
		content := "content of " + f.Source.RepoFile
		if f.Source.Package != "" {
			content = f.Source.Package + " CGO_ENABLED=0 GOOS=linux GOARCH=arm64 tags=" + BuildTags + " -s -w -X main.version=t1\n"
		}
		want[f.Path] = layerEntry{typ: tar.TypeReg, mode: int64(f.Mode), content: content}
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			want[d] = layerEntry{typ: tar.TypeDir, mode: 0o755}
		}
	}
	for p, w := range want {
		if got, ok := entries[p]; !ok || got != w {
			t.Errorf("%s: %s is %+v, want %+v", s.Name, p, got, w)
		}
	}
	for p := range entries {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s is in the image but not in its spec", s.Name, p)
		}
	}
}

func equalAny(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return slices.Equal(as, bs) // nil and empty alike
	}
	return a == b
}

func TestRebuildWritesOnlyWhatChanged(t *testing.T) {
	repo, goCmd := fakeRepo(t)
	out := t.TempDir()
	o := Options{OutDir: out, RepoRoot: repo, Go: goCmd}
	first, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	stamp := func() map[string]fs.FileInfo {
		m := map[string]fs.FileInfo{}
		for _, img := range first {
			st, err := os.Stat(img.Tarball)
			if err != nil {
				t.Fatal(err)
			}
			m[img.Name] = st
		}
		return m
	}
	before := stamp()
	again, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first, again) {
		t.Fatalf("unchanged rebuild gave %+v, want %+v", again, first)
	}
	for n, st := range stamp() {
		if !os.SameFile(st, before[n]) {
			t.Errorf("%s: tarball written again although nothing changed", n)
		}
	}
	// The conflist changes: only the cairn image is rebuilt, with a new ID.
	if err := os.WriteFile(filepath.Join(repo, "deploy/node/10-cairn.conflist"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	third, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	after := stamp()
	for i, img := range third {
		changed := img.ID != first[i].ID
		rewritten := !os.SameFile(after[img.Name], before[img.Name])
		want := img.Name == Cairn
		if changed != want || rewritten != want {
			t.Errorf("%s after a conflist change: new ID %v, rewritten %v; want %v", img.Name, changed, rewritten, want)
		}
	}
}

// A second build from the same inputs into another directory gives the
// same image: nothing of the build machine or the time leaks in.
func TestBuildIsReproducible(t *testing.T) {
	repo, goCmd := fakeRepo(t)
	a, err := Build(context.Background(), Options{OutDir: t.TempDir(), RepoRoot: repo, Go: goCmd, Names: []string{Pause}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(context.Background(), Options{OutDir: t.TempDir(), RepoRoot: repo, Go: goCmd, Names: []string{Pause}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 1 || len(b) != 1 || a[0].ID != b[0].ID || a[0].Name != Pause {
		t.Fatalf("two builds of pause: %+v and %+v, want one image with one ID", a, b)
	}
}

func TestBuildRefusesBadOptions(t *testing.T) {
	repo, goCmd := fakeRepo(t)
	for name, o := range map[string]Options{
		"no output directory": {RepoRoot: repo, Go: goCmd},
		"unknown image":       {OutDir: t.TempDir(), RepoRoot: repo, Go: goCmd, Names: []string{"nope"}},
		"go build fails":      {OutDir: t.TempDir(), RepoRoot: repo, Go: "/bin/false"},
	} {
		if _, err := Build(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestWriteLayerRefusesUncleanPaths(t *testing.T) {
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"relative/f", "/a/../f", "/a//f"} {
		if err := writeLayer(io.Discard, []layerFile{{path: p, mode: 0o644, local: src}}); err == nil {
			t.Errorf("%q: no error", p)
		}
	}
}

func TestFindRepoRoot(t *testing.T) {
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "images", "spec.go")); err != nil {
		t.Fatalf("FindRepoRoot = %s, which does not hold this package: %v", root, err)
	}
}
