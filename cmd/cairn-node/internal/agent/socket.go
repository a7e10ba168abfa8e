package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
)

// cniDrain is how long a stopping agent lets CNI calls in flight finish
// before cancelling them: well inside the pod's 30 s termination grace
// period, and long enough for an ordinary ADD. A cancelled ADD rolls back
// and the runtime retries it against the next agent.
const cniDrain = 5 * time.Second

// serveCNI serves the plugin's API on a unix socket only root can reach.
// When ctx ends it stops taking calls and gives those in flight drain to
// finish before cancelling them.
func serveCNI(ctx context.Context, path string, srv agentv1.AgentServer, log *slog.Logger, drain time.Duration, opts ...grpc.ServerOption) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("restrict socket %s: %w", path, err)
	}
	gs := grpc.NewServer(opts...)
	agentv1.RegisterAgentServer(gs, srv)
	go func() {
		<-ctx.Done()
		drained := make(chan struct{})
		go func() { gs.GracefulStop(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(drain):
			log.Warn("CNI calls still running at shutdown: cancelling them", "drain", drain)
			gs.Stop()
		}
	}()
	log.Info("serving the CNI plugin", "socket", path)
	if err := gs.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve CNI socket: %w", err)
	}
	return nil
}

// readiness is what Status and Allocate report.
type readiness struct {
	mu  sync.Mutex
	ok  bool
	why string
}

func (r *readiness) set(ok bool, why string) { r.mu.Lock(); r.ok, r.why = ok, why; r.mu.Unlock() }
func (r *readiness) get() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ok && r.why == "" {
		return false, "starting"
	}
	return r.ok, r.why
}
