package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cni-plugin/netconf"
)

// agentClient bounds every agent call with a timeout and says in its
// errors which call to which socket failed.
type agentClient struct {
	api     agentv1.AgentClient
	timeout time.Duration // for calls that may write to the API server
	socket  string
}

func (a agentClient) wrap(call string, err error) error {
	if err == nil {
		return nil
	}
	if c, ok := grpcCode(err); (ok && c == codes.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		// The raw gRPC text says nothing a user can act on.
		return fmt.Errorf("agent %s (%s): no answer within %s (agentTimeoutSeconds); the agent may be unable to reach the API server, try again: %w",
			call, a.socket, a.timeout, err)
	}
	return fmt.Errorf("agent %s (%s): %w", call, a.socket, err)
}

func (a agentClient) allocate(ctx context.Context, req *agentv1.AllocateRequest) (*agentv1.AllocateResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	resp, err := a.api.Allocate(ctx, req)
	return resp, a.wrap("Allocate", err)
}

func (a agentClient) endpointUp(ctx context.Context, req *agentv1.EndpointUpRequest) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	_, err := a.api.EndpointUp(ctx, req)
	return a.wrap("EndpointUp", err)
}

// release treats NOT_FOUND as done: Release is idempotent by contract.
func (a agentClient) release(ctx context.Context, req *agentv1.ReleaseRequest) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	_, err := a.api.Release(ctx, req)
	if isAgentNotFound(err) {
		return nil
	}
	return a.wrap("Release", err)
}

func (a agentClient) check(ctx context.Context, req *agentv1.CheckRequest) (*agentv1.CheckResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, min(a.timeout, netconf.QueryTimeout))
	defer cancel()
	resp, err := a.api.Check(ctx, req)
	return resp, a.wrap("Check", err)
}

func (a agentClient) status(ctx context.Context) (*agentv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, min(a.timeout, netconf.QueryTimeout))
	defer cancel()
	resp, err := a.api.Status(ctx, &agentv1.StatusRequest{})
	return resp, a.wrap("Status", err)
}

func (a agentClient) gc(ctx context.Context, req *agentv1.GCRequest) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	_, err := a.api.GC(ctx, req)
	return a.wrap("GC", err)
}
