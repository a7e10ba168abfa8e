package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
)

// Names of the controller processes, their pid files and logs.
const (
	procScheduler         = "kube-scheduler"
	procControllerManager = "kube-controller-manager"
)

// startControllers starts kube-scheduler and kube-controller-manager
// against the API server with the admin kubeconfig. Both serve their
// health endpoints on loopback only, have nothing to elect (one of each),
// and the controller manager signs nothing: it only needs the
// service-account key (token controller) and the API server's certificate
// to publish as kube-root-ca.crt, which every pod's token volume mounts.
func (cp *ControlPlane) startControllers(o Options) error {
	for _, name := range []string{procScheduler, procControllerManager} {
		if !executable(filepath.Join(o.BinDir, name)) {
			return fmt.Errorf("%s not found in %s: run `make controlplane` (internal/controlplane/build/build.sh)", name, o.BinDir)
		}
	}
	common := []string{
		"--kubeconfig=" + cp.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--v=0",
	}
	sched := append([]string{filepath.Join(o.BinDir, procScheduler)}, common...)
	p, err := startProcess(cp.Dir, procScheduler, o.Wrap, sched, o.Detach)
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, p)
	pki := filepath.Join(cp.Dir, "pki")
	rootCA := filepath.Join(cp.Dir, "certs", "apiserver.crt")
	if _, err := os.Stat(rootCA); err != nil {
		return fmt.Errorf("find the API server certificate for kube-controller-manager: %w", err)
	}
	cm := append([]string{filepath.Join(o.BinDir, procControllerManager)}, common...)
	cm = append(cm,
		"--service-account-private-key-file="+filepath.Join(pki, "sa.key"),
		"--root-ca-file="+rootCA,
		"--use-service-account-credentials=false",
		// Node routes and pod CIDRs are Cairn's business, not the
		// controller manager's.
		"--allocate-node-cidrs=false",
		"--configure-cloud-routes=false",
		// By default it creates /usr/libexec/kubernetes on the host.
		"--flex-volume-plugin-dir="+filepath.Join(cp.Dir, "volume-plugins"),
	)
	p, err = startProcess(cp.Dir, procControllerManager, o.Wrap, cm, o.Detach)
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, p)
	return nil
}
