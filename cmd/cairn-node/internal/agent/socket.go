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

	"google.golang.org/grpc"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
)

// serveCNI serves the plugin's API on a unix socket only root can reach.
func serveCNI(ctx context.Context, path string, srv *cniServer, log *slog.Logger) error {
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
	gs := grpc.NewServer()
	agentv1.RegisterAgentServer(gs, srv)
	go func() {
		<-ctx.Done()
		gs.GracefulStop()
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
