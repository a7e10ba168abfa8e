// Command cairn-cni is Cairn's CNI plugin. The container runtime runs it
// once per command (ADD, DEL, CHECK, VERSION, GC, STATUS) with the netconf
// on stdin; the logic is in cni-plugin/plugin. Logs go to stderr as JSON,
// never to stdout, which carries the CNI result.
//
// `cairn-cni install` is the DaemonSet's init container: it copies this
// binary and the CNI configuration into the host's CNI directories
// (cni-plugin/install). Runtimes run plugins without arguments, so the
// subcommand never meets a CNI call.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-net/cairn/cni-plugin/install"
	"github.com/cairn-net/cairn/cni-plugin/plugin"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "install" {
		os.Exit(runInstall(os.Args[2:]))
	}
	os.Exit(run())
}

func runInstall(args []string) int {
	fs := flag.NewFlagSet("cairn-cni install", flag.ContinueOnError)
	var o install.Options
	fs.StringVar(&o.BinDir, "bin-dir", install.DefaultBinDir, "the host's CNI plugin directory, as mounted")
	fs.StringVar(&o.ConfDir, "conf-dir", install.DefaultConfDir, "the host's CNI configuration directory, as mounted")
	fs.StringVar(&o.Conflist, "conflist", install.DefaultConflist, "the CNI configuration list to install")
	fs.StringVar(&o.Plugin, "plugin", "", "the plugin binary to install (default: this executable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	res, err := install.Install(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cairn-cni install: %v\n", err)
		return 1
	}
	for _, p := range res.Written {
		fmt.Fprintf(os.Stderr, "cairn-cni install: wrote %s\n", p)
	}
	if len(res.Written) == 0 {
		fmt.Fprintln(os.Stderr, "cairn-cni install: plugin and configuration already up to date")
	}
	return 0
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
