// Package agenttest is an in-memory Agent gRPC server for tests of the
// Agent's clients (the CNI plugin, later cairnctl): it hands out addresses
// from fixed test prefixes, records every call, can be told to fail a
// call, and serves on a unix socket like the real agent. It is for tests
// only; it knows no IPAM and routes nothing unless a test hooks
// EndpointUp.
package agenttest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
)

// The fake allocates 198.51.100.2, .3... (a documentation range) and
// fd00:cafe::2, ::3... (ULA), one host number per attachment for both
// families; tests only ever configure them inside namespaces they create.
const (
	v4Prefix = "198.51.100.0/24"
	v6Prefix = "fd00:cafe::/64"
)

// Key names an attachment.
type Key struct{ ContainerID, IfName string }

// Attachment is what the fake knows of one attachment.
type Attachment struct {
	Addresses []string
	HostIface string // set by EndpointUp
	Network   string // from Allocate; GC forgets only its own network's
}

// Agent is the fake. Its exported fields may be set before serving, or
// changed under Lock/Unlock while serving.
type Agent struct {
	agentv1.UnimplementedAgentServer

	mu sync.Mutex
	// Fail, when set for a method name ("Allocate", "EndpointUp", ...),
	// makes that method answer the error.
	Fail map[string]error
	// NotReady, when non-empty, makes Status answer not ready with it.
	NotReady string
	// OnEndpointUp, when set, runs inside EndpointUp (e.g. to install the
	// host route as felix would); its error is answered.
	OnEndpointUp func(*agentv1.EndpointUpRequest) error
	// OnRelease, when set, runs inside Release for a known attachment.
	OnRelease func(Key, Attachment) error

	attachments map[Key]Attachment
	calls       []string
	nextHost    uint64
	lastGC      []*agentv1.Attachment
}

// New returns an empty fake agent.
func New() *Agent {
	return &Agent{Fail: map[string]error{}, attachments: map[Key]Attachment{}, nextHost: 2}
}

// Serve serves the fake on a unix socket in a fresh temporary directory
// until the test ends, and returns the socket path.
func (a *Agent) Serve(t testing.TB) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listen on %s: %v", sock, err)
	}
	srv := grpc.NewServer()
	agentv1.RegisterAgentServer(srv, a)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // returns once Stop is called
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return sock
}

// Lock and Unlock guard the exported fields while the fake serves.
func (a *Agent) Lock() { a.mu.Lock() }

// Unlock releases Lock.
func (a *Agent) Unlock() { a.mu.Unlock() }

// Calls returns the method names called so far, in order.
func (a *Agent) Calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

// Get returns the attachment for k, if allocated.
func (a *Agent) Get(k Key) (Attachment, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.attachments[k]
	return at, ok
}

// Len returns the number of allocated attachments.
func (a *Agent) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.attachments)
}

// LastGC returns the valid attachments of the last GC call.
func (a *Agent) LastGC() []*agentv1.Attachment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastGC
}

// enter records a call and returns its configured failure.
func (a *Agent) enter(method string) error {
	a.calls = append(a.calls, method)
	return a.Fail[method]
}

// Allocate hands out the next host of each prefix, idempotently per key.
func (a *Agent) Allocate(_ context.Context, req *agentv1.AllocateRequest) (*agentv1.AllocateResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("Allocate"); err != nil {
		return nil, err
	}
	k := Key{req.GetContainerId(), req.GetIfname()}
	if at, ok := a.attachments[k]; ok {
		return &agentv1.AllocateResponse{Addresses: at.Addresses}, nil
	}
	if len(req.GetIpFamilies()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no ip_families")
	}
	host := a.nextHost
	a.nextHost++
	at := Attachment{Network: req.GetNetwork()}
	for _, f := range req.GetIpFamilies() {
		switch f {
		case agentv1.IPFamily_IP_FAMILY_V4:
			at.Addresses = append(at.Addresses, nth(netip.MustParsePrefix(v4Prefix), host).String()+"/32")
		case agentv1.IPFamily_IP_FAMILY_V6:
			at.Addresses = append(at.Addresses, nth(netip.MustParsePrefix(v6Prefix), host).String()+"/128")
		default:
			return nil, status.Errorf(codes.InvalidArgument, "family %v", f)
		}
	}
	a.attachments[k] = at
	return &agentv1.AllocateResponse{Addresses: at.Addresses}, nil
}

