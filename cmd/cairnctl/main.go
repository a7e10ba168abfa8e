// Command cairnctl is Cairn's operator tool. It only wires things
// together: flags, the API-server connection, the agent socket, signals;
// the commands live in their packages (ipam/ctl for "cairnctl ipam",
// cmd/cairnctl/internal/cli for node, route, pool and completion).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
	"github.com/cairn-net/cairn/cmd/cairnctl/internal/cli"
	"github.com/cairn-net/cairn/ipam/ctl"
	"github.com/cairn-net/cairn/ipam/kubestore"
)

// timeout bounds one command: a script must not hang on a dead socket or
// API server.
const timeout = 30 * time.Second

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("cairnctl", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "path of a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), cli.Usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return cli.ExitError
	}
	args := fs.Args()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	restConfig := sync.OnceValues(func() (*rest.Config, error) { return loadConfig(*kubeconfig) })

	if len(args) > 0 && args[0] == "ipam" {
		if len(args) == 1 {
			fmt.Fprint(os.Stderr, ctl.Usage)
			return ctl.ExitError
		}
		cfg, err := restConfig()
		if err != nil {
			fmt.Fprintf(os.Stderr, "cairnctl: %v\n", err)
			return ctl.ExitError
		}
		store, err := kubestore.NewForConfig(cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cairnctl: %v\n", err)
			return ctl.ExitError
		}
		return ctl.Run(ctx, store, args[1:], os.Stdout, os.Stderr)
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := cli.Env{
		Stdout: os.Stdout, Stderr: os.Stderr, Now: time.Now,
		Kube: func() (*cli.Clients, error) {
			cfg, err := restConfig()
			if err != nil {
				return nil, err
			}
			return clients(cfg)
		},
		Agent: dialAgent,
	}
	return cli.Run(ctx, env, args)
}

func loadConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

func clients(cfg *rest.Config) (*cli.Clients, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "cairnctl"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cairn, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cairn client: %w", err)
	}
	return &cli.Clients{Kube: kube, Cairn: cairn}, nil
}

// dialAgent connects to the agent's unix socket; a missing socket is an
// error at once rather than a call that waits.
func dialAgent(_ context.Context, path string) (agentv1.AgentClient, io.Closer, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	return agentv1.NewAgentClient(conn), conn, nil
}
