// Command cairn-node is Cairn's per-node agent (run as a DaemonSet): IPAM
// client, felix, the BGP speaker and the CNI plugin's gRPC socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cmd/cairn-node/internal/agent"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	var (
		cfg      agent.Config
		nodeIP   string
		logLevel string
	)
	hostname, _ := os.Hostname()
	flag.StringVar(&cfg.NodeName, "node-name", envOr("NODENAME", hostname), "Kubernetes Node name of this node")
	flag.StringVar(&nodeIP, "node-ip", os.Getenv("NODE_IP"), "this node's IPv4 address for BGP (default: the Node's InternalIP)")
	flag.StringVar(&cfg.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig path (default: in-cluster)")
	flag.StringVar(&cfg.AgentSocket, "agent-socket", agentv1.DefaultSocketPath, "unix socket the CNI plugin calls")
	flag.StringVar(&cfg.StateDir, "state-dir", "/var/lib/cairn", "directory kept across agent restarts")
	flag.StringVar(&cfg.SecretNamespace, "secret-namespace", envOr("POD_NAMESPACE", "cairn-system"), "namespace of Secrets that BGP passwords refer to")
	flag.DurationVar(&cfg.ResyncInterval, "resync-interval", time.Minute, "period of full recomputation")
	flag.DurationVar(&cfg.StatusInterval, "status-interval", 10*time.Second, "period of CairnNodeStatus updates")
	flag.BoolVar(&cfg.IPAMGC, "ipam-gc", true, "take part in the leader election for cluster-wide IPAM garbage collection")
	flag.DurationVar(&cfg.IPAMGCInterval, "ipam-gc-interval", time.Minute, "period of IPAM garbage-collection passes")
	flag.DurationVar(&cfg.IPAMGCGrace, "ipam-gc-grace", 5*time.Minute, "how long an address must look orphaned before it is released")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "cairn-node: --log-level: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if nodeIP != "" {
		addr, err := netip.ParseAddr(nodeIP)
		if err != nil {
			log.Error("bad --node-ip", "err", err)
			os.Exit(2)
		}
		cfg.NodeIP = addr
	}
	cfg.Logger, cfg.Version = log, version

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := agent.Run(ctx, cfg); err != nil {
		log.Error("cairn-node stopped", "err", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
