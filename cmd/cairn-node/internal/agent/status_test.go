package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnfake "github.com/cairn-net/cairn/apis/client/clientset/versioned/fake"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
)

// TestStatusSaysWhyALearnedRouteIsMissing: the node status lists each
// learned route as installed, or refused with felix's reason, so an
// operator sees why a route is not in the kernel; refused routes are
// listed even when the list is capped.
func TestStatusSaysWhyALearnedRouteIsMissing(t *testing.T) {
	hop := netip.MustParseAddr("172.30.1.12")
	var routes []felix.LearnedRoute
	for i := 0; i < maxLearnedInStatus+10; i++ {
		routes = append(routes, felix.LearnedRoute{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i / 4), byte(i%4) * 64}), 26), NextHops: []netip.Addr{hop}})
	}
	last := routes[len(routes)-1].Prefix // beyond the cap
	refused := map[netip.Prefix]string{
		routes[1].Prefix:                      "next hop is a local pod",
		last:                                  "next hop not on a connected subnet",
		netip.MustParsePrefix("10.99.0.0/26"): "no longer learned", // stale: not listed
	}
	w := &statusWriter{ctrl: &controller{}, speaker: &fakeSpeaker{}, log: slog.New(slog.DiscardHandler),
		learned: func() []felix.LearnedRoute { return routes },
		refused: func() map[netip.Prefix]string { return refused }}
	st := w.compute(nil).Routes
	if st.LearnedCount != int32(len(routes)) || st.RefusedCount != 2 || len(st.Learned) != maxLearnedInStatus {
		t.Fatalf("learned %d (listed %d), refused %d; want %d (listed %d), 2", st.LearnedCount, len(st.Learned), st.RefusedCount, len(routes), maxLearnedInStatus)
	}
	got := map[string]v1.LearnedRouteStatus{}
	for _, r := range st.Learned {
		got[r.Prefix] = r
	}
	for _, want := range []v1.LearnedRouteStatus{
		{Prefix: routes[0].Prefix.String(), NextHops: []string{hop.String()}, State: v1.LearnedRouteInstalled},
		{Prefix: routes[1].Prefix.String(), NextHops: []string{hop.String()}, State: v1.LearnedRouteRefused, Reason: "next hop is a local pod"},
		{Prefix: last.String(), NextHops: []string{hop.String()}, State: v1.LearnedRouteRefused, Reason: "next hop not on a connected subnet"},
	} {
		if g := got[want.Prefix]; fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("status of %s: %+v, want %+v", want.Prefix, g, want)
		}
	}
	if _, ok := got["10.99.0.0/26"]; ok {
		t.Error("a refusal of a route no longer learned is listed")
	}
	for i := 1; i < len(st.Learned); i++ {
		a, b := netip.MustParsePrefix(st.Learned[i-1].Prefix), netip.MustParsePrefix(st.Learned[i].Prefix)
		if !a.Addr().Less(b.Addr()) {
			t.Fatalf("listed out of the learned order: %s before %s", a, b)
		}
	}
}

// TestStatusSaysWhyAnImportIsRefused: a path the speaker's import rules
// refuse (a ToR announcing another node's block) is listed first, refused,
// with the peer and the rule, and counted.
func TestStatusSaysWhyAnImportIsRefused(t *testing.T) {
	hop := netip.MustParseAddr("172.30.1.12")
	routes := []felix.LearnedRoute{{Prefix: netip.MustParsePrefix("10.244.2.0/26"), NextHops: []netip.Addr{hop}}}
	tor := netip.MustParseAddr("172.30.1.1")
	spk := &fakeSpeaker{refused: []speaker.RefusedPath{{Path: speaker.Path{Prefix: netip.MustParsePrefix("10.244.2.0/26"), NextHop: tor, Peer: tor},
		Reason: "owner-only import: inside block 10.244.2.0/26 of the node at 172.30.1.12: next hop 172.30.1.1 is not its owner"}}}
	w := &statusWriter{ctrl: &controller{}, speaker: spk, log: slog.New(slog.DiscardHandler),
		learned: func() []felix.LearnedRoute { return routes }}
	st := w.compute(nil).Routes
	if st.LearnedCount != 2 || st.RefusedCount != 1 || len(st.Learned) != 2 {
		t.Fatalf("learned %d (listed %d), refused %d; want 2 (listed 2), 1", st.LearnedCount, len(st.Learned), st.RefusedCount)
	}
	want := v1.LearnedRouteStatus{Prefix: "10.244.2.0/26", NextHops: []string{"172.30.1.1"}, State: v1.LearnedRouteRefused,
		Reason: "from 172.30.1.1: owner-only import: inside block 10.244.2.0/26 of the node at 172.30.1.12: next hop 172.30.1.1 is not its owner"}
	if fmt.Sprint(st.Learned[0]) != fmt.Sprint(want) || st.Learned[1].State != v1.LearnedRouteInstalled {
		t.Errorf("listed %+v; want first %+v, then the installed route", st.Learned, want)
	}
}

