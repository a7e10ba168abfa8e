package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cairnv1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/internal/lab"
)

// sessionKey names one session from one end: "node1 mesh:node2",
// "node1 peer:tor-r1", "tor1 node3".
type sessionKey string

// liveMarks is what tells whether a session was reset between two looks:
// each agent's flap count per session (its metrics; a session re-created
// or a BGP server restarted counts too) and the time BIRD says each of its
// sessions came up.
type liveMarks struct {
	flaps map[sessionKey]float64
	since map[sessionKey]time.Time
	state map[sessionKey]bool // Established
}

func readLiveMarks(ctx context.Context, t *testing.T, l *lab.Lab) liveMarks {
	t.Helper()
	m := liveMarks{flaps: map[sessionKey]float64{}, since: map[sessionKey]time.Time{}, state: map[sessionKey]bool{}}
	for _, n := range l.Plan().Nodes() {
		s := mustScrape(ctx, t, l, n.Name)
		for _, mt := range s.families["cairn_bgp_session_flaps_total"].GetMetric() {
			for _, lb := range mt.GetLabel() {
				if lb.GetName() == "peer" {
					m.flaps[sessionKey(n.Name+" "+lb.GetValue())] = mt.GetCounter().GetValue()
				}
			}
		}
	}
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Routers {
		for _, s := range r.Sessions {
			k := sessionKey(r.Router.Name + " " + s.Peer)
			m.since[k], m.state[k] = s.Since, s.Established()
		}
	}
	return m
}

// pair names a session by the names at its ends, sorted: "node1-node2",
// "node1-tor1", from either end's key ("node1 mesh:node2", "node1
// peer:tor-r1", "tor1 node1").
func pair(k sessionKey) string {
	x, y, _ := strings.Cut(string(k), " ")
	y = strings.TrimPrefix(strings.TrimPrefix(y, "mesh:"), "peer:")
	if r, ok := strings.CutPrefix(y, "tor-r"); ok { // BGPPeer tor-r1 is tor1
		y = "tor" + r
	}
	ends := []string{x, y}
	slices.Sort(ends)
	return ends[0] + "-" + ends[1]
}

// resets lists the sessions that went down between a and b, seen from
// either end, by pair.
func resets(a, b liveMarks) map[string]bool {
	out := map[string]bool{}
	for k, f := range b.flaps {
		if f != a.flaps[k] {
			out[pair(k)] = true
		}
	}
	for k, s := range b.since {
		if !s.Equal(a.since[k]) {
			out[pair(k)] = true
		}
	}
	return out
}

// allPairs lists every session of m by pair.
func allPairs(m liveMarks) []string {
	set := map[string]bool{}
	for k := range m.flaps {
		set[pair(k)] = true
	}
	for k := range m.since {
		set[pair(k)] = true
	}
	return keys(set)
}

// TestLiveChanges is issue 13's must-show for live changes: on a running
// one-rack lab of four nodes (iBGP full mesh, eBGP with TCP-MD5 to a BIRD
// top-of-rack router) it changes, one at a time, node1's listen port (a
// node.node1 BGPConfiguration), node2's AS number (its annotation, and
// the ToR's neighbour), and the ToR sessions' password (BIRD, then the
// Secret the BGPPeer reads). After each, the lab converges again (every
// session Established, every pod routed from every node and the ToR) and
// exactly the sessions the change concerns were reset: none else.
func TestLiveChanges(t *testing.T) {
	l := upLab(t, lab.Options{NodesPerRack: 4, Router: lab.RouterBIRD, Instance: "e2elive", PodsPerNode: 1,
		RouterPassword: "lab-md5-First-1"})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cairn, err := l.CairnClient()
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, concerned func(pair string) bool, apply func() error) {
		t.Run(what, func(t *testing.T) {
			before := readLiveMarks(ctx, t, l)
			start := time.Now()
			if err := apply(); err != nil {
				t.Fatal(err)
			}
			// The change has taken effect once every session it concerns
			// has been reset; then the lab must converge again.
			var got map[string]bool
			err := waitUntil(3*time.Minute, func() bool {
				got = resets(before, readLiveMarks(ctx, t, l))
				for _, p := range allPairs(before) {
					if concerned(p) && !got[p] {
						return false
					}
				}
				return true
			})
			if err != nil {
				t.Fatalf("%s: not every session it concerns was re-established: reset %v: %v", what, keys(got), err)
			}
			if err := l.WaitConverged(ctx, 3*time.Minute); err != nil {
				t.Fatalf("%s: the lab did not converge again: %v", what, err)
			}
			took := time.Since(start)
			after := readLiveMarks(ctx, t, l)
			got = resets(before, after)
			var unrelated, expected []string
			for p := range got {
				if concerned(p) {
					expected = append(expected, p)
				} else {
					unrelated = append(unrelated, p)
				}
			}
			slices.Sort(expected)
			slices.Sort(unrelated)
			t.Logf("%s: converged again in %s (load %s); sessions reset: %d %v; unrelated sessions reset: %d %v; sessions in all: %d",
				what, took.Round(time.Millisecond), loadAverage(), len(expected), expected, len(unrelated), unrelated, len(allPairs(after)))
			if len(unrelated) > 0 {
				t.Errorf("%s reset sessions it does not concern: %v", what, unrelated)
			}
			for _, p := range allPairs(after) {
				if concerned(p) && !got[p] {
					t.Errorf("%s: session %s, which it concerns, was not re-established", what, p)
				}
			}
			if n := len(allPairs(after)); n != 10 {
				t.Errorf("%d sessions, want 10 (6 in the mesh, 4 to the ToR): %v", n, allPairs(after))
			}
		})
	}
	involves := func(node string) func(string) bool {
		return func(p string) bool { a, b, _ := strings.Cut(p, "-"); return a == node || b == node }
	}

	step("listen port of node1 (node.node1 BGPConfiguration)", involves("node1"), func() error {
		cfg := &cairnv1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "node.node1"}, Spec: cairnv1.BGPConfigurationSpec{ListenPort: 1790}}
		_, err := cairn.CairnV1alpha1().BGPConfigurations().Create(ctx, cfg, metav1.CreateOptions{})
		return err
	})
	step("AS number of node2", involves("node2"), func() error { return l.SetNodeAS(ctx, "node2", 64513) })
	step("password of the ToR sessions (BGPPeer tor-r1)", func(p string) bool { return strings.HasSuffix(p, "-tor1") }, func() error {
		return l.SetRouterPassword(ctx, "lab-md5-Second-2")
	})
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// loadAverage is the machine's 1-minute load average, for the figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return fmt.Sprint(f[0])
}
