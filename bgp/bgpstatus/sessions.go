package bgpstatus

import (
	"cmp"
	"slices"
	"strings"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// Report is one node's sessions, as its CairnNodeStatus has them.
type Report struct {
	Node     string
	Sessions []v1.BGPSessionStatus
}

// tally sums the sessions that belong to one object.
type tally struct {
	nodes       []string
	sessions    int32
	established int32
	down        []v1.SessionDown
}

// count tallies the sessions of reports for which mine is true.
func count(reports []Report, mine func(v1.BGPSessionStatus) bool) tally {
	var t tally
	for _, r := range reports {
		n := 0
		for _, s := range r.Sessions {
			if !mine(s) {
				continue
			}
			n++
			t.sessions++
			if s.State == "Established" {
				t.established++
				continue
			}
			t.down = append(t.down, v1.SessionDown{Node: r.Node, PeerIP: s.PeerIP, State: s.State, Reason: s.Reason, Problem: s.Problem})
		}
		if n > 0 {
			t.nodes = append(t.nodes, r.Node)
		}
	}
	slices.Sort(t.nodes)
	t.nodes = slices.Compact(t.nodes)
	return t
}

// listed is at most v1.MaxListedInStatus sessions of down: first one of
// each problem, so every problem shows in the status (Events are raised
// from it), then the others, by node and peer address.
func listed(down []v1.SessionDown) []v1.SessionDown {
	slices.SortFunc(down, func(a, b v1.SessionDown) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.PeerIP, b.PeerIP))
	})
	var out, rest []v1.SessionDown
	seen := map[v1.SessionProblem]bool{}
	for _, d := range down {
		if d.Problem != "" && !seen[d.Problem] {
			seen[d.Problem] = true
			out = append(out, d)
		} else {
			rest = append(rest, d)
		}
	}
	out = append(out, rest...)
	if len(out) > v1.MaxListedInStatus {
		out = out[:v1.MaxListedInStatus]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// commonestReason is the reason most sessions that are down give (ties:
// the first in order); a session without a reason gives its state.
func commonestReason(down []v1.SessionDown) string {
	counts := map[string]int{}
	best, bestN := "", 0
	for _, d := range down {
		r := d.Reason
		if r == "" {
			r = "session " + d.State
		}
		counts[r]++
		if counts[r] > bestN || (counts[r] == bestN && r < best) {
			best, bestN = r, counts[r]
		}
	}
	return best
}

// capNames is the first v1.MaxListedInStatus of sorted names.
func capNames(names []string) []string {
	if len(names) > v1.MaxListedInStatus {
		return names[:v1.MaxListedInStatus]
	}
	if len(names) == 0 {
		return nil
	}
	return names
}
