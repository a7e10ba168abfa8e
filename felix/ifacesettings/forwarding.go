package ifacesettings

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// IPv6 forwarding is switched on only once an IPv6 pool serves this node's
// pods. Turning it on host-wide has a side effect that bites hosts with
// IPv6 uplinks configured by router advertisements: with forwarding on,
// the kernel ignores accept_ra=1 and the uplink loses its RA-learned
// default route and addresses when they expire. accept_ra=2 keeps them, so
// every link that accepts RAs today is moved to 2 first.

// SetIPv6Forwarding states whether this node needs IPv6 forwarding (an
// IPv6 pool serves its pods). It is never switched off again: whatever
// then routes IPv6 through the node keeps working.
func (m *Manager) SetIPv6Forwarding(want bool) {
	m.wantV6Fwd = m.wantV6Fwd || want
}

// IPv6Forwarding reports whether IPv6 forwarding is wanted and in place.
func (m *Manager) IPv6Forwarding() bool { return m.v6FwdDone }

// applyIPv6Forwarding enables IPv6 forwarding once it is wanted, keeping
// router advertisements working on the links that accept them. A full
// pass checks again, in case someone switched it off.
func (m *Manager) applyIPv6Forwarding(full bool) error {
	if !m.wantV6Fwd || !m.ipv6 || (m.v6FwdDone && !full) {
		return nil
	}
	const fwd = "net/ipv6/conf/all/forwarding"
	if v, err := m.k.ReadSysctl(fwd); err == nil && v == "1" {
		m.v6FwdDone = true
		return nil
	}
	if err := m.keepRouterAdvertisements(); err != nil {
		return err
	}
	if err := m.k.WriteSysctl(fwd, "1"); err != nil {
		return fmt.Errorf("enable IPv6 forwarding: %w", err)
	}
	m.v6FwdDone = true
	m.log.Info("IPv6 forwarding enabled: an IPv6 pool serves this node's pods")
	return nil
}

// keepRouterAdvertisements moves every link other than Cairn's host veths
// from accept_ra=1 to 2, so it keeps accepting RAs once forwarding is on.
func (m *Manager) keepRouterAdvertisements() error {
	// "default" is left alone: new host veths inherit it, and one must
	// never accept RAs from its pod, even before felix configures it.
	names := make([]string, 0, len(m.links))
	for name := range m.links {
		if !strings.HasPrefix(name, m.vethPrefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		ra := path.Join("net/ipv6/conf", name, "accept_ra")
		v, err := m.k.ReadSysctl(ra)
		if errors.Is(err, unix.ENOENT) {
			continue // gone, or IPv6 disabled on that link
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if v != "1" {
			continue
		}
		if err := m.k.WriteSysctl(ra, "2"); err != nil {
			errs = append(errs, fmt.Errorf("keep router advertisements on %s: %w", name, err))
			continue
		}
		m.log.Info("link keeps accepting router advertisements with forwarding on", "iface", name, "accept_ra", "2")
	}
	return errors.Join(errs...)
}
