package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Session is one BGP session as a router sees it.
type Session struct {
	Peer  string     `json:"peer"`
	Addr  netip.Addr `json:"addr"`
	AS    int64      `json:"as"`
	State string     `json:"state"`
	// Info is the router's extra word on the session (last error...).
	Info string `json:"info,omitempty"`
	// Since is when the session entered State, to the second, where the
	// router says (BIRD).
	Since time.Time `json:"since,omitzero"`
}

// Established reports whether the session is up.
func (s Session) Established() bool { return s.State == "Established" }

// RouterRoute is a BGP route in a router's table.
type RouterRoute struct {
	Prefix  netip.Prefix `json:"prefix"`
	NextHop netip.Addr   `json:"nextHop"`
	// From is the session (BIRD protocol or FRR peer) the route came from,
	// empty for the router's own.
	From string `json:"from"`
	Best bool   `json:"best"`
}

// routerDriver knows how to configure, run and query one router daemon.
type routerDriver interface {
	// configure writes the router's configuration into dir and returns
	// the commands to start, in order, each with a short name.
	configure(rp RouterPlan, dir string) ([]routerCommand, error)
	// ready returns nil once the daemon answers on its control socket.
	ready(ctx context.Context, rp RouterPlan, dir string) error
	sessions(ctx context.Context, rp RouterPlan, dir string) ([]Session, error)
	// bfdSessions lists the router's BFD sessions; none when it runs no BFD.
	bfdSessions(ctx context.Context, rp RouterPlan, dir string) ([]BFDSession, error)
	routes(ctx context.Context, rp RouterPlan, dir string) ([]RouterRoute, error)
	// cli returns the argv of the router's own CLI (birdc, vtysh).
	cli(rp RouterPlan, dir string) []string
}

// kernelHelper is a driver whose daemon programs no kernel: the lab runs
// a helper of its own (a cairn-lab command) beside each router, once its
// binaries are built.
type kernelHelper interface {
	helper(rp RouterPlan, labBin string) routerCommand
}

type routerCommand struct {
	name string
	argv []string
	// ready, when set, says whether the daemon has come far enough for
	// the next one to start: startRouterCommands waits for it.
	ready func(ctx context.Context) (bool, error)
}

// routerDaemonReady bounds the wait for one daemon's ready condition; a
// loaded machine takes seconds, so this is generous.
const routerDaemonReady = 60 * time.Second

func driverFor(kind string) (routerDriver, error) {
	switch kind {
	case RouterBIRD:
		return birdDriver{}, nil
	case RouterFRR:
		return frrDriver{}, nil
	case RouterGoBGPD:
		return gobgpdDriver{}, nil
	}
	return nil, fmt.Errorf("unknown router kind %q", kind)
}

// routerDir is where a router's configuration, sockets and logs live.
func routerDir(stateDir, name string) string { return filepath.Join(stateDir, "routers", name) }

// startRouter writes the configuration and starts the daemons detached.
// Each started process is passed to record before the next one starts, so
// a failure half way still leaves every process known to Down.
func startRouter(ctx context.Context, d routerDriver, rp RouterPlan, stateDir string, record func(Proc) error) error {
	dir := routerDir(stateDir, rp.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	cmds, err := d.configure(rp, dir)
	if err != nil {
		return fmt.Errorf("configure %s: %w", rp.Name, err)
	}
	return startRouterCommands(ctx, rp, dir, cmds, record)
}

// startRouterHelper starts a kernelHelper driver's helper for rp.
func startRouterHelper(ctx context.Context, d routerDriver, rp RouterPlan, stateDir, labBin string, record func(Proc) error) error {
	h, ok := d.(kernelHelper)
	if !ok {
		return nil
	}
	return startRouterCommands(ctx, rp, routerDir(stateDir, rp.Name), []routerCommand{h.helper(rp, labBin)}, record)
}

func startRouterCommands(ctx context.Context, rp RouterPlan, dir string, cmds []routerCommand, record func(Proc) error) error {
	for _, c := range cmds {
		p, err := startDetached(rp.NS, c.name+"-"+rp.Name, filepath.Join(dir, c.name+".log"), c.argv, nil)
		if err != nil {
			return err
		}
		if err := record(p); err != nil {
			return err
		}
		if c.ready == nil {
			continue
		}
		err = until(ctx, routerDaemonReady, 50*time.Millisecond, c.name+" on "+rp.Name+" to be ready", func(ctx context.Context) (bool, error) {
			if !p.Alive() {
				return false, stopWaiting(fmt.Errorf("%s exited; log tail:\n%s", p.Name, tail(p.Log, 20)))
			}
			return c.ready(ctx)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// RouterTools are the programs a lab with this router kind needs.
func RouterTools(kind string) []string {
	switch kind {
	case RouterFRR:
		return []string{filepath.Join(frrDir, "zebra"), filepath.Join(frrDir, "bgpd"), "vtysh"}
	case RouterGoBGPD:
		return []string{"gobgpd", "gobgp"}
	}
	return []string{"bird", "birdc"}
}
