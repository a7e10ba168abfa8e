package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnclient "github.com/cairn-net/cairn/apis/client/clientset/versioned/typed/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/cmd/cairn-node/internal/health"
	"github.com/cairn-net/cairn/felix"
)

// maxLearnedInStatus caps the learned routes listed in CairnNodeStatus;
// the count is always exact.
const maxLearnedInStatus = 256

// statusPoll is how often the status is recomputed; it is written only
// when it changed or the refresh interval passed, so sessions coming up
// show within a second without a write per second.
const statusPoll = time.Second

// statusWriter publishes the node's CairnNodeStatus.
type statusWriter struct {
	// contact is marked whenever the API server answers, for readiness.
	contact *health.Beat
	client  cairnclient.CairnV1alpha1Interface
	node    string
	version string
	ctrl    *controller
	speaker statusSpeaker
	learned func() []felix.LearnedRoute
	// refused are the learned routes felix does not install, and why.
	refused func() map[netip.Prefix]string
	log     *slog.Logger
	// auth marks sessions whose peer's TCP-MD5 signature this node's
	// kernel refuses.
	auth authWatch

	written   *v1.CairnNodeStatusStatus // last written, nil before the first
	writtenAt time.Time
	// writes counts the writes by cause; nil counts nothing.
	writes *prometheus.CounterVec
	// obj is the object as the last write left it: the next one goes
	// over it without reading it again.
	obj *v1.CairnNodeStatus
}

// Causes of a status write, as cairn_node_status_writes_total counts them.
const (
	statusChange  = "change"
	statusRefresh = "refresh"
)

