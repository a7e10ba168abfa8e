package testenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	needs := []string{"root", "bird"}
	missing := []string{"root (running as uid 1000)", "bird (not installed)"}
	cases := []struct {
		name     string
		short    bool
		ci       bool
		missing  []string
		want     Verdict
		wantText []string // the message contains each
	}{
		{"short, all there", true, false, nil, Skip, []string{"TestX", "-short", "root, bird"}},
		{"short, missing, CI: the unit tier never fails on the machine", true, true, missing, Skip, []string{"TestX", "-short"}},
		{"all there", false, false, nil, Run, nil},
		{"all there, CI", false, true, nil, Run, nil},
		{"missing locally", false, false, missing, Skip, []string{"TestX", "uid 1000", "bird (not installed)"}},
		{"missing under CI", false, true, missing, Fail, []string{"TestX", "CI is set", "uid 1000", "bird (not installed)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, msg := Decide(Situation{Test: "TestX", Short: tc.short, CI: tc.ci, Needs: needs, Missing: tc.missing})
			if v != tc.want {
				t.Errorf("verdict = %v, want %v (%q)", v, tc.want, msg)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

// fakeTB records what require does to a test.
type fakeTB struct {
	skipped, failed string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Name() string      { return "TestFake" }
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Fatal(args ...any) { f.failed = fmt.Sprint(args...) }

func TestRequireChecksEachRequirement(t *testing.T) {
	present := Check("a thing that is here", func() error { return nil })
	absent := Check("the pinned control plane", func() error { return errors.New("run make controlplane") })
	cases := []struct {
		name        string
		short, ci   bool
		reqs        []Requirement
		skip, fail  bool
		wantMissing []string
	}{
		{"present", false, true, []Requirement{present, Binary("sh")}, false, false, nil},
		{"absent binary locally", false, false, []Requirement{present, Binary("no-such-tool-cairn")}, true, false, []string{"no-such-tool-cairn (not installed"}},
		{"absent under CI", false, true, []Requirement{absent, Binary("no-such-tool-cairn")}, false, true, []string{"the pinned control plane (run make controlplane)", "no-such-tool-cairn"}},
		{"short does not check", true, true, []Requirement{Check("never checked", func() error { panic("checked under -short") })}, true, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := &fakeTB{}
			require(tb, tc.short, tc.ci, tc.reqs)
			if (tb.skipped != "") != tc.skip || (tb.failed != "") != tc.fail {
				t.Fatalf("skipped %q, failed %q; want skip %v, fail %v", tb.skipped, tb.failed, tc.skip, tc.fail)
			}
			for _, w := range tc.wantMissing {
				if !strings.Contains(tb.skipped+tb.failed, w) {
					t.Errorf("message %q lacks %q", tb.skipped+tb.failed, w)
				}
			}
		})
	}
}
