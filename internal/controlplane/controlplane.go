package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
)

// ServiceClusterIPRange is where the API server gives Services their
// cluster IPs (--service-cluster-ip-range). The lab announces the same
// range over BGP (lab.ServiceClusterCIDR is this constant).
const ServiceClusterIPRange = "10.96.0.0/16"

// Options configure a control plane. The zero value runs on free loopback
// ports of the current network namespace.
type Options struct {
	// BinDir holds etcd and kube-apiserver; empty means BinDir().
	BinDir string
	// Dir is where data, certificates, logs and pid files go; empty means
	// a new temporary directory, removed by Stop.
	Dir string
	// Address to listen on; empty means 127.0.0.1 with free ports.
	Address string
	// Ports; zero picks free ones on Address.
	EtcdClientPort, EtcdPeerPort, APIServerPort int
	// Wrap prefixes every command, e.g. ["ip", "netns", "exec", "cp"].
	Wrap []string
	// Detach keeps the processes running after this process exits (the
	// lab); Stop or StopDir ends them through their pid files.
	Detach bool
	// CRDDir holds CRD manifests to install; empty means none.
	CRDDir string
	// Kubelets says real kubelets will join the cluster: the API server
	// reaches them (logs, exec) by their InternalIP, and kube-scheduler and
	// kube-controller-manager run beside it, so that pods are scheduled
	// and every namespace gets its default ServiceAccount and root CA.
	Kubelets bool
	// ReadyTimeout bounds the wait for /readyz; default 3 minutes. A deadline,
	// not a figure: at load 40 on two cores the API server once took over 60 s.
	ReadyTimeout time.Duration
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	// Config is an admin client configuration.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file.
	Kubeconfig string
	// URL of the API server.
	URL string
	// Dir holds everything the control plane wrote.
	Dir string
	// StartedToReady is the time from starting etcd to /readyz answering.
	StartedToReady time.Duration

	ownDir bool
	procs  []*process
}

// Start starts etcd and kube-apiserver, waits for readiness and installs
// the CRDs. On error everything started is stopped again.
func Start(ctx context.Context, opts Options) (cp *ControlPlane, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	cp = &ControlPlane{Dir: opts.Dir}
	if cp.Dir == "" {
		if cp.Dir, err = os.MkdirTemp("", "cairn-controlplane-"); err != nil {
			return nil, fmt.Errorf("create control-plane directory: %w", err)
		}
		cp.ownDir = true
	}
	defer func() {
		if err != nil {
			_ = cp.Stop()
			cp = nil
		}
	}()
	begin := time.Now()
	if err := cp.startEtcd(opts); err != nil {
		return cp, err
	}
	token, err := cp.startAPIServer(opts)
	if err != nil {
		return cp, err
	}
	if err := cp.waitReady(ctx, opts); err != nil {
		return cp, err
	}
	cp.StartedToReady = time.Since(begin)
	opts.Logf("control plane ready at %s after %v", cp.URL, cp.StartedToReady.Round(time.Millisecond))
	if err := cp.writeKubeconfig(token); err != nil {
		return cp, err
	}
	if opts.Kubelets {
		if err := cp.startControllers(opts); err != nil {
			return cp, err
		}
	}
	if opts.CRDDir != "" {
		if err := InstallManifests(ctx, cp.Config, opts.CRDDir); err != nil {
			return cp, err
		}
	}
	return cp, nil
}

func (o *Options) defaults() error {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 3 * time.Minute
	}
	if o.BinDir == "" {
		dir, err := BinDir()
		if err != nil {
			return err
		}
		o.BinDir = dir
	}
	if o.Address == "" {
		o.Address = "127.0.0.1"
	}
	for _, p := range []*int{&o.EtcdClientPort, &o.EtcdPeerPort, &o.APIServerPort} {
		if *p == 0 {
			port, err := freePort(o.Address)
			if err != nil {
				return err
			}
			*p = port
		}
	}
	return nil
}

// freePort asks the kernel for an unused port. Another process could take
// it before etcd binds; on a test machine that is rare and fails loudly.
func freePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func hostPort(addr string, port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }

