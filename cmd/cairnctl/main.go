// Command cairnctl is Cairn's operator tool. It only wires things
// together: flags, the API-server connection, signals; the commands live
// in their packages (ipam/ctl for "cairnctl ipam").
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/cairn-net/cairn/ipam/ctl"
	"github.com/cairn-net/cairn/ipam/kubestore"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("cairnctl", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "path of a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: cairnctl [--kubeconfig FILE] ipam <show|check|release> ...\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return ctl.ExitError
	}
	args := fs.Args()
	if len(args) == 0 || args[0] != "ipam" {
		fs.Usage()
		return ctl.ExitError
	}
	if len(args) == 1 {
		fmt.Fprint(os.Stderr, ctl.Usage)
		return ctl.ExitError
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cairnctl: load kubeconfig: %v\n", err)
		return ctl.ExitError
	}
	store, err := kubestore.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cairnctl: %v\n", err)
		return ctl.ExitError
	}
	return ctl.Run(ctx, store, args[1:], os.Stdout, os.Stderr)
}
