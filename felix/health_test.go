package felix

import (
	"testing"
	"time"

	"github.com/cairn-net/cairn/felix/kernel/fake"
	"golang.org/x/sys/unix"
)

func TestHealthFollowsTheLoop(t *testing.T) {
	k := fake.New()
	k.AddLink("crn1", true)
	h := newHarness(t, k)
	h.resync()
	before := time.Now()
	got := h.f.Health()
	if !got.Running || !got.InSync || got.Err != nil || got.LastPass.IsZero() || got.LastPass.After(before) {
		t.Fatalf("after a full pass: %+v, want running, in sync, a last pass", got)
	}
	// The harness's ResyncInterval is an hour: that is when the next pass
	// is due.
	if due := got.NextPassDue.Sub(got.LastPass); due < 59*time.Minute || due > time.Hour+time.Minute {
		t.Errorf("next pass due %v after the last, want the resync interval (1h)", due)
	}

	// A failed pass: out of sync, with its error, and a retry due soon.
	k.FailNext(fake.RouteDump, unix.ENOBUFS)
	if err := h.f.Resync(h.ctx()); err == nil {
		t.Fatal("resync with a failing dump: no error")
	}
	got = h.f.Health()
	if got.InSync || got.Err == nil || got.NextPassDue.Sub(got.LastPass) > time.Second {
		t.Fatalf("after a failed pass: %+v, want out of sync, the error, a retry due at once", got)
	}

	// The retry puts it back in sync.
	h.resync()
	if got = h.f.Health(); !got.InSync || got.Err != nil {
		t.Fatalf("after a good pass again: %+v, want in sync", got)
	}

	h.stopFn()
	if got = h.f.Health(); got.Running {
		t.Fatalf("after Run returned: %+v, want not running", got)
	}
}

// A Felix never run reports nothing done: not in sync, no pass.
func TestHealthBeforeRun(t *testing.T) {
	f, err := New(Options{Kernel: fake.New(), Nftables: nil})
	if err != nil {
		t.Skipf("felix without a fake nftables: %v", err)
	}
	defer f.Close()
	if got := f.Health(); got.Running || got.InSync || !got.LastPass.IsZero() {
		t.Fatalf("before Run: %+v, want nothing done", got)
	}
}
