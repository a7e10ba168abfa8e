package plugin

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/cairn-net/cairn/cni-plugin/netconf"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

// Options configure a Plugin. Zero fields get production defaults.
type Options struct {
	// Log receives the plugin's structured log (never stdout: that is the
	// CNI result). Defaults to discarding.
	Log *slog.Logger
	// LogLevel, when set, is adjusted to the netconf's "logLevel".
	LogLevel *slog.LevelVar
	// Dataplane does the kernel work; defaults to a netsetup.Kernel in the
	// plugin's own namespace.
	Dataplane Dataplane
	// DialAgent connects to the agent; defaults to DialAgent.
	DialAgent AgentDialer
	// Stdout receives ADD results; defaults to os.Stdout.
	Stdout io.Writer
	// Rand supplies pod MACs; defaults to crypto/rand.
	Rand io.Reader
}

// Plugin runs CNI commands. A Plugin holds no state between commands, so
// one may serve many (tests run concurrent ADDs through one).
type Plugin struct {
	log    *slog.Logger
	level  *slog.LevelVar
	dp     Dataplane
	dial   AgentDialer
	stdout io.Writer
	rand   io.Reader
}

// New returns a Plugin.
func New(o Options) *Plugin {
	p := &Plugin{log: o.Log, level: o.LogLevel, dp: o.Dataplane, dial: o.DialAgent, stdout: o.Stdout, rand: o.Rand}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.dp == nil {
		p.dp = &netsetup.Kernel{Log: p.log}
	}
	if p.dial == nil {
		p.dial = DialAgent
	}
	if p.stdout == nil {
		p.stdout = os.Stdout
	}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	return p
}

// versionInfo lists the CNI versions the plugin speaks.
func versionInfo() version.PluginInfo {
	return version.PluginSupports("0.4.0", "1.0.0", "1.1.0")
}

// Main runs one CNI command as the runtime asked (environment and stdin)
// through skel, prints the result or the CNI error to Stdout, and returns
// the process exit code.
func (p *Plugin) Main(ctx context.Context, about string) int {
	var cniVersion string
	e := skel.PluginMainFuncsWithError(p.funcs(ctx, &cniVersion), versionInfo(), about)
	if e == nil {
		return 0
	}
	if err := printError(p.stdout, e, cniVersion); err != nil {
		p.log.Error("print CNI error", "err", err)
	}
	return 1
}

// funcs adapts the plugin to skel: each command's error becomes a CNI
// error with its code, and the netconf's cniVersion is noted for the error
// output (skel's own printer leaves it out).
func (p *Plugin) funcs(ctx context.Context, cniVersion *string) skel.CNIFuncs {
	wrap := func(fn func(context.Context, *skel.CmdArgs) error) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error {
			if v, err := configVersion(args.StdinData); err == nil {
				*cniVersion = v
			}
			if err := fn(ctx, args); err != nil {
				return toCNIError(err)
			}
			return nil
		}
	}
	return skel.CNIFuncs{
		Add:    wrap(p.addAndPrint),
		Del:    wrap(p.Del),
		Check:  wrap(p.Check),
		GC:     wrap(p.GC),
		Status: wrap(p.Status),
	}
}

// printError writes a CNI error as the spec shapes it, cniVersion included.
func printError(w io.Writer, e *types.Error, cniVersion string) error {
	out := struct {
		CNIVersion string `json:"cniVersion,omitempty"`
		*types.Error
	}{cniVersion, e}
	data, err := json.MarshalIndent(out, "", "    ")
	if err != nil {
		return fmt.Errorf("encode CNI error: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

func (p *Plugin) addAndPrint(ctx context.Context, args *skel.CmdArgs) error {
	res, err := p.Add(ctx, args)
	if err != nil {
		return err
	}
	// Add parsed the netconf, so its version decodes.
	cniVersion, err := configVersion(args.StdinData)
	if err != nil {
		return fmt.Errorf("decode cniVersion: %w", err)
	}
	return printResult(p.stdout, res, cniVersion)
}

// printResult prints res converted to the netconf's CNI version.
func printResult(w io.Writer, res types.Result, cniVersion string) error {
	converted, err := res.GetAsVersion(cniVersion)
	if err != nil {
		return fmt.Errorf("convert result to CNI %s: %w", cniVersion, err)
	}
	if err := converted.PrintTo(w); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	return nil
}

// request is a validated command invocation.
type request struct {
	cfg         *netconf.Config
	pod         netconf.PodInfo
	containerID string
	ifName      string
	netns       string
	hostVeth    string
	log         *slog.Logger
}

// parse validates what every per-attachment command (ADD, DEL, CHECK)
// receives. needNetns is false for DEL, where the netns may be gone.
func (p *Plugin) parse(args *skel.CmdArgs, needNetns bool) (*request, error) {
	cfg, err := p.parseConf(args.StdinData)
	if err != nil {
		return nil, err
	}
	if e := utils.ValidateContainerID(args.ContainerID); e != nil {
		return nil, e
	}
	if e := utils.ValidateInterfaceName(args.IfName); e != nil {
		return nil, e
	}
	if args.Netns == "" && needNetns {
		return nil, envError("CNI_NETNS", "is required")
	}
	if args.Netns != "" && (!filepath.IsAbs(args.Netns) || filepath.Clean(args.Netns) != args.Netns) {
		return nil, envError("CNI_NETNS", "must be a clean absolute path")
	}
	pod, err := netconf.ParseArgs(args.Args)
	if err != nil {
		return nil, err
	}
	r := &request{
		cfg: cfg, pod: pod, containerID: args.ContainerID, ifName: args.IfName, netns: args.Netns,
		hostVeth: netsetup.HostVethName(pod.Namespace, pod.Name, args.ContainerID, args.IfName),
	}
	r.log = p.log.With("network", cfg.Name, "containerID", r.containerID, "ifname", r.ifName, "hostVeth", r.hostVeth)
	if pod.IsSet() {
		r.log = r.log.With("pod", pod.Namespace+"/"+pod.Name)
	}
	return r, nil
}

// parseConf parses the netconf and applies its log level.
func (p *Plugin) parseConf(stdin []byte) (*netconf.Config, error) {
	cfg, err := netconf.Parse(stdin)
	if err != nil {
		return nil, err
	}
	if p.level != nil {
		p.level.Set(cfg.LogLevel)
	}
	return cfg, nil
}

// withAgent dials the agent, runs fn, and closes the connection.
func (p *Plugin) withAgent(cfg *netconf.Config, fn func(agent agentClient) error) error {
	client, closer, err := p.dial(cfg.AgentSocket)
	if err != nil {
		return err
	}
	defer closer.Close()
	return fn(agentClient{api: client, timeout: cfg.AgentTimeout, socket: cfg.AgentSocket})
}

// configVersion reads only the netconf's cniVersion.
func configVersion(stdin []byte) (string, error) {
	var d version.ConfigDecoder
	return d.Decode(stdin)
}