func (cp *ControlPlane) startEtcd(o Options) error {
	client := "http://" + hostPort(o.Address, o.EtcdClientPort)
	peer := "http://" + hostPort(o.Address, o.EtcdPeerPort)
	args := []string{
		filepath.Join(o.BinDir, "etcd"),
		"--name=cairn", "--data-dir=" + filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=cairn=" + peer,
		// Tests and the lab keep nothing worth an fsync.
		"--unsafe-no-fsync", "--log-level=warn",
	}
	p, err := startProcess(cp.Dir, "etcd", o.Wrap, args, o.Detach)
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, p)
	return nil
}

func (cp *ControlPlane) startAPIServer(o Options) (token string, err error) {
	pki := filepath.Join(cp.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", pki, err)
	}
	saKey := filepath.Join(pki, "sa.key")
	saPub := filepath.Join(pki, "sa.pub")
	if err := writeServiceAccountKeys(saKey, saPub); err != nil {
		return "", err
	}
	token = randomHex(24)
	tokens := filepath.Join(pki, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return "", fmt.Errorf("write token file: %w", err)
	}
	cp.URL = "https://" + hostPort(o.Address, o.APIServerPort)
	args := []string{
		filepath.Join(o.BinDir, "kube-apiserver"),
		"--etcd-servers=http://" + hostPort(o.Address, o.EtcdClientPort),
		"--bind-address=" + o.Address, "--advertise-address=" + o.Address,
		"--secure-port=" + strconv.Itoa(o.APIServerPort),
		"--cert-dir=" + filepath.Join(cp.Dir, "certs"),
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		// No kubernetes Service endpoints: nothing here runs kube-proxy,
		// and the reconciler refuses a loopback advertise address.
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=" + ServiceClusterIPRange,
		"--enable-priority-and-fairness=false",
		"--v=0",
	}
	if o.Kubelets {
		// A lab node's hostname resolves nowhere; its InternalIP is on
		// the lab network the API server routes to.
		args = append(args, "--kubelet-preferred-address-types=InternalIP")
	}
	p, err := startProcess(cp.Dir, "kube-apiserver", o.Wrap, args, o.Detach)
	if err != nil {
		return "", err
	}
	cp.procs = append(cp.procs, p)
	return token, nil
}

func (cp *ControlPlane) waitReady(ctx context.Context, o Options) error {
	ctx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	// The server certificate is self-signed and written only once the
	// server runs, so readiness is probed without verification; the
	// client config below pins the certificate it then finds.
	httpc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // readiness probe only
	}}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, p := range cp.procs {
			if exited, err := p.exited(); exited {
				return fmt.Errorf("%s exited before the control plane was ready (%v); log tail:\n%s", p.name, err, p.logTail(30))
			}
		}
		resp, err := httpc.Get(cp.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s/readyz: %w; kube-apiserver log tail:\n%s", cp.URL, ctx.Err(), cp.procs[len(cp.procs)-1].logTail(30))
		case <-tick.C:
		}
	}
}

func (cp *ControlPlane) writeKubeconfig(token string) error {
	ca, err := os.ReadFile(filepath.Join(cp.Dir, "certs", "apiserver.crt"))
	if err != nil {
		return fmt.Errorf("read the API server's self-signed certificate: %w", err)
	}
	cp.Config = &rest.Config{
		Host:            cp.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		QPS:             1000,
		Burst:           2000,
	}
	cp.Kubeconfig = filepath.Join(cp.Dir, "kubeconfig")
	return WriteKubeconfig(cp.Kubeconfig, cp.Config)
}

// Stop ends the processes (SIGTERM, then SIGKILL after a grace period) and
// removes the directory if Start created it. Safe to call twice.
func (cp *ControlPlane) Stop() error {
	var errs []error
	for i := len(cp.procs) - 1; i >= 0; i-- {
		errs = append(errs, cp.procs[i].stop(10*time.Second))
	}
	cp.procs = nil
	if cp.ownDir {
		errs = append(errs, os.RemoveAll(cp.Dir))
		cp.ownDir = false
	}
	return errors.Join(errs...)
}

// LogTail returns the last lines of a component's log ("etcd" or
// "kube-apiserver"), for failure messages.
func (cp *ControlPlane) LogTail(name string, lines int) string {
	return tailFile(filepath.Join(cp.Dir, name+".log"), lines)
}

func writeServiceAccountKeys(keyPath, pubPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encode service-account public key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write service-account key: %w", err)
	}
	if err := os.WriteFile(pubPath, pubPEM, 0o600); err != nil {
		return fmt.Errorf("write service-account public key: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
