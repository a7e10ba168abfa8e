package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Section is one part of the report.
type Section struct {
	// Name selects it (`make bench BENCH=dataplane,cni`).
	Name string
	// Title heads its table in the report.
	Title string
	Run   func(ctx context.Context, e *Env) ([]Row, error)
}

// Sections lists every section in the order they run: the shared lab's
// sections first, footprint before the CNI churn so its idle figure is
// an idle agent's.
func Sections() []Section {
	return []Section{
		{Name: "dataplane", Title: "Data plane across the ToRs", Run: runDataplane},
		{Name: "footprint", Title: "Agent footprint", Run: runFootprint},
		{Name: "cni", Title: "CNI, end to end (exec of cairn-cni to exit, real agent and API server)", Run: runCNI},
		{Name: "convergence", Title: "Convergence", Run: runConvergence},
		{Name: "linkcut", Title: "Convergence after a link cut", Run: runLinkCut},
		{Name: "bgp", Title: "BGP", Run: runBGP},
		{Name: "ipam", Title: "IPAM", Run: runIPAM},
		{Name: "felix", Title: "felix route table", Run: runFelix},
		{Name: "scale", Title: "Scale", Run: runScale},
		{Name: "scale-sim", Title: "Scale: many Cairn speakers in one process against two route reflectors", Run: runScaleSim},
	}
}

// SectionResult is what one section produced.
type SectionResult struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Rows  []Row  `json:"rows"`
	// Notes are what the section says besides its figures (what it
	// left out, and why).
	Notes    []string      `json:"notes,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"durationNs"`
}

// Machine describes where and under what load the run happened.
type Machine struct {
	Host       string   `json:"host"`
	CPUs       int      `json:"cpus"`
	Kernel     string   `json:"kernel"`
	GoVersion  string   `json:"goVersion"`
	Commit     string   `json:"commit"`
	LoadStart  string   `json:"loadStart"`
	LoadEnd    string   `json:"loadEnd"`
	LoadDuring []string `json:"loadDuring,omitempty"`
}

// Report is a whole run.
type Report struct {
	Start    time.Time       `json:"start"`
	Duration time.Duration   `json:"durationNs"`
	Rounds   int             `json:"rounds"`
	Machine  Machine         `json:"machine"`
	Sections []SectionResult `json:"sections"`
	// Charts are the chart files written beside the report.
	Charts []string `json:"charts,omitempty"`
}

// Failed says whether a section's machinery failed.
func (r *Report) Failed() bool {
	return slices.ContainsFunc(r.Sections, func(s SectionResult) bool { return s.Error != "" })
}

// Run runs the selected sections, one after the other, and writes the
// report. A failing section is reported and the others still run.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Rounds < 5 {
		return nil, fmt.Errorf("rounds %d: ratios need medians of at least 5", o.Rounds)
	}
	if len(o.Instances) == 0 {
		return nil, fmt.Errorf("no lab instance names")
	}
	selected, err := selectSections(o.Sections)
	if err != nil {
		return nil, err
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if len(o.ScaleNodes) == 0 {
		o.ScaleNodes = []int{20}
	}
	if len(o.SimClients) == 0 {
		o.SimClients = []int{100, 1000}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.OutDir, err)
	}
	rep := &Report{Start: time.Now(), Rounds: o.Rounds, Machine: machine(ctx, o.RepoRoot)}
	e := &Env{Options: o}
	for _, s := range selected {
		o.Logf("== %s", s.Name)
		start := time.Now()
		e.notes = nil
		rows, err := runSection(ctx, e, s)
		res := SectionResult{Name: s.Name, Title: s.Title, Rows: rows, Notes: e.notes, Duration: time.Since(start)}
		if err != nil {
			res.Error = err.Error()
			o.Logf("%s failed: %v", s.Name, err)
		}
		for _, r := range rows {
			o.Logf("  %-60s %s", r.Name, formatValue(r.Value, r.Unit))
		}
		rep.Sections = append(rep.Sections, res)
		rep.Machine.LoadDuring = append(rep.Machine.LoadDuring, s.Name+": "+loadAvg())
	}
	if err := e.Close(context.WithoutCancel(ctx)); err != nil {
		o.Logf("take the lab down: %v", err)
	}
	rep.Duration = time.Since(rep.Start)
	rep.Machine.LoadEnd = loadAvg()
	if err := rep.Write(o.OutDir); err != nil {
		return rep, err
	}
	return rep, nil
}

// runSection runs one section and turns a panic into its error, so one
// broken section does not lose the others' figures or leave the lab up.
func runSection(ctx context.Context, e *Env, s Section) (rows []Row, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	rows, err = s.Run(ctx, e)
	for i := range rows {
		rows[i].Section = s.Name
	}
	return rows, err
}

func selectSections(names []string) ([]Section, error) {
	all := Sections()
	if len(names) == 0 {
		return all, nil
	}
	var out []Section
	for _, s := range all {
		if slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(all, func(s Section) bool { return s.Name == n }) {
			return nil, fmt.Errorf("no bench section %q (have %s)", n, strings.Join(SectionNames(), ", "))
		}
	}
	return out, nil
}

// SectionNames lists the selectable names.
func SectionNames() []string {
	var out []string
	for _, s := range Sections() {
		out = append(out, s.Name)
	}
	return out
}

func machine(ctx context.Context, repo string) Machine {
	host, _ := os.Hostname()
	m := Machine{Host: host, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--short", "HEAD")
	if out, err := cmd.Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
