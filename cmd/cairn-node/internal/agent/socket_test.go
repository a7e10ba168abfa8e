package agent

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/ipam/allocator"
)

// blockingAlloc holds every allocation until its caller gives up, as an
// allocation retrying against a slow API server does.
type blockingAlloc struct {
	fakeAlloc
	started chan struct{}
}

func (a *blockingAlloc) AutoAssign(ctx context.Context, _ allocator.Request) ([]netip.Prefix, error) {
	close(a.started)
	<-ctx.Done()
	return nil, ctx.Err()
}

// The agent must stop within the pod's termination grace period (30 s):
// an allocation in flight gets a short drain, then is cancelled. Before,
// GracefulStop waited for it for as long as it retried.
func TestCNISocketStopsWithAnAllocationInFlight(t *testing.T) {
	s, _, _ := newTestServer(t)
	alloc := &blockingAlloc{started: make(chan struct{})}
	s.alloc = alloc
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- serveCNI(ctx, sock, s, s.log, time.Second) }()

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rpc := make(chan error, 1)
	go func() {
		_, err := agentv1.NewAgentClient(conn).Allocate(context.Background(), &agentv1.AllocateRequest{
			ContainerId: "c1", Ifname: "eth0", PodNamespace: "default", PodName: "p", IpFamilies: v4()}, grpc.WaitForReady(true))
		rpc <- err
	}()
	select {
	case <-alloc.started:
	case <-time.After(time.Minute):
		t.Fatal("the allocation never reached the agent")
	}
	cancel() // the agent is asked to stop
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the socket never stopped: shutdown waits for an allocation that retries on")
	}
	if err := <-rpc; err == nil {
		t.Fatal("the interrupted allocation reported success")
	}
}
