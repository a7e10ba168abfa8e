package agent

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-net/cairn/bgp/speaker"
)

// BenchmarkScrape measures one scrape of a node with a full mesh of 100
// peers, and what the metrics keep in memory between scrapes
// (retained-B/op: the registry, its collectors and one series of each
// histogram and counter the hot paths touch).
//
//	go test -run '^$' -bench Scrape -benchmem ./cmd/cairn-node/internal/agent/
func BenchmarkScrape(b *testing.B) {
	src := fakeSources()
	var peers []speaker.PeerState
	for i := range 100 {
		peers = append(peers, speaker.PeerState{Name: fmt.Sprint("mesh:node-", i), Address: netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(i%250 + 1)}),
			State: speaker.StateEstablished, Received: 40, Accepted: 40, Advertised: 4})
	}
	src.peers = func() []speaker.PeerState { return peers }

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := newMetrics(prometheus.NewRegistry(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := newAPIMetrics(m.reg); err != nil {
		b.Fatal(err)
	}
	if err := m.reg.Register(newNodeCollector(src)); err != nil {
		b.Fatal(err)
	}
	for rpc, verb := range cniVerbs {
		m.cniDuration.WithLabelValues(verb, rpc).Observe(0.01)
		m.cniRequests.WithLabelValues(verb, rpc, "0").Inc()
	}
	if _, err := m.reg.Gather(); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	retained := float64(after.HeapAlloc) - float64(before.HeapAlloc)

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		mfs, err := m.reg.Gather()
		if err != nil || len(mfs) == 0 {
			b.Fatal(err)
		}
	}
	runtime.KeepAlive(m)
	b.ReportMetric(retained, "retained-B") // after the loop: ResetTimer drops reported metrics
}
