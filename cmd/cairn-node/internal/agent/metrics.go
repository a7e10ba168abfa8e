package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cairn-net/cairn/felix"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/allocator"
)

// metrics are the instruments that hot paths update as things happen:
// felix's passes, CNI calls, allocations. Everything that is state (BGP
// sessions, routes, blocks, pools) is read when Prometheus scrapes, by
// nodeCollector, so nothing has to be kept in step.
type metrics struct {
	reg *prometheus.Registry

	felixApply, felixResync prometheus.Histogram
	cniDuration             *prometheus.HistogramVec // verb, rpc
	cniRequests             *prometheus.CounterVec   // verb, rpc, code
	allocations             *prometheus.CounterVec   // result
	statusWrites            *prometheus.CounterVec   // cause
}

// newMetrics registers the agent's instruments, and the process and Go
// runtime collectors, on reg (a new registry when nil: never the global
// one, so a second agent in one process does not collide).
func newMetrics(reg *prometheus.Registry, version string) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		reg: reg,
		felixApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_felix_apply_duration_seconds",
			Help:    "Time felix took for an incremental pass (changes written, nothing read back).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 100µs to 6.6s
		}),
		felixResync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_felix_resync_duration_seconds",
			Help:    "Time felix took for a pass that read the kernel back in full.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1ms to 16s
		}),
		cniDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_cni_request_duration_seconds",
			Help:    "Time the agent took to answer the CNI plugin, by CNI verb and agent call (an ADD is Allocate then EndpointUp).",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 10), // 1ms to 20s
		}, []string{"verb", "rpc"}),
		cniRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_cni_requests_total",
			Help: "Calls of the CNI plugin to the agent, by CNI verb, agent call and the CNI error code the plugin reports for the answer (0: success).",
		}, []string{"verb", "rpc", "code"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_ipam_allocations_total",
			Help: "Address allocations asked of IPAM by CNI ADDs, by result: assigned, exhausted (no free address in the pools), rejected, error.",
		}, []string{"result"}),
		statusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_node_status_writes_total",
			Help: "CairnNodeStatus writes, by cause: change (sessions, blocks, routes or readiness changed) or refresh (unchanged, rewritten every --status-interval to show the agent alive).",
		}, []string{"cause"}),
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_agent_info", Help: "The running cairn-node; the value is always 1."}, []string{"version"})
	info.WithLabelValues(version).Set(1)
	for _, c := range []prometheus.Collector{
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		m.felixApply, m.felixResync, m.cniDuration, m.cniRequests, m.allocations, m.statusWrites, info,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	// Series that only appear on first use are invisible to alerts until
	// then: start the ones a dashboard divides by at zero.
	for _, r := range []string{allocAssigned, allocExhausted, allocRejected, allocError} {
		m.allocations.WithLabelValues(r)
	}
	for _, c := range []string{statusChange, statusRefresh} {
		m.statusWrites.WithLabelValues(c)
	}
	return m, nil
}

// observePass is felix's OnPass hook: called on felix's loop, so cheap.
func (m *metrics) observePass(p felix.Pass) {
	h := m.felixApply
	if p.Resync {
		h = m.felixResync
	}
	h.Observe(p.Took.Seconds())
}

// Results of cairn_ipam_allocations_total.
const (
	allocAssigned  = "assigned"
	allocExhausted = "exhausted"
	allocRejected  = "rejected"
	allocError     = "error"
)

// allocationResult names the outcome of an AutoAssign.
func allocationResult(err error) string {
	switch {
	case err == nil:
		return allocAssigned
	case errors.Is(err, allocator.ErrNoAddresses):
		return allocExhausted
	case errors.Is(err, ipam.ErrRejected), errors.Is(err, allocator.ErrInvalidRequest):
		return allocRejected
	}
	return allocError
}

// countingAllocator counts the results of AutoAssign.
type countingAllocator struct {
	addressAllocator
	m *metrics
}

func (c countingAllocator) AutoAssign(ctx context.Context, req allocator.Request) ([]netip.Prefix, error) {
	addrs, err := c.addressAllocator.AutoAssign(ctx, req)
	c.m.allocations.WithLabelValues(allocationResult(err)).Inc()
	return addrs, err
}
