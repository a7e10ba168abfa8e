package workload

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"
)

var discard = slog.New(slog.DiscardHandler)

// servers starts the three servers on loopback and returns their
// addresses by protocol.
func servers(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	t.Cleanup(func() {
		cancel()
		for range 3 {
			if err := <-errs; err != nil {
				t.Errorf("server: %v", err)
			}
		}
	})
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { errs <- ServeTCP(ctx, tl, "srv", discard) }()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { errs <- ServeUDP(ctx, pc, "srv", discard) }()
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { errs <- ServeHTTP(ctx, hl, "srv") }()
	return map[string]string{"tcp": tl.Addr().String(), "udp": pc.LocalAddr().String(), "http": hl.Addr().String()}
}

func TestProbeReportsTheAddressTheServerSaw(t *testing.T) {
	addrs := servers(t)
	for _, tc := range []struct {
		proto string
		count int
	}{
		{"tcp", 1}, {"tcp", 3}, {"udp", 1}, {"udp", 50}, {"http", 2},
	} {
		res, err := Probe(context.Background(), ProbeOptions{Proto: tc.proto, Addr: addrs[tc.proto], Count: tc.count, Interval: time.Millisecond})
		if err != nil {
			t.Fatalf("%s×%d: %v", tc.proto, tc.count, err)
		}
		if !res.OK() || res.Sent != tc.count || res.Local != "127.0.0.1" || len(res.Seen) != 1 || res.Seen[0] != "127.0.0.1" {
			t.Errorf("%s×%d: got %+v, want every attempt answered, seen from 127.0.0.1", tc.proto, tc.count, res)
		}
		if len(res.Hosts) != 1 || res.Hosts[0] != "srv" {
			t.Errorf("%s×%d: hosts %v, want [srv]", tc.proto, tc.count, res.Hosts)
		}
	}
}

func TestProbeCountsWhatIsNotAnswered(t *testing.T) {
	// A UDP port nobody answers on, and a TCP port nobody listens on.
	quiet, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, o := range []ProbeOptions{
		{Proto: "udp", Addr: quiet.LocalAddr().String(), Count: 3, Interval: time.Millisecond, Timeout: 50 * time.Millisecond},
		{Proto: "tcp", Addr: closedAddr, Count: 2, Interval: time.Millisecond},
	} {
		res, err := Probe(context.Background(), o)
		if err != nil {
			t.Fatalf("%s: %v", o.Proto, err)
		}
		if res.OK() || res.Received != 0 || res.Sent != o.Count || len(res.Errors) == 0 || res.SourceKept {
			t.Errorf("%s: got %+v, want %d sent, none answered, an error", o.Proto, res, o.Count)
		}
	}
}

// A server that reports another source address than the probe's (as
// behind NAT) is not OK.
func TestProbeFlagsATranslatedSource(t *testing.T) {
	var r ProbeResult
	r.Sent = 1
	r.record("10.0.0.1:5000", Reply{Peer: "192.0.2.9:6000", Host: "srv"})
	r.SourceKept = r.sourceKept()
	if r.OK() {
		t.Fatalf("%+v is OK, want not: the server saw another address", r)
	}
}

func TestHTTPHealthz(t *testing.T) {
	rec := httptest.NewRecorder()
	HTTPHandler("srv").ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || string(body) != "ok\n" {
		t.Fatalf("/healthz: %d %q", rec.Code, body)
	}
}

func TestUnknownProtocol(t *testing.T) {
	if _, err := Probe(context.Background(), ProbeOptions{Proto: "sctp", Addr: "127.0.0.1:1"}); err == nil {
		t.Fatal("probe sctp: no error")
	}
}
