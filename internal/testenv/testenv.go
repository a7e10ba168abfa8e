// Package testenv decides, for every Cairn test that needs more than Go
// (root, network namespaces, router daemons, the pinned control plane),
// whether it runs, skips or fails. It owns one rule, for felix, the CNI
// plugin, the BGP speaker, the lab and the cluster and end-to-end tests:
//
//   - with -short (the unit tier) such a test skips;
//   - when something it needs is missing it skips with what is missing,
//     unless the CI environment variable is set: then it fails, naming the
//     test and what is missing, so a CI that cannot run the privileged
//     tiers is never green by accident;
//   - otherwise it runs.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Requirement is something a test needs from the machine.
type Requirement interface {
	// String names what is needed, as messages show it.
	String() string
	// check says why the requirement is not met here, or returns nil.
	check() error
}

// Capability is a requirement on the test process itself.
type Capability int

const (
	// Root: the test runs as uid 0.
	Root Capability = iota
	// NetNS: the test process can create a network namespace (root is not
	// always enough: a container may deny it).
	NetNS
)

// String names the capability.
func (c Capability) String() string {
	switch c {
	case Root:
		return "root"
	case NetNS:
		return "a new network namespace"
	}
	return fmt.Sprintf("capability %d", int(c))
}

func (c Capability) check() error {
	switch c {
	case Root:
		if uid := os.Geteuid(); uid != 0 {
			return fmt.Errorf("running as uid %d", uid)
		}
		return nil
	case NetNS:
		return probeNetNS()
	}
	return fmt.Errorf("unknown capability %d", int(c))
}

// probeNetNS creates a network namespace on a thread of its own. The
// thread stays locked, so the runtime ends it, namespace and all, when the
// goroutine returns; nothing else in the process ever enters it.
func probeNetNS() error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- unix.Unshare(unix.CLONE_NEWNET)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
	}
	return nil
}

// Binary requires an executable: a name looked up on PATH, or a path.
func Binary(name string) Requirement { return binary(name) }

type binary string

func (b binary) String() string { return string(b) }

func (b binary) check() error {
	if _, err := exec.LookPath(string(b)); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return errors.New("not installed (`make deps` installs it)")
		}
		return err
	}
	return nil
}

// Check requires anything else: what names it, check returns why it is
// missing or nil.
func Check(what string, check func() error) Requirement {
	return custom{what: what, fn: check}
}

type custom struct {
	what string
	fn   func() error
}

func (c custom) String() string { return c.what }
func (c custom) check() error   { return c.fn() }

// Verdict is what happens to a test.
type Verdict int

const (
	// Run: everything the test needs is here.
	Run Verdict = iota
	// Skip: the test does not belong to this run, or cannot run locally.
	Skip
	// Fail: the test cannot run, and under CI that is a failure.
	Fail
)

// String names the verdict.
func (v Verdict) String() string {
	switch v {
	case Run:
		return "run"
	case Skip:
		return "skip"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("verdict %d", int(v))
}

// Situation is everything the rule looks at.
type Situation struct {
	Test    string   // the test's name, as tb.Name() gives it
	Short   bool     // -short: the unit tier
	CI      bool     // the CI environment variable is set
	Needs   []string // what the test needs
	Missing []string // what of it is missing here, each with why
}

// Decide applies the rule and says why, naming the test and what it lacks.
func Decide(s Situation) (Verdict, string) {
	switch {
	case s.Short:
		return Skip, fmt.Sprintf("%s skipped with -short (the unit tier): needs %s", s.Test, strings.Join(s.Needs, ", "))
	case len(s.Missing) == 0:
		return Run, ""
	case s.CI:
		return Fail, fmt.Sprintf("%s cannot run here, and CI is set, so this fails instead of skipping; missing: %s", s.Test, strings.Join(s.Missing, "; "))
	}
	return Skip, fmt.Sprintf("%s skipped: missing %s (with CI set this fails)", s.Test, strings.Join(s.Missing, "; "))
}

// Require runs the test only where everything in reqs is available: it
// skips or fails tb as Decide says. Checks are not made with -short.
func Require(tb testing.TB, reqs ...Requirement) {
	tb.Helper()
	require(tb, testing.Short(), os.Getenv("CI") != "", reqs)
}

// reporter is the part of testing.TB that require uses.
type reporter interface {
	Helper()
	Name() string
	Skip(args ...any)
	Fatal(args ...any)
}

func require(tb reporter, short, ci bool, reqs []Requirement) {
	tb.Helper()
	s := Situation{Test: tb.Name(), Short: short, CI: ci}
	for _, r := range reqs {
		s.Needs = append(s.Needs, r.String())
		if short {
			continue
		}
		if err := r.check(); err != nil {
			s.Missing = append(s.Missing, fmt.Sprintf("%s (%v)", r, err))
		}
	}
	switch v, msg := Decide(s); v {
	case Skip:
		tb.Skip(msg)
	case Fail:
		tb.Fatal(msg)
	}
}
