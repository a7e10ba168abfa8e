package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/ipam/ipamtest"
)

// fakeFelix reports the Health a test sets.
type fakeFelix struct {
	mu sync.Mutex
	h  felix.Health
}

func (f *fakeFelix) Health() felix.Health { f.mu.Lock(); defer f.mu.Unlock(); return f.h }
func (f *fakeFelix) set(h felix.Health)   { f.mu.Lock(); f.h = h; f.mu.Unlock() }

// probeEnv is a nodeHealth over fakes: a clock, felix, a speaker whose
// state calls block while wedged, and a CNI socket that can go away.
type probeEnv struct {
	t       *testing.T
	clk     *ipamtest.Clock
	h       *nodeHealth
	felix   *fakeFelix
	synced  bool
	wedged  chan struct{} // non-nil: the speaker blocks until it is closed
	mu      sync.Mutex
	socket  net.Listener
	handler http.Handler
}

func newProbeEnv(t *testing.T) *probeEnv {
	t.Helper()
	dir := t.TempDir()
	opts, err := Options{NodeName: "node-1", AgentSocket: filepath.Join(dir, "agent.sock")}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	e := &probeEnv{t: t, clk: ipamtest.NewClock(), felix: &fakeFelix{}}
	e.h = newNodeHealth(opts, e.clk.Now)
	e.h.pingWait = 10 * time.Millisecond
	e.handler = healthMux(e.h)
	return e
}

// start attaches the parts, as Run does once the agent is wired.
func (e *probeEnv) start() {
	e.h.attach(func() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.synced }, e.felix, e.peerStates)
}

func (e *probeEnv) peerStates() {
	e.mu.Lock()
	w := e.wedged
	e.mu.Unlock()
	if w != nil {
		<-w
	}
}

func (e *probeEnv) listen() {
	l, err := net.Listen("unix", e.h.socket)
	if err != nil {
		e.t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	e.socket = l
	e.t.Cleanup(func() { l.Close() })
}

// probe answers path as the kubelet would see it.
func (e *probeEnv) probe(path string) (int, string) {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path+"?verbose", nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// want checks a probe's code and that each check named is passed (+name)
// or failed (-name).
func (e *probeEnv) want(path string, code int, checks ...string) {
	e.t.Helper()
	got, body := e.probe(path)
	if got != code {
		e.t.Errorf("%s: %d, want %d\n%s", path, got, code, body)
	}
	for _, c := range checks {
		sign, name := c[:1], c[1:]
		if !strings.Contains(body, fmt.Sprintf("[%s]%s ", sign, name)) {
			e.t.Errorf("%s: want %s\n%s", path, c, body)
		}
	}
}

// healthy makes every part look as it does on a node in sync.
func (e *probeEnv) healthy() {
	e.mu.Lock()
	e.synced = true
	e.mu.Unlock()
	now := e.clk.Now()
	e.felix.set(felix.Health{Running: true, InSync: true, LastPass: now, NextPassDue: now.Add(90 * time.Second)})
	e.h.speakerRunning.Store(true)
	e.h.controller.Mark(now)
	e.h.api.Mark(now)
	if e.socket == nil {
		e.listen()
	}
}

func TestProbesWhileStarting(t *testing.T) {
	e := newProbeEnv(t)
	// Waiting for the Node and caches: alive, not ready.
	e.want("/livez", 200, "+controller", "+felix", "+bgp")
	e.want("/readyz", 503, "-sync", "-felix-in-sync", "-bgp-running", "-cni-socket", "-apiserver")
	// Wired, nothing done yet: still alive, still not ready.
	e.start()
	e.want("/livez", 200)
	e.want("/readyz", 503, "-sync", "-felix-in-sync")
	e.healthy()
	e.want("/livez", 200)
	e.want("/readyz", 200, "+sync", "+felix-in-sync", "+bgp-running", "+cni-socket", "+apiserver", "+controller", "+felix", "+bgp")
}

// Each part that fails makes readiness fail, naming it; liveness fails
// only for the wedged loops.
func TestProbesNameWhatFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(e *probeEnv)
		live   int
		check  string
	}{
		{"felix's last pass failed", func(e *probeEnv) {
			h := e.felix.Health()
			h.InSync, h.Err = false, errors.New("route add: ENOMEM")
			e.felix.set(h)
		}, 200, "-felix-in-sync"},
		{"felix stopped", func(e *probeEnv) { e.felix.set(felix.Health{}) }, 200, "-felix-in-sync"},
		{"speaker not running", func(e *probeEnv) { e.h.speakerRunning.Store(false) }, 200, "-bgp-running"},
		{"CNI socket gone", func(e *probeEnv) { e.socket.Close() }, 200, "-cni-socket"},
		{"API server away", func(e *probeEnv) {
			e.clk.Step(e.h.apiWindow + time.Second)
			e.h.controller.Mark(e.clk.Now())
			e.felixPassed()
		}, 200, "-apiserver"},
		{"controller wedged", func(e *probeEnv) {
			e.clk.Step(e.h.controller.Due().Sub(e.clk.Now()) + stallGrace + time.Second)
			e.h.api.Mark(e.clk.Now())
			e.felixPassed()
		}, 503, "-controller"},
		{"felix wedged", func(e *probeEnv) {
			h := e.felix.Health()
			e.clk.Step(h.NextPassDue.Sub(e.clk.Now()) + stallGrace + time.Second)
			e.h.controller.Mark(e.clk.Now())
			e.h.api.Mark(e.clk.Now())
		}, 503, "-felix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newProbeEnv(t)
			e.start()
			e.healthy()
			e.want("/readyz", 200)
			tc.break_(e)
			e.want("/readyz", 503, tc.check)
			e.want("/livez", tc.live)
		})
	}
}

// felixPassed makes felix look alive at the current time.
func (e *probeEnv) felixPassed() {
	h := e.felix.Health()
	h.LastPass, h.NextPassDue = e.clk.Now(), e.clk.Now().Add(90*time.Second)
	e.felix.set(h)
}

// A speaker that stops answering is busy at first, wedged past the grace.
func TestProbesFindAWedgedSpeaker(t *testing.T) {
	e := newProbeEnv(t)
	e.start()
	e.healthy()
	release := make(chan struct{})
	e.mu.Lock()
	e.wedged = release
	e.mu.Unlock()
	defer close(release)
	e.want("/livez", 200, "+bgp")
	e.clk.Step(stallGrace + time.Second)
	e.h.controller.Mark(e.clk.Now())
	e.felixPassed()
	e.want("/livez", 503, "-bgp")
}

func TestAPIAnswered(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, true},
		{fmt.Errorf("update status: %w", apierrors.NewConflict(schema.GroupResource{Resource: "cairnnodestatuses"}, "n", errors.New("stale"))), true},
		{fmt.Errorf("get status: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), false},
		{context.DeadlineExceeded, false},
	} {
		if got := apiAnswered(tc.err); got != tc.want {
			t.Errorf("apiAnswered(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// The server listens before startHealthServer returns and answers there;
// a taken address is an error at once.
func TestHealthServer(t *testing.T) {
	e := newProbeEnv(t)
	addr, stop, err := startHealthServer("127.0.0.1:0", e.h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for path, code := range map[string]int{"/livez": 200, "/readyz": 503, "/metrics": 404} {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, code)
		}
	}
	if _, _, err := startHealthServer(addr.String(), e.h, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a second server on a taken address started")
	}
}
