package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
)

// addressAllocator is the part of IPAM the CNI server uses. An
// allocation is durable (written to the API server) when AutoAssign
// returns; both calls are idempotent per handle.
type addressAllocator interface {
	AutoAssign(ctx context.Context, req allocator.Request) ([]netip.Prefix, error)
	ReleaseByHandle(ctx context.Context, handleID string) error
}

// endpointDataplane is the part of felix the CNI server uses.
type endpointDataplane interface {
	// SetEndpoint returns once the endpoint's routes are in the kernel.
	SetEndpoint(ctx context.Context, ep felix.Endpoint) error
	// RemoveEndpoint removes the endpoint of hostIface only if owner
	// stated it last.
	RemoveEndpoint(ctx context.Context, hostIface, owner string) error
}

// cniServer serves the plugin's gRPC API on the node. What it allocates
// reaches the controller through the IPAM informers, not through a call.
type cniServer struct {
	agentv1.UnimplementedAgentServer
	log       *slog.Logger
	node      string // this node: part of every new handle ID
	alloc     addressAllocator
	dataplane endpointDataplane
	endpoints *endpointStore
	// ready reports whether Allocate can be served, and why not.
	ready func() (bool, string)
	// inflight orders GC after every allocation in progress when it
	// starts: GC knows attachments only by their records, so without it
	// an ADD whose record lands after GC read the records would leak.
	inflight allocations
}

// allocateTimeout bounds an allocation once the agent has started it. The
// allocation does not end with the plugin's call: a plugin killed or
// timed out part-way would otherwise leave IPAM writes whose outcome the
// agent never learns (sent, then the wait cancelled), so neither the
// rollback nor the record could account for them. Finished, the
// allocation has a record, and the runtime's DEL or GC releases it.
const allocateTimeout = 2 * time.Minute

// handleIDs are the IPAM handles that may hold an attachment's addresses:
// the one its record names, or, with no record, today's and the legacy
// one (an allocation by an older agent whose record is lost).
func (s *cniServer) handleIDs(a attachment) []string {
	if rec, ok := s.endpoints.get(a); ok {
		return []string{rec.handleID()}
	}
	return []string{ipam.HandleID(s.node, a.ContainerID, a.IfName), ipam.LegacyHandleID(a.ContainerID, a.IfName)}
}

func (s *cniServer) Allocate(ctx context.Context, req *agentv1.AllocateRequest) (*agentv1.AllocateResponse, error) {
	if err := validateAttachment(req.ContainerId, req.Ifname); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if ok, why := s.ready(); !ok {
		return nil, status.Error(codes.Unavailable, "agent not ready: "+why)
	}
	att := attachment{req.ContainerId, req.Ifname}
	// A retried ADD reuses the record's handle, which an older agent may
	// have named the legacy way.
	rec, ok := s.endpoints.get(att)
	if !ok {
		rec = endpointRecord{ContainerID: req.ContainerId, IfName: req.Ifname, HandleID: ipam.HandleID(s.node, req.ContainerId, req.Ifname)}
	}
	ar := allocator.Request{
		HandleID: rec.handleID(), ContainerID: req.ContainerId, Interface: req.Ifname,
		Namespace: req.PodNamespace, Pod: req.PodName, PodUID: req.PodUid,
	}
	if req.PoolHint != "" {
		ar.Pools = []string{req.PoolHint}
	}
	for _, f := range req.IpFamilies {
		switch f {
		case agentv1.IPFamily_IP_FAMILY_V4:
			ar.IPv4++
		case agentv1.IPFamily_IP_FAMILY_V6:
			ar.IPv6++
		default:
			return nil, status.Errorf(codes.InvalidArgument, "unknown IP family %v", f)
		}
	}
	if ar.IPv4 > 1 || ar.IPv6 > 1 || ar.IPv4+ar.IPv6 == 0 {
		return nil, status.Error(codes.InvalidArgument, "ask for one address of IPv4, IPv6 or both")
	}
	log := s.log.With("pod", req.PodNamespace+"/"+req.PodName, "container", req.ContainerId)
	defer s.inflight.begin()() // until the record is written
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), allocateTimeout)
	defer cancel()
	// Idempotent per attachment: a retried ADD gets the same addresses.
	addrs, err := s.alloc.AutoAssign(actx, ar)
	if err != nil {
		log.Warn("allocation failed", "err", err)
		return nil, grpcError(ctx, fmt.Errorf("allocate addresses for %s/%s: %w", req.PodNamespace, req.PodName, err))
	}
	// The record lets EndpointUp and Check verify addresses without a
	// round trip to the API server, and survives agent restarts.
	rec.Addresses, rec.Namespace, rec.Pod, rec.Network = addrs, req.PodNamespace, req.PodName, req.Network
	if err := s.endpoints.put(rec); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if ctx.Err() != nil {
		// Nobody is waiting for the answer: the record lets the
		// runtime's DEL or GC release what was allocated.
		log.Info("allocated after the plugin stopped waiting", "addresses", addrs)
		return nil, status.Error(codes.Canceled, "the plugin stopped waiting")
	}
	log.Info("allocated", "addresses", addrs)
	return &agentv1.AllocateResponse{Addresses: prefixStrings(addrs)}, nil
}

