package bench

import (
	"fmt"
	"math"
)

// Goal is a bound a figure should meet: at most or at least Value.
type Goal struct {
	// AtMost is true for "≤ Value" (latencies, memory), false for
	// "≥ Value" (throughput, ratios of it).
	AtMost bool    `json:"atMost"`
	Value  float64 `json:"value"`
}

// AtMost is the goal "≤ v".
func AtMost(v float64) *Goal { return &Goal{AtMost: true, Value: v} }

// AtLeast is the goal "≥ v".
func AtLeast(v float64) *Goal { return &Goal{Value: v} }

// Met says whether v meets the goal.
func (g Goal) Met(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	if g.AtMost {
		return v <= g.Value
	}
	return v >= g.Value
}

// String renders the goal with unit.
func (g Goal) String(unit string) string {
	op := "≥"
	if g.AtMost {
		op = "≤"
	}
	return fmt.Sprintf("%s %s", op, formatValue(g.Value, unit))
}

// Row is one measured figure.
type Row struct {
	Section string `json:"section"`
	// Name says what was measured ("pod-to-pod / node-to-node, throughput").
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	// Unit: "ms", "MiB", "Gbit/s", "x" (a ratio), "%", "s", "routes/s"...
	Unit string `json:"unit"`
	// Anchor is the published or reference figure this compares with,
	// and where it comes from (reference.md), or "" when there is none.
	Anchor string `json:"anchor,omitempty"`
	// Goal is the goal for this figure, nil when it has none.
	Goal *Goal `json:"goal,omitempty"`
	// Samples are the raw per-round figures the value was taken from.
	Samples []float64 `json:"samples,omitempty"`
	// Note says how it was measured, in a few words.
	Note string `json:"note,omitempty"`
}

// GoalMet is nil without a goal.
func (r Row) GoalMet() *bool {
	if r.Goal == nil {
		return nil
	}
	met := r.Goal.Met(r.Value)
	return &met
}

// formatValue prints a figure with its unit and a precision that suits it.
func formatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "–"
	}
	var s string
	switch a := math.Abs(v); {
	case a >= 1000:
		s = fmt.Sprintf("%.0f", v)
	case a >= 100:
		s = fmt.Sprintf("%.0f", v)
	case a >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.2f", v)
	}
	switch unit {
	case "":
		return s
	case "x":
		return s + "×"
	case "%":
		return s + " %"
	}
	return s + " " + unit
}
