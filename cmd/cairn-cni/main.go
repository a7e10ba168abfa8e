// Command cairn-cni is Cairn's CNI plugin. The container runtime runs it
// once per command (ADD, DEL, CHECK, VERSION, GC, STATUS) with the netconf
// on stdin; the logic is in cni-plugin/plugin. Logs go to stderr as JSON,
// never to stdout, which carries the CNI result.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-net/cairn/cni-plugin/plugin"
)

func main() {
	os.Exit(run())
}

func run() int {
	level := new(slog.LevelVar)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "cairn-cni")

	// A runtime that gives up sends SIGTERM: cancelling lets a failed ADD
	// still roll back (rollback steps do not inherit the cancellation).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	p := plugin.New(plugin.Options{Log: log, LogLevel: level})
	return p.Main(ctx, "Cairn CNI plugin")
}
