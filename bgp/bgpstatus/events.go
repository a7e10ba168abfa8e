package bgpstatus

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// Event is an Event a status transition deserves, on the object whose
// status changed.
type Event struct {
	// Type is corev1.EventTypeWarning or EventTypeNormal.
	Type   string
	Reason string
	// Message never holds a password: it is made of node names,
	// addresses and the reasons the agents reported, which never do.
	Message string
}

// Event reasons of session problems.
const (
	ReasonAuthFailure       = "BGPAuthFailure"
	ReasonMaxPrefixExceeded = "BGPMaxPrefixExceeded"
)

// problemEvents names the Event of each session problem.
var problemEvents = map[v1.SessionProblem]struct{ reason, what string }{
	v1.ProblemAuthFailure: {ReasonAuthFailure, "TCP-MD5 authentication failing"},
	v1.ProblemMaxPrefixes: {ReasonMaxPrefixExceeded, "shut for exceeding maxPrefixes"},
}

// maxNodesInEvent bounds the sessions an Event message names.
const maxNodesInEvent = 5

// SessionEvents are the Events of an object whose sessions down went from
// before to after (both as its status lists them): one for each problem
// that no session had before and some session has now. A problem that
// stays raises nothing more, however the sessions flap; one that clears
// and comes back raises again (the caller limits how often).
func SessionEvents(before, after []v1.SessionDown) []Event {
	had := map[v1.SessionProblem]bool{}
	for _, d := range before {
		had[d.Problem] = true
	}
	now := map[v1.SessionProblem][]v1.SessionDown{}
	for _, d := range after {
		if d.Problem != "" && !had[d.Problem] {
			now[d.Problem] = append(now[d.Problem], d)
		}
	}
	var out []Event
	for _, p := range slices.Sorted(func(yield func(v1.SessionProblem) bool) {
		for p := range now {
			if !yield(p) {
				return
			}
		}
	}) {
		pe, ok := problemEvents[p]
		if !ok {
			continue
		}
		out = append(out, Event{Type: corev1.EventTypeWarning, Reason: pe.reason, Message: sessionsMessage(pe.what, now[p])})
	}
	return out
}

// sessionsMessage: "<what> on 3 session(s): node1 to 10.0.0.1, ...: <reason>".
func sessionsMessage(what string, down []v1.SessionDown) string {
	var names []string
	for i, d := range down {
		if i == maxNodesInEvent {
			names = append(names, fmt.Sprintf("and %d more", len(down)-maxNodesInEvent))
			break
		}
		names = append(names, d.Node+" to "+d.PeerIP)
	}
	msg := fmt.Sprintf("%s on %d session(s): %s", what, len(down), strings.Join(names, ", "))
	if r := down[0].Reason; r != "" {
		msg += ": " + r
	}
	return msg
}
