package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Write puts report.md, results.json and the charts into dir.
func (r *Report) Write(dir string) error {
	charts, err := writeCharts(r, dir)
	if err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	r.Charts = charts
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("write report.md: %w", err)
	}
	return nil
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	m := r.Machine
	w("# Cairn benchmarks, %s", r.Start.UTC().Format("2006-01-02 15:04 UTC"))
	w("")
	w("`make bench` on %s (%d CPUs, Linux %s, %s, commit %s), %s in all.",
		m.Host, m.CPUs, m.Kernel, m.GoVersion, m.Commit, r.Duration.Round(time.Second))
	w("Load average (1, 5, 15 min) at the start %s, at the end %s; after each section: %s.",
		m.LoadStart, m.LoadEnd, strings.Join(m.LoadDuring, "; "))
	w("Ratios are medians of per-round ratios over %d rounds, the two sides interleaved in each round;", r.Rounds)
	w("other work shared the machine, so absolute figures are noisier than the ratios.")
	w("Anchors are from ../shared/reference.md; goals from issue 15. Nothing here fails on a time.")
	w("")
	for _, c := range r.Charts {
		w("![%s](%s)", strings.TrimSuffix(c, filepath.Ext(c)), c)
	}
	w("")
	r.goalsTable(w)
	for _, s := range r.Sections {
		w("## %s", s.Title)
		w("")
		if s.Error != "" {
			w("**The section failed** after %s: `%s`", s.Duration.Round(time.Second), firstLine(s.Error))
			w("")
		}
		if len(s.Rows) == 0 {
			for _, n := range s.Notes {
				w("%s", n)
				w("")
			}
			continue
		}
		w("| measure | anchor | goal | measured | | samples | how |")
		w("|---|---|---|---|---|---|---|")
		for _, row := range s.Rows {
			w("| %s | %s | %s | **%s** | %s | %s | %s |", row.Name, dash(row.Anchor), goalText(row),
				formatValue(row.Value, row.Unit), metMark(row), samplesText(row), dash(row.Note))
		}
		w("")
		for _, n := range s.Notes {
			w("%s", n)
			w("")
		}
		w("(%s)", s.Duration.Round(time.Second))
		w("")
	}
	var below []string
	for _, s := range r.Sections {
		for _, row := range s.Rows {
			if met := row.GoalMet(); met != nil && !*met {
				below = append(below, fmt.Sprintf("- %s: %s against %s", row.Name,
					formatValue(row.Value, row.Unit), row.Goal.String(row.Unit)))
			}
		}
	}
	if len(below) > 0 {
		w("## Below goal")
		w("")
		for _, l := range below {
			w("%s", l)
		}
		w("")
	}
	return b.String()
}

// goalsTable is every figure that has a goal, in one table: the report's
// summary. A section that failed says so in it, since its goals went
// unmeasured.
func (r *Report) goalsTable(w func(string, ...any)) {
	w("## Goals")
	w("")
	w("| section | measure | anchor | goal | measured | |")
	w("|---|---|---|---|---|---|")
	for _, s := range r.Sections {
		for _, row := range s.Rows {
			if row.Goal == nil {
				continue
			}
			w("| %s | %s | %s | %s | **%s** | %s |", s.Name, row.Name, dash(row.Anchor), goalText(row),
				formatValue(row.Value, row.Unit), metMark(row))
		}
		if s.Error != "" {
			w("| %s | **the section failed**: %s | | | | |", s.Name, dash(firstLine(s.Error)))
		}
	}
	w("")
}

func goalText(r Row) string {
	if r.Goal == nil {
		return "–"
	}
	return r.Goal.String(r.Unit)
}

func metMark(r Row) string {
	met := r.GoalMet()
	switch {
	case met == nil:
		return ""
	case *met:
		return "met"
	default:
		return "**below**"
	}
}

// samplesText lists up to 12 samples, or their count and range.
func samplesText(r Row) string {
	if len(r.Samples) == 0 {
		return "–"
	}
	if len(r.Samples) > 12 {
		return fmt.Sprintf("%d, %s to %s", len(r.Samples),
			formatValue(Quantile(r.Samples, 0), ""), formatValue(Quantile(r.Samples, 1), ""))
	}
	parts := make([]string, len(r.Samples))
	for i, v := range r.Samples {
		parts[i] = formatValue(v, "")
	}
	return strings.Join(parts, " ")
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return strings.ReplaceAll(s, "|", "/")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
