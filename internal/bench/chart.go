package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// writeCharts draws goals.svg (every figure that has a goal, as a multiple
// of it) and a chart per section of its most common unit, and returns
// their file names.
func writeCharts(r *Report, dir string) ([]string, error) {
	var files []string
	if labels, vals := goalScores(r); len(vals) > 0 {
		f := "goals.svg"
		err := barChart(filepath.Join(dir, f), barSpec{
			title:  "Measured against goal (1 = goal; right of the line is better)",
			axis:   "goal / measured for times and memory, measured / goal otherwise",
			labels: labels, values: vals, line: 1,
		})
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	for _, s := range r.Sections {
		unit, rows := mainUnit(s.Rows)
		if len(rows) < 2 {
			continue
		}
		spec := barSpec{title: s.Title, axis: unit, line: math.NaN()}
		for _, row := range rows {
			if math.IsNaN(row.Value) || math.IsInf(row.Value, 0) {
				continue
			}
			spec.labels = append(spec.labels, row.Name)
			spec.values = append(spec.values, row.Value)
		}
		if len(spec.values) < 2 {
			continue
		}
		f := s.Name + ".svg"
		if err := barChart(filepath.Join(dir, f), spec); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// goalScores turns every row with a goal into "how many times the goal",
// oriented so that more is better.
func goalScores(r *Report) ([]string, []float64) {
	var labels []string
	var vals []float64
	for _, s := range r.Sections {
		for _, row := range s.Rows {
			if row.Goal == nil || row.Goal.Value == 0 || row.Value == 0 || math.IsNaN(row.Value) {
				continue
			}
			v := row.Value / row.Goal.Value
			if row.Goal.AtMost {
				v = row.Goal.Value / row.Value
			}
			labels = append(labels, fmt.Sprintf("%s: %s", s.Name, row.Name))
			vals = append(vals, v)
		}
	}
	return labels, vals
}

// mainUnit picks the unit most of a section's rows share.
func mainUnit(rows []Row) (string, []Row) {
	by := map[string][]Row{}
	best := ""
	for _, r := range rows {
		by[r.Unit] = append(by[r.Unit], r)
		if len(by[r.Unit]) > len(by[best]) {
			best = r.Unit
		}
	}
	return best, by[best]
}

type barSpec struct {
	title, axis string
	labels      []string
	values      []float64
	// line is drawn across the bars at this value, unless NaN.
	line float64
}

// barChart draws horizontal bars, one per label, top to bottom.
func barChart(path string, s barSpec) error {
	p := plot.New()
	p.Title.Text = s.title
	p.X.Label.Text = s.axis
	p.X.Min = 0
	n := len(s.values)
	// NominalY counts from the bottom: reverse so the first row is on top.
	vals := make(plotter.Values, n)
	labels := make([]string, n)
	for i := range n {
		vals[n-1-i] = s.values[i]
		labels[n-1-i] = truncate(s.labels[i], 60)
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(12))
	if err != nil {
		return fmt.Errorf("bars for %s: %w", s.title, err)
	}
	bars.Horizontal = true
	bars.Color = color.RGBA{R: 70, G: 110, B: 170, A: 255}
	bars.LineStyle.Width = 0
	p.Add(bars)
	if !math.IsNaN(s.line) {
		l, err := plotter.NewLine(plotter.XYs{{X: s.line, Y: -0.5}, {X: s.line, Y: float64(n) - 0.5}})
		if err != nil {
			return fmt.Errorf("goal line: %w", err)
		}
		l.Color = color.RGBA{R: 200, G: 40, B: 40, A: 255}
		l.Width = vg.Points(1.5)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
	}
	p.NominalY(labels...)
	height := vg.Length(1.2+0.28*float64(n)) * vg.Inch
	// SVG for the report, PNG beside it for where SVG does not show.
	for _, f := range []string{path, strings.TrimSuffix(path, ".svg") + ".png"} {
		if err := p.Save(10*vg.Inch, height, f); err != nil {
			return fmt.Errorf("save %s: %w", f, err)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
