// Package ifacesettings owns the kernel settings of host veths and of the
// node: per host veth, strict reverse-path filtering, no proxy ARP and no
// IPv6 router advertisements; per node, IP forwarding (IPv6 only once an
// IPv6 pool serves the node, keeping RA-configured uplinks working). Settings are applied
// when a veth appears (again: a new index is a new interface) and read back
// on a resync, written only when they differ.
package ifacesettings

import (
	"errors"
	"fmt"
	"log/slog"
	"path"

	"github.com/cairn-net/cairn/felix/kernel"
	"golang.org/x/sys/unix"
)

// Setting is one sysctl under net/<family>/conf/<iface>/.
type Setting struct {
	Family string // "ipv4" or "ipv6"
	Name   string
	Value  string
}

// HostVethSettings are the settings of every host veth.
var HostVethSettings = []Setting{
	// Strict: a packet from the pod is dropped unless the route back to
	// its source goes out of this veth, so a pod cannot use another
	// source address.
	{"ipv4", "rp_filter", "1"},
	// Pods reach the gateway through a permanent neighbour entry, so the
	// host never needs to answer ARP for other addresses.
	{"ipv4", "proxy_arp", "0"},
	// The host side of a pod link is never configured by the pod.
	{"ipv6", "accept_ra", "0"},
}

func sysctlName(s Setting, iface string) string {
	return path.Join("net", s.Family, "conf", iface, s.Name)
}

// Manager reconciles host veth settings. Not safe for concurrent use.
type Manager struct {
	k          kernel.Kernel
	log        *slog.Logger
	ipv6       bool
	vethPrefix string

	// wantV6Fwd: an IPv6 pool serves this node; v6FwdDone: forwarding
	// is on.
	wantV6Fwd, v6FwdDone bool

	desired map[string]struct{}
	links   map[string]kernel.Link
	// applied maps an interface to the index its settings were written for.
	applied map[string]int
}

// New returns a Manager for the host veths named vethPrefix*. IPv6
// settings are skipped when the node has IPv6 disabled.
func New(k kernel.Kernel, vethPrefix string, log *slog.Logger) *Manager {
	_, err := k.ReadSysctl("net/ipv6/conf/all/forwarding")
	return &Manager{
		k: k, log: log, ipv6: err == nil, vethPrefix: vethPrefix,
		desired: map[string]struct{}{},
		links:   map[string]kernel.Link{},
		applied: map[string]int{},
	}
}

// Set makes iface a host veth to configure.
func (m *Manager) Set(iface string) { m.desired[iface] = struct{}{} }

// Remove forgets iface.
func (m *Manager) Remove(iface string) {
	delete(m.desired, iface)
	delete(m.applied, iface)
}

// OnLinkUpdate takes a link change.
func (m *Manager) OnLinkUpdate(u kernel.LinkUpdate) {
	if u.Deleted {
		if l, ok := m.links[u.Link.Name]; ok && l.Index == u.Link.Index {
			delete(m.links, u.Link.Name)
		}
		return
	}
	for name, l := range m.links {
		if l.Index == u.Link.Index && name != u.Link.Name {
			delete(m.links, name) // renamed
		}
	}
	m.links[u.Link.Name] = u.Link
}

// SetLinks replaces the link view after a full link listing.
func (m *Manager) SetLinks(links []kernel.Link) {
	clear(m.links)
	for _, l := range links {
		m.links[l.Name] = l
	}
}

// Ready reports whether iface's settings are in place.
func (m *Manager) Ready(iface string) bool {
	l, ok := m.links[iface]
	return ok && m.applied[iface] == l.Index
}

// Apply writes the settings of interfaces that appeared (or came back with
// a new index), and the node's IPv6 forwarding once it is wanted. With
// full set it reads every setting back and fixes drift.
func (m *Manager) Apply(full bool) error {
	var errs []error
	if err := m.applyIPv6Forwarding(full); err != nil {
		errs = append(errs, err)
	}
	for iface := range m.desired {
		l, ok := m.links[iface]
		if !ok {
			continue // waits for the interface; a link event brings it
		}
		if !full && m.applied[iface] == l.Index {
			continue
		}
		err := m.applyOne(iface, full)
		switch {
		case err == nil:
			m.applied[iface] = l.Index
		case errors.Is(err, unix.ENOENT):
			// The interface vanished under us: its event will follow.
			delete(m.applied, iface)
		default:
			delete(m.applied, iface)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// applyOne writes iface's settings. A new interface is written blind (that
// is the common case, on every pod start); a full pass reads each setting
// first and writes only drift.
func (m *Manager) applyOne(iface string, full bool) error {
	for _, s := range HostVethSettings {
		if s.Family == "ipv6" && !m.ipv6 {
			continue
		}
		name := sysctlName(s, iface)
		if full {
			if cur, err := m.k.ReadSysctl(name); err == nil && cur == s.Value {
				continue
			}
		}
		if err := m.k.WriteSysctl(name, s.Value); err != nil {
			return fmt.Errorf("configure host veth %s: %w", iface, err)
		}
		m.log.Debug("set host veth sysctl", "iface", iface, "sysctl", name, "value", s.Value)
	}
	return nil
}
