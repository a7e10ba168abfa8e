package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// BuildTags are the build tags of every Cairn binary, wherever it is
// built into a binary (here, the lab, the bench, the Dockerfile).
// grpcnotrace leaves golang.org/x/net/trace out of gRPC: its init
// registers /debug/requests on http.DefaultServeMux, which nothing in
// Cairn serves, and its html/template use (reflect's Method) turns off
// the linker's removal of unused methods for the whole binary. With it,
// cairn-node shrank from 100 to 56 MB and its resident memory, idle, from
// 58.7 to 44.8 MiB (issue 15).
const BuildTags = "grpcnotrace"

// goBuild builds the main packages static into dir in one go invocation
// (the go command builds them in parallel, and relinks nothing whose
// output is already up to date). It returns each package's binary.
func goBuild(ctx context.Context, o Options, pkgs []string, dir string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create binary directory: %w", err)
	}
	out := make(map[string]string, len(pkgs))
	seen := map[string]string{}
	for _, p := range pkgs {
		base := path.Base(p)
		if other, ok := seen[base]; ok && other != p {
			return nil, fmt.Errorf("build %s and %s: both make a binary named %s", other, p, base)
		}
		seen[base] = p
		out[p] = filepath.Join(dir, base)
	}
	args := []string{"build", "-trimpath", "-tags", BuildTags, "-ldflags", "-s -w -X main.version=" + o.Version, "-o", dir + string(filepath.Separator)}
	args = append(args, slices.Sorted(slices.Values(pkgs))...)
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.RepoRoot
	// Static, and for the nodes' platform whatever this machine is.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.GOARCH)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}
