package plugin

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

// recorder is the one ordered log of calls to both fakes, so tests can
// assert the order of agent and kernel steps together.
type recorder struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]error
}

func newRecorder() *recorder { return &recorder{fail: map[string]error{}} }

func (r *recorder) call(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, name)
	return r.fail[name]
}

func (r *recorder) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// fakeDataplane records kernel steps; it changes nothing.
type fakeDataplane struct {
	rec    *recorder
	exists bool
	pod    netsetup.PodState
	host   netsetup.HostState
	veth   netsetup.Veth
	config netsetup.PodConfig
	// uplinkMTU is what UplinkMTU reports.
	uplinkMTU int
}

func (f *fakeDataplane) CheckPod(string, string) error {
	if err := f.rec.call("dp.CheckPod"); err != nil {
		return err
	}
	if f.exists {
		return netsetup.ErrInterfaceExists
	}
	return nil
}

func (f *fakeDataplane) CreateVeth(_ string, v netsetup.Veth) error {
	f.veth = v
	return f.rec.call("dp.CreateVeth")
}

func (f *fakeDataplane) ConfigurePod(_ string, c netsetup.PodConfig) error {
	f.config = c
	return f.rec.call("dp.ConfigurePod")
}

func (f *fakeDataplane) DeleteHostVeth(string) error { return f.rec.call("dp.DeleteHostVeth") }

func (f *fakeDataplane) DeletePodInterface(string, string) error {
	return f.rec.call("dp.DeletePodInterface")
}

func (f *fakeDataplane) InspectPod(string, string) (netsetup.PodState, error) {
	return f.pod, f.rec.call("dp.InspectPod")
}

func (f *fakeDataplane) UplinkMTU() (int, error) { return f.uplinkMTU, nil }

func (f *fakeDataplane) InspectHost(string) (netsetup.HostState, error) {
	return f.host, f.rec.call("dp.InspectHost")
}

// fakeAgent is an agentv1.AgentClient without gRPC.
type fakeAgent struct {
	rec       *recorder
	addresses []string
	problems  []string
	notReady  string
	block     bool // Allocate waits for its context to end
	lastAlloc *agentv1.AllocateRequest
	lastUp    *agentv1.EndpointUpRequest
	lastGC    *agentv1.GCRequest
}

func (f *fakeAgent) Allocate(ctx context.Context, in *agentv1.AllocateRequest, _ ...grpc.CallOption) (*agentv1.AllocateResponse, error) {
	f.lastAlloc = in
	if err := f.rec.call("agent.Allocate"); err != nil {
		return nil, err
	}
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &agentv1.AllocateResponse{Addresses: f.addresses}, nil
}

func (f *fakeAgent) EndpointUp(_ context.Context, in *agentv1.EndpointUpRequest, _ ...grpc.CallOption) (*agentv1.EndpointUpResponse, error) {
	f.lastUp = in
	return &agentv1.EndpointUpResponse{}, f.rec.call("agent.EndpointUp")
}

func (f *fakeAgent) Release(context.Context, *agentv1.ReleaseRequest, ...grpc.CallOption) (*agentv1.ReleaseResponse, error) {
	return &agentv1.ReleaseResponse{}, f.rec.call("agent.Release")
}

func (f *fakeAgent) Check(context.Context, *agentv1.CheckRequest, ...grpc.CallOption) (*agentv1.CheckResponse, error) {
	return &agentv1.CheckResponse{Problems: f.problems}, f.rec.call("agent.Check")
}

func (f *fakeAgent) Status(context.Context, *agentv1.StatusRequest, ...grpc.CallOption) (*agentv1.StatusResponse, error) {
	return &agentv1.StatusResponse{Ready: f.notReady == "", Reason: f.notReady}, f.rec.call("agent.Status")
}

// NodeStatus is cairnctl's call; the plugin never makes it.
func (f *fakeAgent) NodeStatus(context.Context, *agentv1.NodeStatusRequest, ...grpc.CallOption) (*agentv1.NodeStatusResponse, error) {
	return nil, status.Error(codes.Unimplemented, "the plugin does not call NodeStatus")
}

func (f *fakeAgent) GC(_ context.Context, in *agentv1.GCRequest, _ ...grpc.CallOption) (*agentv1.GCResponse, error) {
	f.lastGC = in
	return &agentv1.GCResponse{}, f.rec.call("agent.GC")
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// constReader is an endless source of one byte, for deterministic MACs.
type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// fixture is a plugin wired to both fakes.
type fixture struct {
	rec   *recorder
	dp    *fakeDataplane
	agent *fakeAgent
	p     *Plugin
	out   *syncBuffer
}

func newFixture() *fixture {
	rec := newRecorder()
	f := &fixture{
		rec:   rec,
		dp:    &fakeDataplane{rec: rec},
		agent: &fakeAgent{rec: rec, addresses: []string{"198.51.100.7/32"}},
		out:   &syncBuffer{},
	}
	f.p = New(Options{
		Dataplane: f.dp,
		DialAgent: func(string) (agentv1.AgentClient, io.Closer, error) { return f.agent, nopCloser{}, nil },
		Stdout:    f.out,
		Rand:      constReader(0x42),
	})
	return f
}

type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func mustCIDR(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(fmt.Sprintf("bad CIDR %q in test: %v", s, err))
	}
	if ip.To4() != nil {
		ip = ip.To4()
	}
	return &net.IPNet{IP: ip, Mask: n.Mask}
}
