package agent

import (
	"errors"
	"strings"
	"testing"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

const netstatSample = `TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPAOGood
TcpExt: 0 7 2 5 0
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
`

func TestReadNetstat(t *testing.T) {
	got, err := readNetstat(strings.NewReader(netstatSample))
	if err != nil {
		t.Fatal(err)
	}
	if want := (md5Counters{Failure: 5, NotFound: 7, Unexpected: 2}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "TcpExt: A B\nTcpExt: 1\n", "TcpExt: TCPMD5Failure\nTcpExt: x\n"} {
		if _, err := readNetstat(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestAuthWatch: which sessions a rise of each counter marks, and how long
// a mark stays.
func TestAuthWatch(t *testing.T) {
	signedDown := authSession{Name: "peer:tor", HasPassword: true}
	plainDown := authSession{Name: "mesh:node2"}
	signedUp := authSession{Name: "peer:rr", HasPassword: true, Established: true}
	all := []authSession{signedDown, plainDown, signedUp}
	for _, tc := range []struct {
		name  string
		steps []md5Counters // readings after the baseline {0,0,0}
		// sessions at the last step; all when nil
		last []authSession
		want map[string]string
	}{
		{name: "no rise", steps: []md5Counters{{}}, want: map[string]string{}},
		{name: "wrong signature marks the signed session that is down", steps: []md5Counters{{Failure: 1}},
			want: map[string]string{"peer:tor": authReasonWrong}},
		{name: "missing signature", steps: []md5Counters{{NotFound: 3}}, want: map[string]string{"peer:tor": authReasonMissing}},
		{name: "unexpected signature marks the unsigned session", steps: []md5Counters{{Unexpected: 1}},
			want: map[string]string{"mesh:node2": authReasonUnexpected}},
		{name: "the mark stays while the counters rest", steps: []md5Counters{{Failure: 1}, {Failure: 1}, {Failure: 1}},
			want: map[string]string{"peer:tor": authReasonWrong}},
		{name: "established clears the mark", steps: []md5Counters{{Failure: 1}, {Failure: 1}},
			last: []authSession{{Name: "peer:tor", HasPassword: true, Established: true}}, want: map[string]string{}},
		{name: "a password removed clears the mark", steps: []md5Counters{{Failure: 1}, {Failure: 1}},
			last: []authSession{{Name: "peer:tor"}}, want: map[string]string{}},
		{name: "a session gone clears the mark", steps: []md5Counters{{Failure: 1}, {Failure: 1}},
			last: []authSession{plainDown}, want: map[string]string{}},
	} {
		readings := append([]md5Counters{{}}, tc.steps...)
		i := 0
		w := authWatch{read: func() (md5Counters, error) { r := readings[i]; i++; return r, nil }}
		var got map[string]string
		for step := range readings {
			sessions := all
			if step == len(readings)-1 && tc.last != nil {
				sessions = tc.last
			}
			got = w.observe(sessions)
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s: got %q, want %q", tc.name, k, got[k], v)
			}
		}
	}
}

// TestAuthWatchUnreadable: counters that cannot be read mark nothing and
// keep what was marked.
func TestAuthWatchUnreadable(t *testing.T) {
	fail := false
	n := uint64(0)
	w := authWatch{read: func() (md5Counters, error) {
		if fail {
			return md5Counters{}, errors.New("no /proc")
		}
		n++
		return md5Counters{Failure: n}, nil
	}}
	s := []authSession{{Name: "peer:tor", HasPassword: true}}
	w.observe(s)
	w.observe(s)
	fail = true
	if got := w.observe(s); got["peer:tor"] != authReasonWrong {
		t.Errorf("after a failed read: %v", got)
	}
}

func TestSessionProblem(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      speaker.PeerState
		auth   string
		want   v1.SessionProblem
		reason string
	}{
		{"established", speaker.PeerState{State: speaker.StateEstablished, LastError: speaker.ReasonMaxPrefixes}, "x", "", speaker.ReasonMaxPrefixes},
		{"auth", speaker.PeerState{State: speaker.StateActive, LastError: "connect timeout"}, authReasonWrong, v1.ProblemAuthFailure, authReasonWrong},
		{"max prefixes", speaker.PeerState{State: speaker.StateIdle, LastError: speaker.ReasonMaxPrefixes}, "", v1.ProblemMaxPrefixes, speaker.ReasonMaxPrefixes},
		{"other", speaker.PeerState{State: speaker.StateIdle, LastError: "hold timer expired"}, "", "", "hold timer expired"},
	} {
		got, reason := sessionProblem(tc.p, tc.auth)
		if got != tc.want || reason != tc.reason {
			t.Errorf("%s: got %q %q, want %q %q", tc.name, got, reason, tc.want, tc.reason)
		}
	}
}
