package speaker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// TestHoldTimerExpiryDropsStalePaths: a raw peer that negotiated graceful
// restart (restart time 120 s) announces a block. When it closes its
// connection (an agent restarting), the speaker keeps the block, stale;
// when it falls silent with the connection open (its link cut), the block
// leaves Learned() at the hold time (3 s), not 120 s later. Loopback, no
// root; the helper process runs the speaker, so GoBGP's log record that
// reports the expiry is the real one of the pinned GoBGP.
func TestHoldTimerExpiryDropsStalePaths(t *testing.T) {
	if testing.Short() {
		t.Skip("real BGP sessions over loopback (tens of seconds); skipped with -short")
	}
	const holdSecs = 3
	tor := netip.MustParseAddr("127.0.0.7")
	a, port := startSpeakerForRawTor(t, tor)
	block := "10.244.7.0/26 via " + tor.String()

	session := func(t *testing.T) (*rawPeer, func()) {
		p := dialRawOpen(t, tor, port, rawOpen{asn: 65001, holdTime: holdSecs, grRestartTime: 120})
		stop := p.keepalives(500 * time.Millisecond)
		t.Cleanup(stop)
		pfx, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix("10.244.7.0/26"))
		p.send(p.encode(bgp.NewBGPUpdateMessage(nil, rawAttrs(tor), []bgp.PathNLRI{{NLRI: pfx}})))
		p.send(p.encode(bgp.NewBGPUpdateMessage(nil, nil, nil))) // End-of-RIB
		a.WaitLearned(t, "the peer's block", sessionTimeout, exactly(block))
		return p, stop
	}
	t.Run("a peer that closes its connection is restarting: its block stays", func(t *testing.T) {
		p, stop := session(t)
		stop()
		p.conn.Close()
		a.WaitStates(t, "session down", sessionTimeout, func(st []PeerState) bool { return st[0].State != StateEstablished })
		a.HoldsLearned(t, "the restarting peer's block kept (stale)", 2*holdSecs*time.Second, exactly(block))
	})
	t.Run("a peer that falls silent is gone: its block leaves at the hold time", func(t *testing.T) {
		_, stop := session(t)
		stop()
		silent := time.Now()
		a.WaitLearned(t, "the silent peer's block withdrawn", 10*holdSecs*time.Second, exactly())
		t.Logf("block withdrawn %v after the peer's last keepalive (hold time %ds; graceful restart alone keeps it 120 s more)",
			time.Since(silent).Round(10*time.Millisecond), holdSecs)
		st := a.States(t)
		if !strings.Contains(st[0].LastError, holdTimerExpiredMsg) || st[0].Flaps == 0 {
			t.Errorf("status after the hold timer expired: %+v", st[0])
		}
	})
}

// keepalives sends a KEEPALIVE every interval and reads (and drops)
// whatever the speaker sends, until stop is called; stop waits for the
// sender to end.
func (p *rawPeer) keepalives(every time.Duration) (stop func()) {
	ka, _ := bgp.NewBGPKeepAliveMessage().Serialize()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, p.conn) }()
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				_, _ = p.conn.Write(ka) // a failed write ends nothing: the test watches the speaker
			}
		}
	}()
	var once bool
	return func() {
		if !once {
			once = true
			close(quit)
			<-done
		}
	}
}

// TestHoldExpiryHandler: GoBGP's per-peer logger carries the neighbour as
// "Key"; the handler reports the expiry record for that address whatever
// the operator's log level, and passes on only what the level lets through.
func TestHoldExpiryHandler(t *testing.T) {
	var got []netip.Addr
	var out bytes.Buffer
	h := &holdExpiryHandler{
		next:   slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError}),
		report: func(a netip.Addr) { got = append(got, a) },
	}
	log := slog.New(h).With("component", "gobgp")
	log.With("Topic", "Peer", "Key", "10.0.0.9").Warn(holdTimerExpiredMsg, "State", "BGP_FSM_ESTABLISHED")
	log.With("Topic", "Peer", "Key", "10.0.0.8").Warn("some other warning")
	log.Warn(holdTimerExpiredMsg) // no peer: nothing to report
	log.With("Key", "10.0.0.7").Error("failed")
	if want := []netip.Addr{netip.MustParseAddr("10.0.0.9")}; !slices.Equal(got, want) {
		t.Errorf("reported %v, want %v", got, want)
	}
	if s := out.String(); strings.Contains(s, holdTimerExpiredMsg) || !strings.Contains(s, "failed") {
		t.Errorf("passed on %q: want only the error", s)
	}
	if !h.Enabled(context.Background(), slog.LevelWarn) || h.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("enabled levels: want Warn and above only")
	}
}

// startSpeakerForRawTor runs a speaker with graceful restart on 127.0.0.1
// that announces 10.244.1.0/26 and waits for a raw peer (AS 65001) from
// tor to connect; it returns the speaker and its port.
func startSpeakerForRawTor(t *testing.T, tor netip.Addr) (*speakerProc, int32) {
	t.Helper()
	port := freeLoopbackPort(t)
	a := startSpeaker(t, "A", "", helperConfig{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: 64512, ListenPort: port,
		ListenAddresses: []string{"127.0.0.1"}, GracefulRestart: &GROptions{Enabled: true}, InitialSyncTimeout: 5 * time.Second})
	a.SetFilter(t, "10.244.0.0/16")
	a.SetPeers(t, Peer{Name: "tor", Address: tor, ASN: 65001, Passive: true})
	a.SetAds(t, "10.244.1.0/26")
	return a, port
}
