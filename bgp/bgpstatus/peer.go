package bgpstatus

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// PeerInput is what a BGPPeer's status depends on.
type PeerInput struct {
	Peer *v1.BGPPeer
	// Reports of the nodes that report any session of this peer (others
	// are ignored).
	Reports []Report
	// Filters are the BGPFilters that exist, by name, each with whether
	// it is valid (nil) or why not.
	Filters map[string]error
}

// Peer is the status of in.Peer: its sessions as the nodes report them,
// and its Invalid, FiltersResolved and Ready conditions. Conditions keep
// their transition times from the current status.
func Peer(in PeerInput) v1.BGPPeerStatus {
	p := in.Peer
	t := count(in.Reports, func(s v1.BGPSessionStatus) bool { return s.BGPPeer == p.Name })
	st := v1.BGPPeerStatus{Nodes: int32(len(t.nodes)), NodeNames: capNames(t.nodes),
		Sessions: t.sessions, Established: t.established, SessionsDown: listed(t.down)}
	st.ObservedGeneration = p.Generation
	st.Conditions = copyConditions(p.Status.Conditions)
	if len(t.down) > 0 {
		st.LastError = commonestReason(t.down)
	}
	gen := p.Generation
	invalid := peerInvalid(p)
	setCondition(&st.Conditions, gen, v1.ConditionInvalid, invalid != "", pick(invalid != "", "BadSelector", "Valid"), invalid)
	missing := unresolvedFilters(p.Spec.Filters, in.Filters)
	setCondition(&st.Conditions, gen, v1.ConditionFiltersResolved, missing == "", pick(missing == "", "Resolved", "FilterUnusable"), missing)
	ready, reason, msg := peerReady(invalid, t)
	setCondition(&st.Conditions, gen, v1.ConditionReady, ready, reason, msg)
	return st
}

// peerInvalid says why the peer's selectors cannot be used; empty when
// they can.
func peerInvalid(p *v1.BGPPeer) string {
	var why []string
	for _, s := range []struct{ field, value string }{{"nodeSelector", p.Spec.NodeSelector}, {"peerSelector", p.Spec.PeerSelector}} {
		if s.value == "" {
			continue
		}
		if _, err := labels.Parse(s.value); err != nil {
			why = append(why, fmt.Sprintf("%s %q does not parse: %v", s.field, s.value, err))
		}
	}
	return strings.Join(why, "; ")
}

// unresolvedFilters says which of names do not exist or are invalid;
// empty when all can be used.
func unresolvedFilters(names []string, filters map[string]error) string {
	var why []string
	for _, n := range names {
		err, ok := filters[n]
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("BGPFilter %s does not exist", n))
		case err != nil:
			why = append(why, fmt.Sprintf("BGPFilter %s is invalid", n))
		}
	}
	return strings.Join(why, "; ")
}

func peerReady(invalid string, t tally) (bool, string, string) {
	switch {
	case invalid != "":
		return false, "Invalid", "the peer's selectors cannot be used"
	case t.sessions == 0:
		return false, "NoSessions", "no node reports a session of this peer: do node or nodeSelector select any node?"
	case t.established < t.sessions:
		return false, "SessionsDown", fmt.Sprintf("%d of %d sessions not Established: %s",
			t.sessions-t.established, t.sessions, commonestReason(t.down))
	}
	return true, "Established", fmt.Sprintf("all %d sessions Established", t.sessions)
}

// setCondition sets one condition; meta.SetStatusCondition keeps its
// transition time unless its status changes.
func setCondition(conds *[]metav1.Condition, gen int64, typ string, status bool, reason, msg string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
}

func copyConditions(in []metav1.Condition) []metav1.Condition {
	if len(in) == 0 {
		return nil
	}
	return append([]metav1.Condition(nil), in...)
}

func pick(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}
