package bench

import (
	"math"
	"slices"
	"time"
)

// Quantile is the q-quantile (0..1) of xs by the nearest-rank method: the
// smallest sample with at least q of the samples at or below it. NaN when
// xs is empty.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Median is Quantile(xs, 0.5).
func Median(xs []float64) float64 { return Quantile(xs, 0.5) }

// Ratios divides num[i] by den[i], pairwise: both of one round.
func Ratios(num, den []float64) []float64 {
	out := make([]float64, 0, min(len(num), len(den)))
	for i := range min(len(num), len(den)) {
		if den[i] != 0 {
			out = append(out, num[i]/den[i])
		}
	}
	return out
}

// Millis converts durations to milliseconds.
func Millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}