func (s *cniServer) EndpointUp(ctx context.Context, req *agentv1.EndpointUpRequest) (*agentv1.EndpointUpResponse, error) {
	if err := validateAttachment(req.ContainerId, req.Ifname); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// felix refuses other interfaces too; checking here gives the plugin
	// InvalidArgument instead of an internal error after the record is written.
	if !strings.HasPrefix(req.HostIface, felix.HostVethPrefix) || len(req.HostIface) > 15 {
		return nil, status.Errorf(codes.InvalidArgument, "host interface %q is not a Cairn veth (%s...)", req.HostIface, felix.HostVethPrefix)
	}
	addrs, err := parseHostPrefixes(req.Addresses)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// Route only what IPAM handed to this attachment: the plugin must not
	// be able to steer another pod's address to this veth.
	att := attachment{req.ContainerId, req.Ifname}
	rec, ok := s.endpoints.get(att)
	if !ok {
		return nil, status.Error(codes.FailedPrecondition, "no addresses were allocated to this attachment")
	}
	if !sameSet(rec.Addresses, addrs) {
		return nil, status.Errorf(codes.FailedPrecondition, "addresses %v are not the ones allocated to this attachment (%v)", addrs, rec.Addresses)
	}
	// The veth's name may have been another attachment's (the pod's
	// previous sandbox): from now on it is this one's.
	if _, err := s.endpoints.bind(rec, req.HostIface); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := s.dataplane.SetEndpoint(ctx, felix.Endpoint{HostIface: req.HostIface, Addrs: addrs, Owner: att.String()}); err != nil {
		return nil, grpcError(ctx, fmt.Errorf("install routes to %s: %w", req.HostIface, err))
	}
	return &agentv1.EndpointUpResponse{}, nil
}

func (s *cniServer) Release(ctx context.Context, req *agentv1.ReleaseRequest) (*agentv1.ReleaseResponse, error) {
	if err := validateAttachment(req.ContainerId, req.Ifname); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.release(ctx, attachment{req.ContainerId, req.Ifname}); err != nil {
		return nil, grpcError(ctx, err)
	}
	return &agentv1.ReleaseResponse{}, nil
}

// release removes routes first, then frees the addresses, then forgets
// the record: an address is never handed out while a route still points
// at the old pod. Only routes this attachment owns go: a pod's new
// sandbox may have taken over the host veth's name.
func (s *cniServer) release(ctx context.Context, a attachment) error {
	if rec, ok := s.endpoints.get(a); ok && rec.HostIface != "" {
		if err := s.dataplane.RemoveEndpoint(ctx, rec.HostIface, a.String()); err != nil {
			return fmt.Errorf("remove routes of %s from %s: %w", a, rec.HostIface, err)
		}
	}
	for _, h := range s.handleIDs(a) {
		if err := s.alloc.ReleaseByHandle(ctx, h); err != nil {
			return fmt.Errorf("release addresses of %s: %w", a, err)
		}
	}
	return s.endpoints.remove(a)
}

func (s *cniServer) Check(_ context.Context, req *agentv1.CheckRequest) (*agentv1.CheckResponse, error) {
	if err := validateAttachment(req.ContainerId, req.Ifname); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	var problems []string
	want, err := parseHostPrefixes(req.Addresses)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	rec, ok := s.endpoints.get(attachment{req.ContainerId, req.Ifname})
	switch {
	case !ok:
		problems = append(problems, "the agent has no endpoint for this attachment")
	case rec.HostIface != req.HostIface:
		problems = append(problems, fmt.Sprintf("endpoint is on %s, the pod's veth is %s", rec.HostIface, req.HostIface))
	case !sameSet(rec.Addresses, want):
		problems = append(problems, fmt.Sprintf("the agent allocated %v to this attachment, the pod has %v", rec.Addresses, want))
	}
	return &agentv1.CheckResponse{Problems: problems}, nil
}

func (s *cniServer) Status(context.Context, *agentv1.StatusRequest) (*agentv1.StatusResponse, error) {
	ok, why := s.ready()
	return &agentv1.StatusResponse{Ready: ok, Reason: why}, nil
}

func (s *cniServer) GC(ctx context.Context, req *agentv1.GCRequest) (*agentv1.GCResponse, error) {
	// Read the records once the allocations in progress have written
	// theirs; ADDs that start later are not GC's to judge.
	if err := s.inflight.waitBegunBefore(ctx); err != nil {
		return nil, grpcError(ctx, fmt.Errorf("wait for the allocations in progress: %w", err))
	}
	recs := s.endpoints.all()
	valid := map[attachment]bool{}
	for _, a := range req.ValidAttachments {
		valid[attachment{a.ContainerId, a.Ifname}] = true
	}
	var errs []error
	for _, rec := range recs {
		a := rec.attachment()
		if valid[a] || rec.Network != req.Network {
			continue // still used, or another network's to collect
		}
		s.log.Info("GC releases an attachment the runtime no longer has", "network", rec.Network, "container", rec.ContainerID, "ifname", rec.IfName)
		errs = append(errs, s.release(ctx, a))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, grpcError(ctx, err)
	}
	return &agentv1.GCResponse{}, nil
}

// grpcError maps an error to a status the plugin understands: deadlines
// and cancellations are temporary (CNI "try again later").
func grpcError(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.Error(codes.Unavailable, err.Error())
	}
	if errors.Is(err, allocator.ErrNoAddresses) {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	if errors.Is(err, ipam.ErrRejected) {
		// E.g. a handle of this ID belongs to another container: not
		// something a retry fixes.
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func parseHostPrefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", s, err)
		}
		if p.Bits() != p.Addr().BitLen() {
			return nil, fmt.Errorf("address %s: want a /32 or /128", p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no addresses")
	}
	return out, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func sameSet(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[netip.Prefix]bool{}
	for _, p := range a {
		m[p] = true
	}
	for _, p := range b {
		if !m[p] {
			return false
		}
	}
	return true
}
