// Command workload is the lab's test workload (the cairn.dev/workload
// image). "workload serve" answers TCP, UDP and HTTP with the source
// address it saw; "workload probe" reaches such a server and prints, as
// JSON, what the server saw next to its own address, exiting 1 unless every
// attempt was answered with that address. The logic is in
// internal/workload.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-net/cairn/internal/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:])
	case "probe":
		return probe(ctx, args[1:])
	}
	fmt.Fprintf(os.Stderr, "usage: workload serve [flags] | workload probe [flags]\n")
	return 2
}

func serve(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	tcp := fs.String("tcp", ":7000", "TCP address to answer on (empty: none)")
	udp := fs.String("udp", ":7000", "UDP address to answer on (empty: none)")
	httpAddr := fs.String("http", ":8080", "HTTP address to answer on (empty: none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	host, _ := os.Hostname()
	g, ctx := errgroup.WithContext(ctx)
	var lc net.ListenConfig
	if *tcp != "" {
		l, err := lc.Listen(ctx, "tcp", *tcp)
		if err != nil {
			log.Error("listen", "err", err)
			return 1
		}
		g.Go(func() error { return workload.ServeTCP(ctx, l, host, log) })
	}
	if *udp != "" {
		pc, err := lc.ListenPacket(ctx, "udp", *udp)
		if err != nil {
			log.Error("listen", "err", err)
			return 1
		}
		g.Go(func() error { return workload.ServeUDP(ctx, pc, host, log) })
	}
	if *httpAddr != "" {
		l, err := lc.Listen(ctx, "tcp", *httpAddr)
		if err != nil {
			log.Error("listen", "err", err)
			return 1
		}
		g.Go(func() error { return workload.ServeHTTP(ctx, l, host) })
	}
	log.Info("serving", "host", host, "tcp", *tcp, "udp", *udp, "http", *httpAddr)
	if err := g.Wait(); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

func probe(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	var o workload.ProbeOptions
	fs.StringVar(&o.Proto, "proto", "tcp", "tcp, udp or http")
	fs.StringVar(&o.Addr, "to", "", "server host:port (required)")
	fs.IntVar(&o.Count, "count", 1, "connections, datagrams or requests")
	fs.DurationVar(&o.Interval, "interval", 10*time.Millisecond, "time between two of them")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Second, "per connection or request; for UDP, the wait for replies after the last datagram")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.Addr == "" {
		fmt.Fprintln(os.Stderr, "workload probe: --to is required")
		return 2
	}
	res, err := workload.Probe(ctx, o)
	json.NewEncoder(os.Stdout).Encode(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "workload probe: %v\n", err)
		return 1
	}
	if !res.OK() {
		return 1
	}
	return 0
}
