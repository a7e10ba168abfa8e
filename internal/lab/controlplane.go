package lab

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cairn-net/cairn/internal/controlplane"
)

// HelperCommand is the hidden cairn-lab subcommand that starts the control
// plane from inside the control-plane namespace.
//
// Why a helper process: controlplane.Start probes /readyz and installs the
// CRDs from the calling process. The API server listens on a lab address
// that is, by design, unreachable from the root namespace, and a Go
// process cannot move all its threads into another namespace. So `up` runs
// `ip netns exec cl-cp cairn-lab internal-controlplane ...`, which calls
// Start with Detach (etcd and kube-apiserver outlive it) and prints where
// the API server is. The lab's own clients then dial from inside cl-cp
// (see RESTConfig).
const HelperCommand = "internal-controlplane"

// helperResult is what the helper prints on stdout.
type helperResult struct {
	URL        string `json:"url"`
	Kubeconfig string `json:"kubeconfig"`
	// ReadyAfter is the time from starting etcd to /readyz.
	ReadyAfter string `json:"readyAfter"`
}

// RunControlPlaneHelper is the body of HelperCommand: it starts etcd and
// kube-apiserver detached on --address in the current namespace, installs
// Cairn's CRDs and admission policies, waits for the policies, and writes
// a JSON helperResult to stdout. Progress goes to stderr.
func RunControlPlaneHelper(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(HelperCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "control-plane directory")
	addr := fs.String("address", "", "address to listen on")
	repo := fs.String("repo", "", "repository root (for deploy/crds and deploy/policies)")
	kubelets := fs.Bool("kubelets", false, "real kubelets join: also run kube-scheduler and kube-controller-manager")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *addr == "" || *repo == "" {
		return fmt.Errorf("%s needs --dir, --address and --repo", HelperCommand)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	cp, err := controlplane.Start(ctx, controlplane.Options{
		Dir:            *dir,
		Address:        *addr,
		EtcdClientPort: EtcdClientPort, EtcdPeerPort: EtcdPeerPort, APIServerPort: APIServerPort,
		Detach:   true,
		Kubelets: *kubelets,
		CRDDir:   filepath.Join(*repo, "deploy", "crds"),
		Logf:     logf,
	})
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	// From here on a failure must stop what Start left running.
	if err := installPolicies(ctx, cp, *repo); err != nil {
		return errorsJoinStop(err, cp)
	}
	res := helperResult{URL: cp.URL, Kubeconfig: cp.Kubeconfig, ReadyAfter: cp.StartedToReady.Round(time.Millisecond).String()}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		return errorsJoinStop(fmt.Errorf("write helper result: %w", err), cp)
	}
	return nil
}

func installPolicies(ctx context.Context, cp *controlplane.ControlPlane, repo string) error {
	if err := controlplane.InstallManifests(ctx, cp.Config, filepath.Join(repo, "deploy", "policies")); err != nil {
		return fmt.Errorf("install admission policies: %w", err)
	}
	if err := controlplane.WaitPoliciesActive(ctx, cp.Config, 30*time.Second); err != nil {
		return fmt.Errorf("wait for admission policies: %w", err)
	}
	return nil
}

func errorsJoinStop(err error, cp *controlplane.ControlPlane) error {
	if serr := cp.Stop(); serr != nil {
		return fmt.Errorf("%w (and stopping the control plane: %v)", err, serr)
	}
	return err
}

// startControlPlane runs the helper inside the control-plane namespace.
func startControlPlane(ctx context.Context, st *State, helperBin string, kubelets bool) (time.Duration, error) {
	if _, err := controlplane.BinDir(); err != nil {
		return 0, fmt.Errorf("find etcd and kube-apiserver: %w", err)
	}
	dir := filepath.Join(st.Dir, "controlplane")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("create %s: %w", dir, err)
	}
	// Recorded first: Down stops whatever the helper managed to start.
	st.ControlPlane = &ControlPlaneInfo{Dir: dir}
	if err := st.save(); err != nil {
		return 0, err
	}
	cp := st.Plan.ControlPlane
	out, err := run(ctx, "ip", "netns", "exec", cp.NS, helperBin, HelperCommand,
		"--dir", dir, "--address", cp.Addr.String(), "--repo", st.RepoRoot, "--kubelets="+strconv.FormatBool(kubelets))
	if err != nil {
		return 0, fmt.Errorf("control-plane helper in %s: %w", cp.NS, err)
	}
	var res helperResult
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("decode control-plane helper output %q: %w", out, err)
	}
	st.ControlPlane.URL, st.ControlPlane.Kubeconfig = res.URL, res.Kubeconfig
	ready, _ := time.ParseDuration(res.ReadyAfter)
	return ready, st.save()
}

// stopControlPlane stops etcd and kube-apiserver through their pid files.
// The grace is short: the lab throws their data away, and a graceful
// kube-apiserver shutdown takes seconds that buy nothing here.
func stopControlPlane(st *State) error {
	if st.ControlPlane == nil || st.ControlPlane.Dir == "" {
		return nil
	}
	if err := controlplane.StopDir(st.ControlPlane.Dir, time.Second); err != nil {
		return fmt.Errorf("stop control plane: %w", err)
	}
	return nil
}

// restConfig is an admin client configuration for the lab's API server
// whose connections are opened from inside the control-plane namespace:
// the API server's address is not reachable from the root namespace.
func restConfig(st *State) (*rest.Config, error) {
	if st.ControlPlane == nil || st.ControlPlane.Kubeconfig == "" {
		return nil, fmt.Errorf("the lab's control plane is not running")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", st.ControlPlane.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load lab kubeconfig: %w", err)
	}
	cfg.Dial = dialInNS(st.Plan.ControlPlane.NS)
	cfg.QPS, cfg.Burst = 200, 400
	cfg.Timeout = 30 * time.Second
	return cfg, nil
}

// dialInNS returns a dial function that creates its sockets inside the
// named namespace. A socket belongs to the namespace of the thread that
// created it, so the dial runs on a thread locked into the namespace; the
// connection is then usable from any goroutine.
func dialInNS(netns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := ns.WithNetNSPath(NSPath(netns), func(ns.NetNS) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			conn = c
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dial %s from %s: %w", addr, netns, err)
		}
		return conn, nil
	}
}

// apiServerAddr is host:port of the API server on the lab network.
func apiServerAddr(p Plan) string {
	return net.JoinHostPort(p.ControlPlane.Addr.String(), strconv.Itoa(APIServerPort))
}