// nth returns the n-th address of p (n small).
func nth(p netip.Prefix, n uint64) netip.Addr {
	b := p.Addr().AsSlice()
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		sum := uint64(b[i]) + n
		b[i] = byte(sum)
		n = sum >> 8
	}
	addr, _ := netip.AddrFromSlice(b)
	return addr
}

// EndpointUp records the host interface and runs OnEndpointUp.
func (a *Agent) EndpointUp(_ context.Context, req *agentv1.EndpointUpRequest) (*agentv1.EndpointUpResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("EndpointUp"); err != nil {
		return nil, err
	}
	k := Key{req.GetContainerId(), req.GetIfname()}
	at, ok := a.attachments[k]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no allocation for %s/%s", k.ContainerID, k.IfName)
	}
	if a.OnEndpointUp != nil {
		if err := a.OnEndpointUp(req); err != nil {
			return nil, status.Errorf(codes.Internal, "install route: %v", err)
		}
	}
	at.HostIface = req.GetHostIface()
	a.attachments[k] = at
	return &agentv1.EndpointUpResponse{}, nil
}

// Release forgets the attachment; an unknown one answers NOT_FOUND, which
// the contract allows.
func (a *Agent) Release(_ context.Context, req *agentv1.ReleaseRequest) (*agentv1.ReleaseResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("Release"); err != nil {
		return nil, err
	}
	k := Key{req.GetContainerId(), req.GetIfname()}
	at, ok := a.attachments[k]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no allocation for %s/%s", k.ContainerID, k.IfName)
	}
	if a.OnRelease != nil {
		if err := a.OnRelease(k, at); err != nil {
			return nil, status.Errorf(codes.Internal, "remove route: %v", err)
		}
	}
	delete(a.attachments, k)
	return &agentv1.ReleaseResponse{}, nil
}

// Check compares the request with its records.
func (a *Agent) Check(_ context.Context, req *agentv1.CheckRequest) (*agentv1.CheckResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("Check"); err != nil {
		return nil, err
	}
	k := Key{req.GetContainerId(), req.GetIfname()}
	at, ok := a.attachments[k]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no allocation for %s/%s", k.ContainerID, k.IfName)
	}
	resp := &agentv1.CheckResponse{}
	if at.HostIface != req.GetHostIface() {
		resp.Problems = append(resp.Problems, fmt.Sprintf("host iface is %q, plugin says %q", at.HostIface, req.GetHostIface()))
	}
	if fmt.Sprint(at.Addresses) != fmt.Sprint(req.GetAddresses()) {
		resp.Problems = append(resp.Problems, fmt.Sprintf("addresses are %v, plugin says %v", at.Addresses, req.GetAddresses()))
	}
	return resp, nil
}

// Status answers ready unless NotReady is set.
func (a *Agent) Status(context.Context, *agentv1.StatusRequest) (*agentv1.StatusResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("Status"); err != nil {
		return nil, err
	}
	return &agentv1.StatusResponse{Ready: a.NotReady == "", Reason: a.NotReady}, nil
}

// GC forgets every attachment of the request's network not in the valid
// list.
func (a *Agent) GC(_ context.Context, req *agentv1.GCRequest) (*agentv1.GCResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enter("GC"); err != nil {
		return nil, err
	}
	a.lastGC = req.GetValidAttachments()
	valid := map[Key]bool{}
	for _, v := range req.GetValidAttachments() {
		valid[Key{v.GetContainerId(), v.GetIfname()}] = true
	}
	for k, at := range a.attachments {
		if !valid[k] && at.Network == req.GetNetwork() {
			delete(a.attachments, k)
		}
	}
	return &agentv1.GCResponse{}, nil
}
