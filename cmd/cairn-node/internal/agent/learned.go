package agent

import (
	"context"
	"net/netip"
	"sync"

	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
)

// forwardLearned hands every new set of learned paths to felix as routes,
// and keeps the latest set in last for the status writer.
func forwardLearned(ctx context.Context, learned <-chan []speaker.Path, dp interface{ SetLearnedRoutes([]felix.LearnedRoute) }, last *learnedHolder) {
	for {
		select {
		case <-ctx.Done():
			return
		case paths, ok := <-learned:
			if !ok {
				return
			}
			routes := learnedRoutes(paths)
			last.set(routes, paths)
			dp.SetLearnedRoutes(routes)
		}
	}
}

// learnedRoutes turns the speaker's paths into felix's routes: one route
// per prefix, with every next hop of that prefix (ECMP). The speaker has
// normalised the paths already (masked prefixes, one path per prefix and
// next hop, sorted by prefix then next hop), so this only groups them.
func learnedRoutes(paths []speaker.Path) []felix.LearnedRoute {
	var out []felix.LearnedRoute
	for _, p := range paths {
		if n := len(out); n > 0 && out[n-1].Prefix == p.Prefix {
			out[n-1].NextHops = append(out[n-1].NextHops, p.NextHop)
			continue
		}
		out = append(out, felix.LearnedRoute{Prefix: p.Prefix, NextHops: []netip.Addr{p.NextHop}})
	}
	return out
}

// learnedHolder keeps the latest learned routes for the status writer,
// and the paths they came from for cairnctl.
type learnedHolder struct {
	mu     sync.Mutex
	routes []felix.LearnedRoute
	paths  []speaker.Path
}

func (h *learnedHolder) set(r []felix.LearnedRoute, p []speaker.Path) {
	h.mu.Lock()
	h.routes, h.paths = r, p
	h.mu.Unlock()
}

func (h *learnedHolder) getPaths() []speaker.Path {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.paths
}
func (h *learnedHolder) get() []felix.LearnedRoute {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.routes
}
