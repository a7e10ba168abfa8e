package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
)

// testAgent is one node's agent without felix and the BGP speaker (they
// need root and the node's network): fakes stand in for them.
type testAgent struct {
	name    string
	counter *requestCounter
	ctrl    *controller
	speaker *fakeSpeaker
	blocks  cairnlisters.IPAMBlockLister
	socket  string
}

// startTestAgent runs the agent as Run does, every request it sends to the
// API server counted, with fakes for felix and the speaker. The IPAM GC is
// off: its Lease renewals would blur what a pod burst costs.
func startTestAgent(t *testing.T, ctx context.Context, cfg *rest.Config, name string) *testAgent {
	t.Helper()
	counter := newRequestCounter()
	cl, err := newClients(countingConfig(cfg, counter))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts, err := Options{NodeName: name, AgentSocket: filepath.Join(dir, "agent.sock"), StateDir: dir,
		StatusInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	a, err := prepare(ctx, opts, cl)
	if err != nil {
		t.Fatal(err)
	}
	spk := &fakeSpeaker{}
	if err := a.wire(&recordingDataplane{fakeDataplane: fakeDataplane{endpoints: map[string][]netip.Prefix{}}}, spk); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	return &testAgent{name: name, counter: counter, ctrl: a.ctrl, speaker: spk, blocks: a.inf.blockLister, socket: opts.AgentSocket}
}
