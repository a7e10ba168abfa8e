package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// netnsDir is where `ip netns` keeps its namespace handles.
const netnsDir = "/run/netns"

// NSPath is the path of a named network namespace.
func NSPath(name string) string { return filepath.Join(netnsDir, name) }

// run runs a command and returns its stdout; the error carries stderr.
func run(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// ip runs the ip tool, optionally inside a namespace (-n).
func ip(ctx context.Context, netns string, args ...string) ([]byte, error) {
	argv := []string{"ip"}
	if netns != "" {
		argv = append(argv, "-n", netns)
	}
	return run(ctx, append(argv, args...)...)
}

// addNS creates a namespace with its loopback up.
func addNS(ctx context.Context, name string) error {
	if _, err := ip(ctx, "", "netns", "add", name); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	if _, err := ip(ctx, name, "link", "set", "lo", "up"); err != nil {
		return fmt.Errorf("bring up lo in %s: %w", name, err)
	}
	return nil
}

// labNamespaces lists existing namespaces carrying the lab's prefix.
func labNamespaces(ctx context.Context) ([]string, error) {
	out, err := ip(ctx, "", "netns", "list")
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], NSPrefix) {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// delNS ends every process still inside the namespace (all of them are the
// lab's: nothing else is ever started there), then deletes it. A namespace
// that is already gone is not an error.
func delNS(ctx context.Context, name string) error {
	if _, err := os.Stat(NSPath(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := killNSProcesses(ctx, name); err != nil {
		return err
	}
	if _, err := ip(ctx, "", "netns", "del", name); err != nil {
		if _, serr := os.Stat(NSPath(name)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// killNSProcesses sends SIGKILL to every pid `ip netns pids` lists for the
// namespace and waits until the list is empty.
func killNSProcesses(ctx context.Context, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := ip(ctx, "", "netns", "pids", name)
		if err != nil {
			return fmt.Errorf("list processes in %s: %w", name, err)
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in %s survive SIGKILL", pids, name)
		}
		for _, s := range pids {
			if pid, err := strconv.Atoi(s); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond) // a killed pid has no wait handle here: poll until it is gone
	}
}

// setSysctl writes a /proc/sys/net value inside a namespace: /proc/sys/net
// shows the namespace of the thread that opens it.
func setSysctl(netns, key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	err := ns.WithNetNSPath(NSPath(netns), func(ns.NetNS) error {
		return os.WriteFile(path, []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("set %s=%s in %s: %w", key, value, netns, err)
	}
	return nil
}

// buildLinks creates the plan's bridges, veth pairs, addresses and static
// routes. Each veth is created with both ends directly in their namespaces,
// so no interface ever appears in the root namespace.
func buildLinks(ctx context.Context, p Plan) error {
	for _, b := range p.Bridges {
		if _, err := ip(ctx, b.NS, "link", "add", b.Name, "type", "bridge"); err != nil {
			return fmt.Errorf("create bridge: %w", err)
		}
		if _, err := ip(ctx, b.NS, "addr", "add", b.Addr.String(), "dev", b.Name); err != nil {
			return fmt.Errorf("address bridge: %w", err)
		}
		if err := addIPv6(ctx, b.NS, b.Name, b.Addr6); err != nil {
			return err
		}
		if _, err := ip(ctx, b.NS, "link", "set", b.Name, "up"); err != nil {
			return fmt.Errorf("bring up bridge: %w", err)
		}
	}
	for _, l := range p.Links {
		if _, err := ip(ctx, l.A.NS, "link", "add", l.A.Name, "type", "veth", "peer", "name", l.B.Name, "netns", l.B.NS); err != nil {
			return fmt.Errorf("create link %s/%s-%s/%s: %w", l.A.NS, l.A.Name, l.B.NS, l.B.Name, err)
		}
		for _, e := range []End{l.A, l.B} {
			if err := configureEnd(ctx, e); err != nil {
				return err
			}
		}
	}
	for _, r := range p.Routes {
		if _, err := ip(ctx, r.NS, "route", "add", r.Dst.String(), "via", r.Via.String()); err != nil {
			return fmt.Errorf("add static route: %w", err)
		}
	}
	return nil
}

func configureEnd(ctx context.Context, e End) error {
	if e.Addr.IsValid() {
		if _, err := ip(ctx, e.NS, "addr", "add", e.Addr.String(), "dev", e.Name); err != nil {
			return fmt.Errorf("address %s/%s: %w", e.NS, e.Name, err)
		}
	}
	if err := addIPv6(ctx, e.NS, e.Name, e.Addr6); err != nil {
		return err
	}
	if e.Master != "" {
		if _, err := ip(ctx, e.NS, "link", "set", e.Name, "master", e.Master); err != nil {
			return fmt.Errorf("attach %s/%s to %s: %w", e.NS, e.Name, e.Master, err)
		}
	}
	if _, err := ip(ctx, e.NS, "link", "set", e.Name, "up"); err != nil {
		return fmt.Errorf("bring up %s/%s: %w", e.NS, e.Name, err)
	}
	return nil
}

// addIPv6 puts an IPv6 address (if valid) on an interface without
// duplicate address detection: the lab plans its addresses unique, and a
// tentative address could not be bound (a BGP listener) for a second or
// two after the link comes up.
func addIPv6(ctx context.Context, netns, dev string, addr netip.Prefix) error {
	if !addr.IsValid() {
		return nil
	}
	if _, err := ip(ctx, netns, "addr", "add", addr.String(), "dev", dev, "nodad"); err != nil {
		return fmt.Errorf("address %s/%s: %w", netns, dev, err)
	}
	return nil
}
