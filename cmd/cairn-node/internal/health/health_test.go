package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-net/cairn/ipam/ipamtest"
)

func get(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestHandler(t *testing.T) {
	ok := Check{Name: "a", Check: func(context.Context) error { return nil }}
	bad := Check{Name: "b", Check: func(context.Context) error { return errors.New("stuck\nsince noon") }}
	for _, tc := range []struct {
		name   string
		checks []Check
		url    string
		code   int
		body   string
	}{
		{"all pass", []Check{ok}, "/livez", 200, "ok"},
		{"none", nil, "/livez", 200, "ok"},
		{"verbose", []Check{ok}, "/livez?verbose", 200, "[+]a ok\nlivez check passed\n"},
		{"one fails", []Check{ok, bad}, "/livez", 503, "[+]a ok\n[-]b failed: stuck; since noon\nlivez check failed\n"},
	} {
		code, body := get(t, Handler("livez", time.Second, tc.checks), tc.url)
		if code != tc.code || body != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.code, tc.body)
		}
	}
}

// Checks run with the handler's timeout: a check that waits for its
// context is cut off, not left hanging the probe.
func TestHandlerBoundsChecks(t *testing.T) {
	slow := Check{Name: "slow", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	code, body := get(t, Handler("readyz", 10*time.Millisecond, []Check{slow}), "/readyz")
	if code != 503 || !strings.Contains(body, "[-]slow failed: context deadline exceeded") {
		t.Fatalf("%d %q", code, body)
	}
}

func TestOverdue(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		now, due time.Time
		wedged   bool
	}{
		{"not started", t0, time.Time{}, false},
		{"before due", t0, t0.Add(time.Minute), false},
		{"late within grace", t0.Add(30 * time.Second), t0, false},
		{"at the end of grace", t0.Add(time.Minute), t0, false},
		{"past grace", t0.Add(time.Minute + time.Second), t0, true},
	} {
		if err := Overdue(tc.now, tc.due, time.Minute); (err != nil) != tc.wedged {
			t.Errorf("%s: %v, want wedged %v", tc.name, err, tc.wedged)
		}
	}
}

func TestBeat(t *testing.T) {
	var nilBeat *Beat
	nilBeat.Mark(time.Now()) // must not panic
	if !nilBeat.Due().IsZero() {
		t.Error("a nil Beat is due")
	}
	b := NewBeat(time.Minute)
	if !b.Due().IsZero() {
		t.Error("a Beat never marked is due")
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Mark(t0)
	if b.Last() != t0 || b.Due() != t0.Add(time.Minute) {
		t.Errorf("after a mark at %v: last %v, due %v", t0, b.Last(), b.Due())
	}
}

// loop answers calls through a channel, as the speaker's owner goroutine
// does; it stops answering while blocked.
type loop struct {
	calls   chan chan struct{}
	started chan struct{} // one value per call made
}

func (l *loop) call() {
	l.started <- struct{}{}
	reply := make(chan struct{})
	l.calls <- reply
	<-reply
}

func TestPinger(t *testing.T) {
	clk := ipamtest.NewClock()
	l := &loop{calls: make(chan chan struct{}), started: make(chan struct{}, 10)}
	p := NewPinger(l.call, clk.Now)
	ctx := context.Background()

	// A loop that answers: the ping passes.
	answered := make(chan struct{})
	go func() { r := <-l.calls; close(r); close(answered) }()
	if err := p.Ping(ctx, time.Minute, time.Minute); err != nil {
		t.Fatalf("answered ping: %v", err)
	}
	<-answered
	<-l.started

	// A loop that does not answer: busy while younger than the limit...
	if err := p.Ping(ctx, time.Millisecond, time.Minute); err != nil {
		t.Fatalf("a call unanswered for less than the limit: %v", err)
	}
	<-l.started
	clk.Step(30 * time.Second)
	if err := p.Ping(ctx, time.Millisecond, time.Minute); err != nil {
		t.Fatalf("a call unanswered for 30s of 60: %v", err)
	}
	// ...wedged beyond it; and no second call was started meanwhile.
	clk.Step(31 * time.Second)
	if err := p.Ping(ctx, time.Millisecond, time.Minute); err == nil {
		t.Fatal("a call unanswered for 61s passes")
	}
	if n := len(l.started); n != 0 {
		t.Fatalf("%d more calls started while one was in flight", n)
	}
	// The loop answers at last: the next ping starts a fresh call.
	r := <-l.calls
	close(r)
	go func() { r := <-l.calls; close(r) }()
	if err := p.Ping(ctx, time.Minute, time.Minute); err != nil {
		t.Fatalf("ping after the loop recovered: %v", err)
	}
}
