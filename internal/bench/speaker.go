package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-net/cairn/bgp/speaker"
)

// SpeakerCommand is the hidden subcommand that runs one Cairn BGP speaker
// (bgp/speaker, as cairn-node embeds it) announcing N blocks, so that the
// BGP section can start it inside a namespace of its own: GoBGP's sockets
// follow the namespace of the process, not of a goroutine.
const SpeakerCommand = "internal-speaker"

// SpeakerMain runs the speaker until SIGTERM or SIGINT; it returns the
// exit code.
func SpeakerMain(args []string) int {
	fs := flag.NewFlagSet(SpeakerCommand, flag.ContinueOnError)
	routerID := fs.String("router-id", "", "router ID and local address")
	asn := fs.Uint("asn", 0, "local AS")
	peer := fs.String("peer", "", "neighbour address")
	peerASN := fs.Uint("peer-asn", 0, "neighbour AS")
	blocks := fs.Int("blocks", 0, "number of /26 blocks to announce")
	base := fs.String("base", "10.128.0.0/10", "range the blocks are cut from")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := runSpeaker(*routerID, uint32(*asn), *peer, uint32(*peerASN), *blocks, *base); err != nil {
		fmt.Fprintln(os.Stderr, "speaker:", err)
		return 1
	}
	return 0
}

func runSpeaker(routerID string, asn uint32, peer string, peerASN uint32, blocks int, base string) error {
	id, err := netip.ParseAddr(routerID)
	if err != nil {
		return fmt.Errorf("router id: %w", err)
	}
	peerAddr, err := netip.ParseAddr(peer)
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	pool, err := netip.ParsePrefix(base)
	if err != nil {
		return fmt.Errorf("base: %w", err)
	}
	sp, err := speaker.New(speaker.Options{RouterID: id, ASN: asn, ListenPort: 179, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ads := make([]speaker.Advertisement, blocks)
	for i := range ads {
		ads[i] = speaker.Advertisement{Prefix: nthBlock(pool, 26, i)}
	}
	// Advertisements first: the session opens with them in place, as an
	// agent's does after its first sync.
	if err := sp.SetAdvertisements(ads); err != nil {
		return err
	}
	if err := sp.SetPeers([]speaker.Peer{{Name: "receiver", Address: peerAddr, ASN: peerASN}}); err != nil {
		return err
	}
	if err := sp.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
