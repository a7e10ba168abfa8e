package speakersim

import (
	"net/netip"

	"context"
	"github.com/cairn-net/cairn/bgp/speaker"
	"strings"
	"testing"
	"time"
)

// TestEverySpeakerGetsEveryRoute runs a small simulation: ten speakers and
// the two reflectors in this process, on loopback, no root. It asserts
// that every route arrives with its owner as next hop (Run waits for
// exactly that), not how fast.
func TestEverySpeakerGetsEveryRoute(t *testing.T) {
	res, err := Run(context.Background(), Options{Clients: 10, BlocksPerClient: 2, Timeout: 2 * time.Minute, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clients != 10 || res.Reflectors != 2 || res.Blocks != 20 {
		t.Errorf("ran %d clients, %d reflectors, %d blocks; want 10, 2, 20", res.Clients, res.Reflectors, res.Blocks)
	}
	if res.Converged < res.ClientP50 || res.Converged <= 0 {
		t.Errorf("last client %v, median %v", res.Converged, res.ClientP50)
	}
	t.Logf("converged in %v (reflectors %v, median client %v); %.1f MiB RSS, %.2f MiB heap per speaker",
		res.Converged, res.Reflected, res.ClientP50, res.RSSPerSpeaker/(1<<20), res.HeapPerSpeaker/(1<<20))
}

// TestOwnerNextHopCounts: a path counts only with its block's owner as next
// hop, and once per block however many paths name it.
func TestOwnerNextHopCounts(t *testing.T) {
	s, err := newSim(Options{Clients: 3, BlocksPerClient: 1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	c := s.clients[0]
	b1, b2 := s.clients[1].blocks[0], s.clients[2].blocks[0]
	s.observe(c, paths(
		path(b1, s.clients[1].addr), path(b1, s.clients[1].addr), // the same block from both reflectors
		path(b2, s.reflectors[0].addr), // wrong next hop: a reflector's, not the owner's
	))
	if c.have != 1 || !c.done.IsZero() {
		t.Fatalf("holds %d, done %v; want 1, not done", c.have, c.done)
	}
	s.observe(c, paths(path(b1, s.clients[1].addr), path(b2, s.clients[2].addr)))
	if c.have != 2 || c.done.IsZero() {
		t.Fatalf("holds %d, done %v; want 2, done", c.have, c.done)
	}
	err = s.missing(time.Second)
	if err == nil || !strings.Contains(err.Error(), "4 of 5 speakers lack routes") || !strings.Contains(err.Error(), "rr1 (127.77.0.1) holds 0 of 3 blocks") {
		t.Errorf("missing: %v", err)
	}
}

func path(p netip.Prefix, nh netip.Addr) speaker.Path { return speaker.Path{Prefix: p, NextHop: nh} }

func paths(ps ...speaker.Path) []speaker.Path { return ps }
