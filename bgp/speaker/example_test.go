package speaker_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/cairn-net/cairn/bgp/speaker"
)

// A node agent's use of the speaker: declare, run, consume learned paths.
func Example() {
	sp, err := speaker.New(speaker.Options{
		RouterID:        netip.MustParseAddr("10.0.0.11"),
		ASN:             64512,
		ListenPort:      179,
		Logger:          slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		GracefulRestart: &speaker.GROptions{Enabled: true, RestartTime: 120 * time.Second},
	})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = sp.Run(ctx) }()

	// Only prefixes inside the IP pools are accepted.
	sp.SetImportFilter([]netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")})
	// Errors name invalid peers (skipped); the valid ones are applied.
	_ = sp.SetPeers([]speaker.Peer{{Name: "node-2", Address: netip.MustParseAddr("10.0.0.12"), ASN: 64512}})
	// Sessions open after the first call, so End-of-RIB follows our routes.
	_ = sp.SetAdvertisements([]speaker.Advertisement{{Prefix: netip.MustParsePrefix("10.244.3.0/26")}})

	for paths := range sp.Learned() { // closed when Run returns
		for _, p := range paths {
			_ = p // desired route: p.Prefix via p.NextHop (several paths: ECMP)
		}
	}
}
