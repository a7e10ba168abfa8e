package agent

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientmetrics "k8s.io/client-go/tools/metrics"
)

// ObserveAPIRequests makes client-go report the agent's API server
// requests on reg: cairn_api_requests_total and
// cairn_api_request_duration_seconds. client-go keeps these hooks in
// process-wide variables and takes only the first registration, so
// cmd/cairn-node calls this once, before any client is built.
func ObserveAPIRequests(reg prometheus.Registerer) error {
	latency, results, err := newAPIMetrics(reg)
	if err != nil {
		return err
	}
	clientmetrics.Register(clientmetrics.RegisterOpts{RequestLatency: latency, RequestResult: results})
	return nil
}

// newAPIMetrics registers the API request metrics on reg and returns
// client-go's adapters to them.
func newAPIMetrics(reg prometheus.Registerer) (apiLatency, apiResults, error) {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cairn_api_request_duration_seconds",
		Help:    "Latency of the agent's requests to the Kubernetes API server, by verb and resource (watches last as long as they are open).",
		Buckets: prometheus.ExponentialBuckets(0.002, 3, 9), // 2ms to 13s
	}, []string{"verb", "resource"})
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_api_requests_total",
		Help: "The agent's requests to the Kubernetes API server, by HTTP method and status code (<error> when no answer came).",
	}, []string{"method", "code"})
	for _, c := range []prometheus.Collector{latency, results} {
		if err := reg.Register(c); err != nil {
			return apiLatency{}, apiResults{}, fmt.Errorf("register API request metrics: %w", err)
		}
	}
	return apiLatency{latency}, apiResults{results}, nil
}

type apiLatency struct{ h *prometheus.HistogramVec }

func (l apiLatency) Observe(_ context.Context, verb string, u url.URL, d time.Duration) {
	l.h.WithLabelValues(verb, apiResource(u.Path)).Observe(d.Seconds())
}

type apiResults struct{ c *prometheus.CounterVec }

func (r apiResults) Increment(_ context.Context, code, method, _ string) {
	r.c.WithLabelValues(method, code).Inc()
}

// apiResource is the resource an API path names ("ipamblocks",
// "cairnnodestatuses/status"), never an object's name or namespace, so
// the label stays bounded by the API's resources.
func apiResource(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:] // api, v1
	case len(parts) >= 4 && parts[0] == "apis":
		parts = parts[3:] // apis, group, version
	default:
		return "other"
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:] // a namespaced resource
	}
	switch len(parts) {
	case 1, 2:
		return parts[0]
	default:
		return parts[0] + "/" + parts[2]
	}
}
