// Command cairn-node is Cairn's per-node agent (run as a DaemonSet): IPAM
// client, felix, the BGP speaker and the CNI plugin's gRPC socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-net/cairn/cmd/cairn-node/internal/agent"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// gcPercent is the agent's GOGC unless the environment sets one. Its heap
// is small and most of it long-lived (the informers' caches): collecting
// at 50% growth instead of Go's 100% kept 2.3 MiB less resident on an
// idle lab node (37.6 -> 35.3 MiB) for 0.07% more of a core (issue 15).
// 25 saved 1.2 MiB more for twice that CPU, and costs more as the
// allocation rate rises with the cluster's churn.
const gcPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	var (
		opts     = agent.DefaultOptions()
		nodeIP   string
		logLevel string
	)
	hostname, _ := os.Hostname()
	flag.StringVar(&opts.NodeName, "node-name", envOr("NODENAME", hostname), "Kubernetes Node name of this node")
	flag.StringVar(&nodeIP, "node-ip", os.Getenv("NODE_IP"), "this node's BGP addresses: IPv4, or IPv4 and IPv6 separated by a comma (default: the Node's InternalIPs)")
	flag.StringVar(&opts.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig path (default: in-cluster)")
	flag.StringVar(&opts.AgentSocket, "agent-socket", opts.AgentSocket, "unix socket the CNI plugin calls")
	flag.StringVar(&opts.StateDir, "state-dir", opts.StateDir, "directory kept across agent restarts")
	flag.StringVar(&opts.SecretNamespace, "secret-namespace", envOr("POD_NAMESPACE", opts.SecretNamespace), "namespace of Secrets that BGP passwords refer to")
	flag.DurationVar(&opts.ResyncInterval, "resync-interval", opts.ResyncInterval, "period of full recomputation")
	flag.DurationVar(&opts.StatusInterval, "status-interval", opts.StatusInterval, "period of CairnNodeStatus updates")
	flag.BoolVar(&opts.IPAMGC, "ipam-gc", opts.IPAMGC, "take part in the leader election for cluster-wide IPAM garbage collection")
	flag.DurationVar(&opts.IPAMGCInterval, "ipam-gc-interval", opts.IPAMGCInterval, "period of IPAM garbage-collection passes")
	flag.DurationVar(&opts.IPAMGCGrace, "ipam-gc-grace", opts.IPAMGCGrace, "how long an address must look orphaned before it is released")
	flag.BoolVar(&opts.ObjectStatus, "object-status", opts.ObjectStatus, "take part in the leader election for writing the status of BGPPeers, BGPConfigurations, BGPFilters and IPPools, and their Events")
	flag.BoolVar(&opts.LoadBalancerIPAM, "lb-ipam", opts.LoadBalancerIPAM, "take part in the leader election for giving Services of type LoadBalancer addresses from LoadBalancer IP pools")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error; BGPConfiguration's logSeverityScreen overrides it")
	flag.StringVar(&opts.MetricsAddr, "metrics-addr", opts.MetricsAddr, `address of the Prometheus metrics endpoint (/metrics); "" serves none`)
	flag.StringVar(&opts.HealthAddr, "health-addr", opts.HealthAddr, `node-local address of the kubelet's probes (/livez, /readyz); "" serves none`)
	flag.StringVar(&opts.ProcSysNet, "proc-sys-net", opts.ProcSysNet, "directory of the node's net sysctls; in a container, where the host's /proc/sys/net is mounted writable")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "cairn-node: --log-level: %v\n", err)
		os.Exit(2)
	}
	// BGPConfiguration's logSeverityScreen changes it while running.
	opts.LogLevel = new(slog.LevelVar)
	opts.LogLevel.Set(level)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opts.LogLevel}))
	var err error
	if opts.NodeIP, opts.NodeIP6, err = agent.ParseNodeIPs(nodeIP); err != nil {
		log.Error("bad --node-ip", "err", err)
		os.Exit(2)
	}
	opts.Logger, opts.Version = log, version
	opts.Metrics = prometheus.NewRegistry()
	if err := agent.ObserveAPIRequests(opts.Metrics); err != nil {
		log.Error("cannot export API request metrics", "err", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := agent.Run(ctx, opts); err != nil {
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
