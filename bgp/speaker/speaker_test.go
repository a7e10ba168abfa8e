package speaker

import (
	"context"
	"errors"
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()

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
		if err == nil || !strings.Contains(err.Error(), "start GoBGP (listen port "+strconv.Itoa(port)) {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not fail")
	}
	if _, open := <-sp.Learned(); open {
		t.Error("Learned not closed after a failed Run")
	}
	if st := sp.PeerStates(); len(st) != 0 {
		t.Errorf("states %+v", st)
	}
}