// TestStatusSessions: each session's BFD state, and a max-prefix shutdown
// as the MaxPrefixes problem with the speaker's words (the limit, the
// next try).
func TestStatusSessions(t *testing.T) {
	shut := "maximum prefixes exceeded (more than 1000 prefixes of one address family): session shut down (Cease), tried again at 07:31:05 UTC (idle time 20s)"
	spk := &fakeSpeaker{states: []speaker.PeerState{
		{Name: "peer:tor-r1", Address: netip.MustParseAddr("172.30.1.1"), State: speaker.StateEstablished, BFD: speaker.BFDUp},
		{Name: "peer:tor-r1-v6", Address: netip.MustParseAddr("fd30:0:0:1::1"), State: speaker.StateIdle, LastError: shut, BFD: speaker.BFDDown},
		{Name: "mesh:node2", Address: netip.MustParseAddr("172.30.1.12"), State: speaker.StateEstablished},
	}}
	w := &statusWriter{ctrl: &controller{}, speaker: spk, log: slog.New(slog.DiscardHandler)}
	got := w.compute(nil).BGP
	want := []struct {
		bfd, problem, reason string
	}{{"Up", "", ""}, {"Down", "MaxPrefixes", shut}, {"", "", ""}}
	if len(got.Peers) != len(want) || got.Established != 2 || got.NotEstablished != 1 {
		t.Fatalf("sessions %+v", got)
	}
	for i, w := range want {
		s := got.Peers[i]
		if s.BFD != w.bfd || string(s.Problem) != w.problem || s.Reason != w.reason {
			t.Errorf("%s: bfd %q problem %q reason %q, want %q %q %q", s.Name, s.BFD, s.Problem, s.Reason, w.bfd, w.problem, w.reason)
		}
	}
}

// TestStatusWriteIsOneRequest: each CairnNodeStatus write is one UPDATE of
// the object as the last write left it; it is read only at the start and
// when a write finds it changed by someone else (then written at once),
// and created again when deleted. A GET before every write doubled every
// agent's standing requests (a refresh every StatusInterval).
func TestStatusWriteIsOneRequest(t *testing.T) {
	cl := cairnfake.NewSimpleClientset()
	conflicts := 0
	cl.PrependReactor("update", "cairnnodestatuses", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(v1.Resource("cairnnodestatuses"), "node-1", nil)
		}
		return false, nil, nil
	})
	w := &statusWriter{client: cl.CairnV1alpha1(), node: "node-1", ctrl: &controller{}, speaker: &fakeSpeaker{}, log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	steps := []struct {
		name  string
		setup func()
		want  []string // verb of each request, in order
	}{
		{"first write", nil, []string{"get", "create", "update"}},
		{"refresh", nil, []string{"update"}},
		{"refresh again", nil, []string{"update"}},
		{"changed by someone else", func() { conflicts = 1 }, []string{"update", "get", "update"}},
		{"deleted", func() {
			if err := cl.CairnV1alpha1().CairnNodeStatuses().Delete(ctx, "node-1", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"update", "get", "create", "update"}},
	}
	for _, s := range steps {
		if s.setup != nil {
			s.setup()
		}
		cl.ClearActions()
		if err := w.write(ctx); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		var got []string
		for _, a := range cl.Actions() {
			got = append(got, a.GetVerb())
		}
		if !slices.Equal(got, s.want) {
			t.Errorf("%s: requests %v, want %v", s.name, got, s.want)
		}
	}
	st, err := cl.CairnV1alpha1().CairnNodeStatuses().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Spec.Node != "node-1" || st.Status.LastUpdated == nil {
		t.Errorf("status after the writes: %+v", st)
	}
}
