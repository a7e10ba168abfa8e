package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cairn-net/cairn/internal/images"
	"github.com/cairn-net/cairn/internal/lab"
)

// leverSettle is how long a restarted agent runs before it is measured:
// past its first sync, as an idle agent would be.
const leverSettle = 5 * time.Second

// measureStripped is the first lever issue 15 names for the agent's
// memory: the same cairn-node linked with -s -w (no symbol table, no
// DWARF; only a link, the packages come from the build cache, where
// -trimpath would compile every package again), run on the same node,
// alternating with the binary the lab built, each freshly restarted. It
// puts the lab's binary back and restarts the agent on it before
// returning.
func measureStripped(ctx context.Context, e *Env, l *lab.Lab, node lab.Node) ([]Row, error) {
	dir, err := os.MkdirTemp("", "cairn-bench-stripped-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	linked, stripped := filepath.Join(dir, "cairn-node.linked"), filepath.Join(dir, "cairn-node")
	e.Logf("footprint: linking cairn-node with -ldflags=-s -w")
	build := exec.CommandContext(ctx, e.Go, "build", "-tags", images.BuildTags, "-ldflags=-s -w", "-o", linked, "./cmd/cairn-node")
	build.Dir = e.RepoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build a stripped cairn-node: %w\n%s", err, out)
	}
	// Run a copy, as the lab does its own build: the linker's output
	// sits in the page cache as large folios, which add 20-30 MiB of
	// file-backed RSS to whatever runs it (lab.CopyBinary).
	if err := lab.CopyBinary(linked, stripped); err != nil {
		return nil, err
	}
	installed := filepath.Join(l.BinDir(), "cairn-node")
	original := filepath.Join(dir, "cairn-node.lab")
	// The lab's binary may be a hard link into the shared build cache:
	// replace the name, never write through it.
	if err := os.Link(installed, original); err != nil {
		return nil, fmt.Errorf("keep the lab's cairn-node: %w", err)
	}
	use := func(bin string) error {
		tmp := installed + ".bench"
		_ = os.Remove(tmp)
		if err := os.Link(bin, tmp); err != nil {
			return err
		}
		return os.Rename(tmp, installed)
	}
	defer func() {
		if err := use(original); err == nil {
			_ = l.RestartAgent(context.WithoutCancel(ctx), node.Name, syscall.SIGTERM)
		}
	}()
	sample := func(bin string) (usage, error) {
		if err := use(bin); err != nil {
			return usage{}, fmt.Errorf("install %s: %w", bin, err)
		}
		if err := l.RestartAgent(ctx, node.Name, syscall.SIGTERM); err != nil {
			return usage{}, err
		}
		time.Sleep(leverSettle) // not synchronisation: the agent is ready; this is the idle period measured after it
		p, err := agentProc(l, node.Name)
		if err != nil {
			return usage{}, err
		}
		return measureUsage(ctx, p.PID, 3)
	}
	var lab, strip usage
	for round := range 2 {
		e.Logf("footprint: stripped binary, round %d/2", round+1)
		a, err := sample(original)
		if err != nil {
			return nil, err
		}
		b, err := sample(stripped)
		if err != nil {
			return nil, err
		}
		lab.rss, lab.file = append(lab.rss, a.rss...), append(lab.file, a.file...)
		strip.rss, strip.file = append(strip.rss, b.rss...), append(strip.file, b.file...)
	}
	size := func(p string) float64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return float64(fi.Size()) / 1e6
	}
	note := fmt.Sprintf("%s, each binary restarted twice, alternating, measured %v after ready", node.Name, leverSettle)
	return []Row{
		{Name: "lever: agent RSS, binary as the lab builds it, freshly restarted", Unit: "MiB", Value: Median(lab.rss), Samples: lab.rss, Note: note},
		{Name: "lever: agent RSS, -ldflags=-s -w, freshly restarted", Unit: "MiB", Value: Median(strip.rss), Samples: strip.rss, Goal: AtMost(40), Note: note},
		{Name: "lever: file-backed part, stripped", Unit: "MiB", Value: Median(strip.file), Samples: strip.file,
			Note: fmt.Sprintf("stripped; the lab's build: %.1f MiB", Median(lab.file))},
		{Name: "lever: binary size, stripped", Unit: "MB", Value: size(stripped), Note: fmt.Sprintf("the lab's build: %.1f MB", size(original))},
	}, nil
}
