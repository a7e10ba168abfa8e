package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Down removes everything a lab created: it stops the agents and routers
// (by pid and start time), stops etcd and kube-apiserver (pid files),
// deletes every namespace in the state (ending any process still inside),
// which takes every veth and bridge with it, and removes the state
// directory. Everything is recorded before it is created, so this holds
// after any failure. It keeps going past errors and reports them all.
// Running it again, or with no lab, does nothing. Labs of other instances,
// with their own state, are left alone (see Sweep).
func Down(ctx context.Context, dir string, logf func(string, ...any)) error {
	if dir == "" {
		dir = DefaultStateDir
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var errs []error
	st, err := loadState(dir)
	if err != nil && !errors.Is(err, ErrNoLab) {
		errs = append(errs, err)
	}
	if st != nil {
		unlock, err := lockDir(dir)
		if err != nil {
			return err
		}
		defer unlock()
		errs = append(errs, stopProcs(st.Procs, logf)...)
		// What real nodes' daemons leave: containers, shims.
		errs = append(errs, removeNodeCgroups(st.Cgroups, logf)...)
		if err := stopControlPlane(st); err != nil {
			errs = append(errs, err)
		} else if st.ControlPlane != nil {
			logf("stopped the control plane")
		}
	}
	var nss []string
	if st != nil {
		nss = reversed(st.Namespaces)
	}
	for _, ns := range nss {
		if err := delNS(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(nss) > 0 {
		logf("deleted %d namespaces", len(nss))
	}
	if st != nil {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove state directory: %w", err))
		} else {
			logf("removed %s", dir)
		}
	} else if err := removeIfOnlyLock(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stopProcs stops daemons newest first: agents before the routers they
// peer with, so routers do not log sessions failing one by one.
func stopProcs(procs []Proc, logf func(string, ...any)) []error {
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if !p.Alive() {
			continue
		}
		if err := p.stop(5 * time.Second); err != nil {
			errs = append(errs, err)
			continue
		}
		logf("stopped %s (pid %d)", p.Name, p.PID)
	}
	return errs
}

// reversed returns the namespaces newest first (pods, then nodes, then
// routers), without duplicates.
func reversed(nss []string) []string {
	seen := map[string]bool{}
	var out []string
	for i := len(nss) - 1; i >= 0; i-- {
		if !seen[nss[i]] {
			seen[nss[i]] = true
			out = append(out, nss[i])
		}
	}
	return out
}

// Sweep deletes every namespace named with NSPrefix, of any lab, ending
// the processes inside, and every real node's cgroup with what is in it:
// the last resort when a lab's state directory was lost.
func Sweep(ctx context.Context, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	names, err := labNamespaces(ctx)
	if err != nil {
		return err
	}
	sort.Strings(names)
	var errs []error
	cgroups, err := nodeCgroupsOnMachine()
	if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, removeNodeCgroups(cgroups, logf)...)
	for _, ns := range names {
		if err := delNS(ctx, ns); err != nil {
			errs = append(errs, err)
			continue
		}
		logf("deleted namespace %s", ns)
	}
	return errors.Join(errs...)
}

// removeIfOnlyLock removes a state directory that holds nothing but the
// lab's lock file (a lab that failed before writing its state); anything
// else in it is not ours to delete.
func removeIfOnlyLock(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state directory: %w", err)
	}
	for _, e := range entries {
		if e.Name() != lockFile {
			return nil
		}
	}
	if err := os.Remove(filepath.Join(dir, lockFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove lock file: %w", err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state directory: %w", err)
	}
	return nil
}
