package speaker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Options{RouterID: rid})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "configure BGP speaker") {
		t.Fatalf("got %v", err)
	}
}

func TestNewTwiceAndStateBeforeRun(t *testing.T) {
	for range 2 { // a second construction must not panic or share state
		sp, err := New(Options{RouterID: rid, ASN: 64512})
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.SetPeers([]Peer{{Name: "n2", Address: peerA, ASN: 64512, Password: "pw"}}); err != nil {
			t.Fatal(err)
		}
		st := sp.PeerStates()
		if len(st) != 1 || st[0].State != StateIdle || st[0].Name != "n2" || st[0].LastError != "speaker not running" {
			t.Errorf("states before Run: %+v", st)
		}
	}
}

func TestSetPeersAppliesTheValidOnes(t *testing.T) {
	sp, err := New(Options{RouterID: rid, ASN: 64512})
	if err != nil {
		t.Fatal(err)
	}
	err = sp.SetPeers([]Peer{
		{Name: "good", Address: peerA, ASN: 64512},
		{Name: "bad", Address: peerB, ASN: 0, Password: "topsecret"},
	})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bad") || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v", err)
	}
	if st := sp.PeerStates(); len(st) != 1 || st[0].Name != "good" {
		t.Errorf("states %+v, want only the good peer", st)
	}
}

// TestRunLifecycle runs a speaker in this process with no listener and no
// peer: it starts, publishes an empty learned set once synced, stops on
// cancel, closes Learned and refuses a second Run.
func TestRunLifecycle(t *testing.T) {
	sp, err := New(Options{RouterID: rid, ASN: 64512, InitialSyncTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sp.Started():
		t.Fatal("Started closed before Run")
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	select {
	case <-sp.Started():
	case <-time.After(10 * time.Second):
		t.Fatal("Started not closed 10s after Run")
	}

	sp.SetImportFilter(prefixes("10.244.0.0/16"))
	if err := sp.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	if err := sp.SetAdvertisements([]Advertisement{{Prefix: netip.MustParsePrefix("10.244.0.0/26")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case paths := <-sp.Learned():
		if len(paths) != 0 {
			t.Errorf("learned %v with no peers", paths)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no learned set after sync with no peers (sync should not wait for the timeout)")
	}
	if st := sp.PeerStates(); len(st) != 0 {
		t.Errorf("states %+v", st)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, open := <-sp.Learned(); open {
		t.Error("Learned not closed after Run returned")
	}
	if err := sp.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
}

func TestRunFailsWhenThePortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	sp, err := New(Options{RouterID: rid, ASN: 64512, ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sp.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "listen port "+strconv.Itoa(port)+"): listen tcp4") {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not fail")
	}
	if _, open := <-sp.Learned(); open {
		t.Error("Learned not closed after a failed Run")
	}
	select {
	case <-sp.Started(): // a waiter must not hang on a Run that failed
	default:
		t.Error("Started not closed after a failed Run")
	}
	if st := sp.PeerStates(); len(st) != 0 {
		t.Errorf("states %+v", st)
	}
}

// TestForwardingStateClaimedOnlyByTheRestartsPeers runs a speaker that kept
// forwarding state in this process, with passive peers that never connect,
// and reads from its log which peers it added claiming the restart.
func TestForwardingStateClaimedOnlyByTheRestartsPeers(t *testing.T) {
	peerC := netip.MustParseAddr("10.0.0.4")
	cases := []struct {
		name string
		// first is the restart's peer set, stated with the advertisements;
		// syncFirst lets the initial sync time out before that.
		first     []netip.Addr
		syncFirst bool
		wantFirst bool
	}{
		{name: "peers stated after the initial sync timed out are the restart's", first: []netip.Addr{peerA}, syncFirst: true, wantFirst: true},
		{name: "with no peer, the sync is over at once and no later peer claims", first: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			sp, err := New(Options{RouterID: rid, ASN: 64512, InitialSyncTimeout: 100 * time.Millisecond,
				GracefulRestart: &GROptions{Enabled: true}, ForwardingStateKept: true,
				Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- sp.Run(ctx) }()
			defer func() { cancel(); <-done }()

			passive := func(addrs ...netip.Addr) []Peer {
				var ps []Peer
				for _, a := range addrs {
					ps = append(ps, Peer{Address: a, ASN: 64512, Passive: true})
				}
				return ps
			}
			if tc.syncFirst {
				waitLearnedSet(t, sp) // the timer ended the initial sync
			}
			if err := sp.SetPeers(passive(tc.first...)); err != nil {
				t.Fatal(err)
			}
			if err := sp.SetAdvertisements([]Advertisement{{Prefix: netip.MustParsePrefix("10.244.0.0/26")}}); err != nil {
				t.Fatal(err)
			}
			if !tc.syncFirst {
				waitLearnedSet(t, sp)
			}
			waitAdded(t, logs, len(tc.first))
			if err := sp.SetPeers(passive(append(tc.first, peerC)...)); err != nil {
				t.Fatal(err)
			}
			claims := waitAdded(t, logs, len(tc.first)+1)
			for _, a := range tc.first {
				if claims[a.String()] != tc.wantFirst {
					t.Errorf("peer %s of the restart claims forwarding state: %v, want %v", a, claims[a.String()], tc.wantFirst)
				}
			}
			if claims[peerC.String()] {
				t.Errorf("peer %s added after the restart claims forwarding state", peerC)
			}
		})
	}
}

// waitLearnedSet waits for the first Learned() set: the initial sync is over.
func waitLearnedSet(t *testing.T, sp *Speaker) {
	t.Helper()
	select {
	case <-sp.Learned():
	case <-time.After(20 * time.Second):
		t.Fatal("no learned set: the initial sync did not end")
	}
}

// waitAdded waits until the log shows n peers added and returns, per peer
// address, whether it was added claiming forwarding state.
func waitAdded(t *testing.T, logs *lockedBuffer, n int) map[string]bool {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		claims := map[string]bool{}
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct {
				Msg     string `json:"msg"`
				Address string `json:"address"`
				Claims  bool   `json:"claimsForwardingState"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "added BGP peer" {
				claims[rec.Address] = rec.Claims
			}
		}
		if len(claims) >= n {
			return claims
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d peers added, want %d; logs:\n%s", len(claims), n, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
