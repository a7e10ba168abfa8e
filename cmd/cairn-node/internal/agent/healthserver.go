package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cairn-net/cairn/cmd/cairn-node/internal/health"
)

// DefaultHealthAddress is where the kubelet probes cairn-node: the node's
// loopback (the DaemonSet runs in the node's network namespace), on the
// port Calico's felix uses for the same.
const DefaultHealthAddress = "127.0.0.1:9099"

// probeTimeout bounds the checks of one probe, inside the kubelet's own
// timeout (5 s in deploy/node/daemonset.yaml).
const probeTimeout = 4 * time.Second

// healthMux routes the probes; other node-local endpoints can join it.
func healthMux(h *nodeHealth) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /livez", health.Handler("livez", probeTimeout, h.liveChecks()))
	mux.Handle("GET /readyz", health.Handler("readyz", probeTimeout, h.readyChecks()))
	return mux
}

// startHealthServer serves the probes on addr until stop is called, and
// returns the address it listens on. It listens before returning, so a
// taken port fails the agent's start rather than every probe.
func startHealthServer(addr string, h *nodeHealth, log *slog.Logger) (net.Addr, func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for health probes on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: healthMux(h), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health probes no longer served", "address", addr, "err", err)
		}
	}()
	log.Info("serving health probes", "address", l.Addr().String())
	return l.Addr(), func() { srv.Close(); <-done }, nil
}
