package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-net/cairn/internal/lab"
)

// Options configure a run.
type Options struct {
	// Sections to run, by name (see Sections); empty means all.
	Sections []string
	// Rounds is how many interleaved rounds a ratio takes its median over
	// (at least 5).
	Rounds int
	// OutDir receives report.md, results.json and the charts.
	OutDir string
	// RepoRoot is the checkout to build and test.
	RepoRoot string
	// Instances are the lab instance names this run may use: the first
	// for the shared lab, the others for sections that need a lab of
	// their own shape (scale).
	Instances []string
	// ScaleNodes are the lab sizes of the scale section (default 20).
	ScaleNodes []int
	// SimClients are the sizes of the scale-sim section: speakers besides
	// the two reflectors (default 100 and 1000).
	SimClients []int
	// LinkCutHolds are the hold times the linkcut section measures
	// without BFD (default DefaultLinkCutHolds; 90s is the default hold
	// time and is left unset in the objects).
	LinkCutHolds []time.Duration
	// Go is the go command (for the sections that run Go benchmarks).
	Go string
	// Logf receives progress lines.
	Logf func(format string, args ...any)
}

// Env is what sections share: the options and a lab that is brought up
// on first use and taken down at the end.
type Env struct {
	Options
	lab    *lab.Lab
	labErr error
	notes  []string // the running section's
}

// Note adds a paragraph to the running section's part of the report.
func (e *Env) Note(format string, args ...any) {
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
	e.Logf("note: "+format, args...)
}

// MainLab is the lab sections share: two racks of one node each behind
// their top-of-rack routers and a spine, one pod per node, so that
// traffic between the nodes is routed through the ToRs as in a data
// centre (nodes of one rack would share a bridge).
func (e *Env) MainLab(ctx context.Context) (*lab.Lab, error) {
	if e.lab != nil || e.labErr != nil {
		return e.lab, e.labErr
	}
	o := lab.Options{
		StateDir:     labStateDir(e.Instances[0]),
		RepoRoot:     e.RepoRoot,
		Instance:     e.Instances[0],
		Racks:        2,
		NodesPerRack: 1,
		PodsPerNode:  1,
		Logf:         e.Logf,
	}
	e.lab, e.labErr = upFresh(ctx, o)
	return e.lab, e.labErr
}

// labStateDir is the state directory of one of the run's lab instances.
func labStateDir(instance string) string {
	return filepath.Join(filepath.Dir(lab.DefaultStateDir), "cairn-lab-"+instance)
}

// upFresh removes what an earlier, interrupted run of the same instance
// left, then brings the lab up.
func upFresh(ctx context.Context, o lab.Options) (*lab.Lab, error) {
	if _, err := os.Stat(o.StateDir); err == nil {
		o.Logf("removing the lab an earlier run left in %s", o.StateDir)
		if err := lab.Down(ctx, o.StateDir, o.Logf); err != nil {
			return nil, fmt.Errorf("remove the earlier lab in %s: %w", o.StateDir, err)
		}
	}
	l, err := lab.Up(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("bring up lab %s: %w", o.Instance, err)
	}
	return l, nil
}

// ownLab brings up a lab of a section's own on instance inst (StateDir,
// RepoRoot, Instance and Logf filled in) and returns it with its
// teardown, for the section to defer.
func (e *Env) ownLab(ctx context.Context, inst string, o lab.Options) (*lab.Lab, func(), error) {
	o.StateDir, o.RepoRoot, o.Instance, o.Logf = labStateDir(inst), e.RepoRoot, inst, e.Logf
	l, err := upFresh(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	return l, func() {
		if err := lab.Down(context.WithoutCancel(ctx), l.StateDir(), e.Logf); err != nil {
			e.Logf("take down lab %s: %v", inst, err)
		}
	}, nil
}

// Close takes down the shared lab.
func (e *Env) Close(ctx context.Context) error {
	if e.lab == nil {
		return nil
	}
	err := lab.Down(ctx, e.lab.StateDir(), e.Logf)
	e.lab = nil
	return err
}
