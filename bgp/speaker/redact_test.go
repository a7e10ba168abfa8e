package speaker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func TestRedactingHandler(t *testing.T) {
	const secret = "s3cr3t-md5-key"
	sec := &secrets{}
	sec.set([]string{secret, ""})
	var buf bytes.Buffer
	quiet := &atomic.Bool{}
	log := slog.New(&redactingHandler{
		next:    slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		secrets: sec, quiet: quiet, quietMsg: "noise",
	})
	type conf struct{ AuthPassword string }
	log.With("bound", "pw="+secret).WithGroup("g").Debug("message with "+secret,
		"string", secret,
		"err", fmt.Errorf("dial: %w", errors.New("key "+secret)),
		"struct", conf{AuthPassword: secret},
		"group", slog.GroupValue(slog.String("inner", secret)),
		"int", 42,
	)
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Fatalf("secret leaked: %s", out)
	}
	if n := strings.Count(out, redacted); n != 6 {
		t.Errorf("want 6 redactions, got %d: %s", n, out)
	}
	if !strings.Contains(out, `"int":42`) {
		t.Errorf("non-string attribute changed: %s", out)
	}

	buf.Reset()
	log.Info("noise")
	if buf.Len() == 0 {
		t.Error("quiet message dropped while not quiet")
	}
	quiet.Store(true)
	buf.Reset()
	log.Info("noise")
	log.Info("other")
	if strings.Contains(buf.String(), "noise") || !strings.Contains(buf.String(), "other") {
		t.Errorf("quiet filtering wrong: %s", buf.String())
	}
}

func TestSecretsLongestFirst(t *testing.T) {
	sec := &secrets{}
	sec.set([]string{"abc"})
	sec.add([]string{"abcdef", "abc"})
	if got := sec.redact("x abcdef y abc"); got != "x "+redacted+" y "+redacted {
		t.Errorf("got %q", got)
	}
	sec.set(nil)
	if got := sec.redact("abc"); got != "abc" {
		t.Errorf("cleared secrets still redact: %q", got)
	}
}

func TestInboxNeverBlocksAndKeepsOrder(t *testing.T) {
	in := newInbox()
	cb := in.callbacks()
	a := netip.MustParseAddr("10.0.0.2")
	// Many events with nobody reading must not block the GoBGP goroutine.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			cb.OnBestPath(nil, time.Time{})
			cb.OnPathUpdate(nil, time.Time{})
		}
		cb.OnPathEor(&apiutil.Path{PeerAddress: a, Family: bgp.RF_IPv4_UC}, time.Time{})
		cb.OnPeerUpdate(&apiutil.WatchEventMessage_PeerEvent{Type: apiutil.PEER_EVENT_STATE, Peer: apiutil.Peer{State: apiutil.PeerState{
			NeighborAddress: a, SessionState: bgp.BGP_FSM_IDLE,
			DisconnectReason: api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED, DisconnectMessage: "hold timer expired",
		}}}, time.Time{})
		cb.OnPeerUpdate(&apiutil.WatchEventMessage_PeerEvent{Type: apiutil.PEER_EVENT_INIT}, time.Time{})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("callbacks blocked without a reader")
	}
	select {
	case <-in.ready:
	default:
		t.Fatal("not woken")
	}
	b := in.take()
	if !b.ribChanged || len(b.events) != 2 || b.events[0].eor == nil || b.events[1].peer == nil {
		t.Fatalf("batch %+v", b)
	}
	if ev := b.events[1].peer; ev.State != StateIdle || ev.Reason != "hold timer expired" || ev.Addr != a {
		t.Errorf("peer event %+v", ev)
	}
	if again := in.take(); again.ribChanged || len(again.events) != 0 {
		t.Errorf("take did not clear: %+v", again)
	}
}

func TestTranslatePeerEventGR(t *testing.T) {
	gr := bgp.NewCapGracefulRestart(false, false, 120, nil)
	ev := func(local, remote []bgp.ParameterCapabilityInterface) peerEvent {
		return translatePeerEvent(&apiutil.WatchEventMessage_PeerEvent{Type: apiutil.PEER_EVENT_STATE, Peer: apiutil.Peer{State: apiutil.PeerState{
			SessionState: bgp.BGP_FSM_ESTABLISHED, LocalCap: local, RemoteCap: remote,
		}}}, time.Time{})
	}
	if got := ev([]bgp.ParameterCapabilityInterface{gr}, []bgp.ParameterCapabilityInterface{gr}); !got.GRNegotiated || got.State != StateEstablished {
		t.Errorf("both sides GR: %+v", got)
	}
	if got := ev([]bgp.ParameterCapabilityInterface{gr}, nil); got.GRNegotiated {
		t.Errorf("one side GR counted as negotiated: %+v", got)
	}
}