// run writes the status when it changes, and at least every refresh.
func (w *statusWriter) run(ctx context.Context, refresh time.Duration) {
	t := time.NewTicker(statusPoll)
	defer t.Stop()
	for {
		next := w.compute(nil)
		cause := statusChange
		if w.written != nil && sameStatus(*w.written, next) {
			cause = statusRefresh
		}
		if cause == statusChange || time.Since(w.writtenAt) >= refresh {
			err := w.write(ctx)
			if apiAnswered(err) {
				w.contact.Mark(time.Now())
			}
			if err == nil && w.writes != nil {
				w.writes.WithLabelValues(cause).Inc()
			}
			if err != nil && ctx.Err() == nil {
				w.log.Warn("writing CairnNodeStatus failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sameStatus compares two statuses ignoring timestamps.
func sameStatus(a, b v1.CairnNodeStatusStatus) bool {
	a.LastUpdated, b.LastUpdated = nil, nil
	a.Conditions, b.Conditions = nil, nil
	for _, st := range []*v1.CairnNodeStatusStatus{&a, &b} {
		peers := append([]v1.BGPSessionStatus(nil), st.BGP.Peers...)
		for i := range peers {
			peers[i].Since = nil
		}
		st.BGP.Peers = peers
	}
	return equality.Semantic.DeepEqual(a, b)
}

// write puts the status on the object as last written: one request. The
// object is read (or created) only at the start and when a write finds
// it changed or gone, and then written at once.
func (w *statusWriter) write(ctx context.Context) error {
	err := w.update(ctx)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		w.obj = nil
		err = w.update(ctx)
	}
	return err
}

func (w *statusWriter) update(ctx context.Context) error {
	if w.obj == nil {
		cur, err := w.read(ctx)
		if err != nil {
			return err
		}
		w.obj = cur
	}
	next := w.obj.DeepCopy()
	next.Status = w.compute(w.obj.Status.Conditions)
	updated, err := w.client.CairnNodeStatuses().UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update CairnNodeStatus %s: %w", w.node, err)
	}
	w.obj = updated
	w.written, w.writtenAt = &next.Status, time.Now()
	return nil
}

// read gets the node's CairnNodeStatus, creating it if there is none.
func (w *statusWriter) read(ctx context.Context) (*v1.CairnNodeStatus, error) {
	c := w.client.CairnNodeStatuses()
	cur, err := c.Get(ctx, w.node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur, err = c.Create(ctx, &v1.CairnNodeStatus{ObjectMeta: metav1.ObjectMeta{Name: w.node}, Spec: v1.CairnNodeStatusSpec{Node: w.node}}, metav1.CreateOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("get CairnNodeStatus %s: %w", w.node, err)
	}
	return cur, nil
}

func (w *statusWriter) compute(conds []metav1.Condition) v1.CairnNodeStatusStatus {
	last := w.ctrl.lastResult()
	now := metav1.Now()
	st := v1.CairnNodeStatusStatus{AgentVersion: w.version, LastUpdated: &now}
	st.Conditions = conds
	states := w.speaker.PeerStates()
	auth := w.auth.observe(authSessions(states, last.peers))
	for _, p := range states {
		problem, reason := sessionProblem(p, auth[p.Name])
		s := v1.BGPSessionStatus{PeerIP: p.Address.String(), Name: p.Name, ASNumber: int64(p.ASN), BGPPeer: peering.BGPPeerOf(p.Name),
			Type: sessionType(p.Name), State: string(p.State), Reason: reason, Problem: problem, BFD: string(p.BFD),
			PrefixesReceived: int64(p.Received), PrefixesAccepted: int64(p.Accepted), PrefixesAdvertised: int64(p.Advertised)}
		if p.State == speaker.StateEstablished {
			st.BGP.Established++
			since := metav1.NewTime(time.Now().Add(-p.Uptime).Truncate(time.Second))
			s.Since = &since
		} else {
			st.BGP.NotEstablished++
		}
		st.BGP.Peers = append(st.BGP.Peers, s)
	}
	for _, b := range last.blocks {
		st.Blocks = append(st.Blocks, b.String())
	}
	for _, a := range last.announced {
		st.Routes.Announced = append(st.Routes.Announced, a.Prefix.String())
	}
	if w.learned != nil {
		var refused map[netip.Prefix]string
		if w.refused != nil {
			refused = w.refused()
		}
		st.Routes.Learned, st.Routes.LearnedCount, st.Routes.RefusedCount = learnedStatus(w.learned(), refused, maxLearnedInStatus)
		importRefusedStatus(&st.Routes, w.speaker)
	}
	cond := metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Synced", Message: "node state applied"}
	if last.err != nil {
		st.LastError = last.err.Error()
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "SyncError", last.err.Error()
	} else if last.at.IsZero() {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "Starting", "first sync not done yet"
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	return st
}

// learnedStatus lists learned routes in their order, each installed or
// refused with felix's reason, at most limit of them: refused ones first,
// so the list always says why a missing route is missing. It also counts
// all learned and all refused routes.
func learnedStatus(routes []felix.LearnedRoute, refused map[netip.Prefix]string, limit int) ([]v1.LearnedRouteStatus, int32, int32) {
	listed := make([]bool, len(routes))
	n, nRefused := 0, 0
	for i, r := range routes {
		if _, ok := refused[r.Prefix]; ok {
			nRefused++
			if n < limit {
				listed[i], n = true, n+1
			}
		}
	}
	for i := range routes {
		if n == limit {
			break
		}
		if !listed[i] {
			listed[i], n = true, n+1
		}
	}
	var out []v1.LearnedRouteStatus
	for i, r := range routes {
		if !listed[i] {
			continue
		}
		lr := v1.LearnedRouteStatus{Prefix: r.Prefix.String(), State: v1.LearnedRouteInstalled}
		for _, h := range r.NextHops {
			lr.NextHops = append(lr.NextHops, h.String())
		}
		if why, ok := refused[r.Prefix]; ok {
			lr.State, lr.Reason = v1.LearnedRouteRefused, why
		}
		out = append(out, lr)
	}
	return out, int32(len(routes)), int32(nRefused)
}

// authSessions are the speaker's sessions as authWatch needs them;
// configured are the peers the controller set, with their passwords.
func authSessions(states []speaker.PeerState, configured []speaker.Peer) []authSession {
	signed := map[string]bool{}
	for _, p := range configured {
		signed[p.Name] = p.Password != ""
	}
	out := make([]authSession, 0, len(states))
	for _, p := range states {
		out = append(out, authSession{Name: p.Name, Established: p.State == speaker.StateEstablished, HasPassword: signed[p.Name]})
	}
	return out
}

// importRefusedStatus puts the paths the speaker's import rules refuse
// (owner-only imports, BGPFilters) ahead of the learned routes, within the
// same cap, and counts all of them as learned and refused: a route a peer
// tried to hijack says why it is not in the kernel.
func importRefusedStatus(rs *v1.NodeRouteStatus, spk statusSpeaker) {
	paths, total := spk.RefusedPaths()
	if total == 0 {
		return
	}
	var out []v1.LearnedRouteStatus
	for _, p := range paths[:min(len(paths), maxLearnedInStatus)] {
		out = append(out, v1.LearnedRouteStatus{Prefix: p.Prefix.String(), NextHops: []string{p.NextHop.String()},
			State: v1.LearnedRouteRefused, Reason: fmt.Sprintf("from %s: %s", p.Peer, p.Reason)})
	}
	rs.Learned = append(out, rs.Learned[:min(len(rs.Learned), maxLearnedInStatus-len(out))]...)
	rs.LearnedCount += int32(total)
	rs.RefusedCount += int32(total)
}

func sessionType(name string) string {
	switch {
	case strings.HasPrefix(name, "mesh:"):
		return "NodeMesh"
	case strings.HasPrefix(name, "peer:"):
		return "BGPPeer"
	}
	return ""
}
