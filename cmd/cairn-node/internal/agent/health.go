package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/cairn-net/cairn/cmd/cairn-node/internal/health"
	"github.com/cairn-net/cairn/felix"
)

// Probe timings.
const (
	// stallGrace is how long past its due time a loop may go without a
	// round before liveness calls it wedged: generous, since a restart
	// costs a BGP graceful restart and a slow pass is not a wedge.
	stallGrace = 90 * time.Second
	// pingWait is how long a probe waits for the speaker to answer.
	pingWait = 2 * time.Second
	// dialTimeout bounds the probe's connection to the CNI socket.
	dialTimeout = time.Second
	// controllerBackoff is the longest the work queue holds a failed sync
	// back (newQueue's limiter).
	controllerBackoff = 30 * time.Second
	// minAPIWindow is the shortest time without an answer from the API
	// server that readiness tolerates.
	minAPIWindow = 30 * time.Second
)

// nodeHealth answers cairn-node's probes from the agent's own state. It
// exists from the start of Run, before the agent's parts: until attach,
// liveness has nothing to check and readiness says the agent is starting.
type nodeHealth struct {
	now       func() time.Time
	socket    string
	apiWindow time.Duration
	pingWait  time.Duration

	// controller marks every sync, api every answer from the API server.
	controller, api *health.Beat

	mu    sync.Mutex
	parts *healthParts // nil until attach

	speakerRunning atomic.Bool
}

// healthParts are what the checks read once the agent runs.
type healthParts struct {
	synced  func() bool // a sync has completed
	felix   interface{ Health() felix.Health }
	speaker *health.Pinger
}

func newNodeHealth(opts Options, now func() time.Time) *nodeHealth {
	return &nodeHealth{
		now:        now,
		socket:     opts.AgentSocket,
		apiWindow:  max(minAPIWindow, 3*opts.StatusInterval),
		pingWait:   pingWait,
		controller: health.NewBeat(opts.ResyncInterval + controllerBackoff),
		api:        health.NewBeat(0),
	}
}

// attach hands the running agent's parts to the checks.
func (h *nodeHealth) attach(synced func() bool, fx interface{ Health() felix.Health }, peerStates func()) {
	p := &healthParts{synced: synced, felix: fx, speaker: health.NewPinger(peerStates, h.now)}
	h.mu.Lock()
	h.parts = p
	h.mu.Unlock()
}

func (h *nodeHealth) get() *healthParts {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.parts
}

// errStarting: the agent is still waiting for its Node and caches.
var errStarting = errors.New("starting: waiting for the Node and the caches")

// liveChecks fail only when a loop of the agent has stopped going round:
// never because the API server or a peer is away, which a restart would
// not mend.
func (h *nodeHealth) liveChecks() []health.Check {
	return []health.Check{
		{Name: "controller", Check: func(context.Context) error {
			return health.Overdue(h.now(), h.controller.Due(), stallGrace)
		}},
		{Name: "felix", Check: func(context.Context) error {
			p := h.get()
			if p == nil {
				return nil
			}
			return health.Overdue(h.now(), p.felix.Health().NextPassDue, stallGrace)
		}},
		{Name: "bgp", Check: func(ctx context.Context) error {
			p := h.get()
			if p == nil {
				return nil
			}
			return p.speaker.Ping(ctx, h.pingWait, stallGrace)
		}},
	}
}

// readyChecks: the first sync done, felix in sync, the BGP speaker
// running, the CNI socket answering, the API server answering lately; and
// nothing wedged.
func (h *nodeHealth) readyChecks() []health.Check {
	ready := []health.Check{
		{Name: "sync", Check: func(context.Context) error {
			if p := h.get(); p == nil || !p.synced() {
				return errors.New("the first sync of the node's state is not done")
			}
			return nil
		}},
		{Name: "felix-in-sync", Check: func(context.Context) error { return h.felixInSync() }},
		{Name: "bgp-running", Check: func(context.Context) error {
			if !h.speakerRunning.Load() {
				return errors.New("the BGP speaker is not running")
			}
			return nil
		}},
		{Name: "cni-socket", Check: h.dialSocket},
		{Name: "apiserver", Check: func(context.Context) error {
			last := h.api.Last()
			if last.IsZero() {
				return errors.New("no answer from the API server yet")
			}
			if d := h.now().Sub(last); d > h.apiWindow {
				return fmt.Errorf("no answer from the API server for %s", d.Round(time.Second))
			}
			return nil
		}},
	}
	return append(ready, h.liveChecks()...)
}

func (h *nodeHealth) felixInSync() error {
	p := h.get()
	if p == nil {
		return errStarting
	}
	fh := p.felix.Health()
	switch {
	case !fh.Running:
		return errors.New("felix is not running")
	case fh.Err != nil:
		return fmt.Errorf("felix's last pass failed: %w", fh.Err)
	case !fh.InSync:
		return errors.New("felix has not read the kernel back yet")
	}
	return nil
}

// dialSocket connects to the CNI socket as the plugin does: the file is
// there and the agent accepts on it.
func (h *nodeHealth) dialSocket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", h.socket)
	if err != nil {
		return fmt.Errorf("CNI socket: %w", err)
	}
	return c.Close()
}

// runSpeaker runs run (the speaker's Run) with readiness knowing it runs.
func (h *nodeHealth) runSpeaker(run func() error) error {
	h.speakerRunning.Store(true)
	defer h.speakerRunning.Store(false)
	return run()
}

// apiAnswered reports whether a call's outcome came from the API server:
// success, or an error the server returned (a conflict is an answer too).
func apiAnswered(err error) bool {
	var st apierrors.APIStatus
	return err == nil || errors.As(err, &st)
}
