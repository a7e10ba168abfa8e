package controlplane

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNoBinaries means the pinned etcd and kube-apiserver have not been built
// on this machine; `make controlplane` (or build/build.sh) builds them.
var ErrNoBinaries = errors.New("etcd and kube-apiserver binaries not found: run `make controlplane` (internal/controlplane/build/build.sh) or set CAIRN_CONTROLPLANE_BIN")

// BinDir finds the directory holding etcd and kube-apiserver: the
// CAIRN_CONTROLPLANE_BIN environment variable, else the build cache. It
// does not build: a cold build takes minutes and belongs to `make`.
func BinDir() (string, error) {
	var candidates []string
	if dir := os.Getenv("CAIRN_CONTROLPLANE_BIN"); dir != "" {
		candidates = append(candidates, dir)
	}
	cache := os.Getenv("CAIRN_CACHE")
	if cache == "" {
		if base, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(base, "cairn")
		}
	}
	if cache != "" {
		candidates = append(candidates, filepath.Join(cache, "controlplane"))
	}
	for _, dir := range candidates {
		if executable(filepath.Join(dir, "etcd")) && executable(filepath.Join(dir, "kube-apiserver")) {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

// Build runs build/build.sh, which rebuilds only when the pin changed, and
// returns the directory holding the binaries.
func Build(repoRoot string) (string, error) {
	cmd := exec.Command(filepath.Join(repoRoot, "internal", "controlplane", "build", "build.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build etcd, kube-apiserver and kubectl: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// RepoRoot walks up from the working directory to Cairn's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/cairn-net/cairn\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod of github.com/cairn-net/cairn above the working directory")
		}
		dir = parent
	}
}
