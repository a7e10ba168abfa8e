package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// dashboardPath is the Grafana dashboard shipped under deploy/.
var dashboardPath = filepath.Join("..", "..", "..", "..", "deploy", "grafana", "cairn-dashboard.json")

// TestDashboardQueriesOnlyRegisteredSeries: every metric name in every
// query of the dashboard (panels, rows' panels, template variables) is
// one the agent registers, so no panel is silently empty after a rename.
func TestDashboardQueriesOnlyRegisteredSeries(t *testing.T) {
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	exprs := dashboardQueries(dash)
	if len(exprs) < 20 {
		t.Fatalf("found only %d queries in %s: is the walk still right?", len(exprs), dashboardPath)
	}
	reg, _ := testRegistry(t)
	known := registeredNames(t, reg)
	used := map[string]bool{}
	for _, e := range exprs {
		names := promqlMetricNames(e)
		if len(names) == 0 {
			t.Errorf("query %q names no metric", e)
		}
		for _, n := range names {
			used[n] = true
			if !known[n] {
				t.Errorf("query %q uses %s, which the agent does not register", e, n)
			}
		}
	}
	// The main series of each area have a panel.
	for _, n := range []string{"cairn_bgp_session_state", "cairn_bgp_session_flaps_total", "cairn_bgp_prefixes_advertised",
		"cairn_felix_routes_installed", "cairn_felix_apply_duration_seconds_bucket", "cairn_ipam_pool_utilisation_ratio",
		"cairn_cni_request_duration_seconds_bucket", "cairn_cni_requests_total", "cairn_api_requests_total", "process_resident_memory_bytes"} {
		if !used[n] {
			t.Errorf("no panel queries %s", n)
		}
	}
}

// registeredNames are the series names the registry exposes; a histogram
// exposes _bucket, _sum and _count, a summary _sum and _count.
func registeredNames(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		out[n] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[n+"_bucket"], out[n+"_sum"], out[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[n+"_sum"], out[n+"_count"] = true, true
		}
	}
	return out
}

// dashboardQueries collects the PromQL of a dashboard: every "expr" of a
// target and every query of a template variable, wherever they nest.
func dashboardQueries(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if e, ok := v["expr"].(string); ok {
			out = append(out, e)
		}
		if v["type"] == "query" {
			switch q := v["query"].(type) {
			case string:
				out = append(out, q)
			case map[string]any:
				if s, ok := q["query"].(string); ok {
					out = append(out, s)
				}
			}
		}
		for _, k := range slices.Sorted(mapKeys(v)) {
			if k != "query" {
				out = append(out, dashboardQueries(v[k])...)
			}
		}
	case []any:
		for _, e := range v {
			out = append(out, dashboardQueries(e)...)
		}
	}
	return out
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var (
	promqlStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlBraces   = regexp.MustCompile(`\{[^{}]*\}|\[[^\[\]]*\]`)
	grafanaVars    = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promqlIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promqlOffset   = regexp.MustCompile(`\boffset\s+-?[0-9a-z]+`)
)

// promqlKeywords are identifiers PromQL reserves (aggregation modifiers,
// set operators) plus label_values, Grafana's variable query.
var promqlKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true}

// promqlMetricNames returns the metric names a PromQL expression (or a
// Grafana label_values query) selects: identifiers that are neither a
// function, a keyword, a label name, a string, a duration nor a Grafana
// variable.
func promqlMetricNames(expr string) []string {
	s := promqlStrings.ReplaceAllString(expr, " ")
	s = grafanaVars.ReplaceAllString(s, " ")
	for prev := ""; prev != s; { // label matchers and ranges do not nest, but brackets may follow each other
		prev = s
		s = promqlBraces.ReplaceAllString(s, " ")
	}
	s = promqlGrouping.ReplaceAllString(s, " ")
	s = promqlOffset.ReplaceAllString(s, " ")
	if rest, ok := strings.CutPrefix(strings.TrimSpace(s), "label_values("); ok {
		// label_values(metric, label): the label is no metric.
		s, _, _ = strings.Cut(rest, ",")
	}
	var out []string
	for _, loc := range promqlIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue // the exponent or unit of a number: 1e3
		}
		if promqlKeywords[name] || strings.HasPrefix(strings.TrimSpace(s[loc[1]:]), "(") {
			continue // keyword, or a function or aggregation called
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func TestPromQLMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum(cairn_bgp_session_state{state="Established",instance=~"$instance"})`, []string{"cairn_bgp_session_state"}},
		{`histogram_quantile(0.99, sum by (le, verb) (rate(cairn_cni_request_duration_seconds_bucket{verb=~"ADD|DEL"}[$__rate_interval])))`,
			[]string{"cairn_cni_request_duration_seconds_bucket"}},
		{`sum(rate(a_total[5m])) by (instance) / on(instance) group_left(version) cairn_agent_info`, []string{"a_total", "cairn_agent_info"}},
		{`count(x == 0) or vector(0)`, []string{"x"}},
		{`rate(y[5m] offset 1h) * 1e3 > bool 2`, []string{"y"}},
		{`label_values(cairn_agent_info, instance)`, []string{"cairn_agent_info"}},
		{`z{job="a{b}"} - z offset 5m`, []string{"z"}},
		{`${DS_PROMETHEUS}`, nil},
		{`max_over_time(w[1h:5m])`, []string{"w"}},
	}
	for _, tc := range tests {
		if got := promqlMetricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("promqlMetricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}
