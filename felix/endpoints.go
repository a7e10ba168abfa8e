package felix

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/cairn-net/cairn/felix/routetable"
)

func validateEndpoint(ep Endpoint) error {
	name := ep.HostIface
	if !strings.HasPrefix(name, HostVethPrefix) || len(name) > maxIfaceName || strings.ContainsAny(name, "/ \x00") {
		return fmt.Errorf("%w: host interface %q must start with %q and be at most %d characters",
			ErrInvalidEndpoint, name, HostVethPrefix, maxIfaceName)
	}
	for _, a := range ep.Addrs {
		if !a.IsValid() || !a.IsSingleIP() || a.Addr().Is4In6() || a.Addr().Zone() != "" {
			return fmt.Errorf("%w: %s: address %s is not a /32 or /128", ErrInvalidEndpoint, name, a)
		}
	}
	return nil
}

// SetEndpoint records ep as a local endpoint, configures its host veth and
// returns once its host routes are in the kernel. A veth that does not
// exist yet is waited for (until ctx expires). It fails at once on an
// invalid endpoint, and when a route of another protocol holds one of its
// addresses (felix never replaces it); the endpoint then stays stated, and
// RemoveEndpoint rolls it back. Run must be running.
func (f *Felix) SetEndpoint(ctx context.Context, ep Endpoint) error {
	if err := validateEndpoint(ep); err != nil {
		return err
	}
	ep.Addrs = append([]netip.Prefix(nil), ep.Addrs...)
	w := &waiter{ctx: ctx, kind: waitEndpointUp, iface: ep.HostIface, prefixes: ep.Addrs, done: make(chan error, 1)}
	f.mu.Lock()
	f.endpoints[ep.HostIface] = ep
	f.pending = append(f.pending, func() {
		f.rt.SetEndpoint(ep.HostIface, ep.Addrs)
		f.ifs.Set(ep.HostIface)
	})
	f.newWait = append(f.newWait, w)
	f.mu.Unlock()
	f.wake()
	if err := w.wait(); err != nil {
		return fmt.Errorf("set endpoint %s: %w", ep.HostIface, err)
	}
	return nil
}

// RemoveEndpoint forgets the endpoint of hostIface stated by owner (see
// Endpoint.Owner) and returns once its host routes are gone from the
// kernel. Removing an unknown endpoint, or one that another owner has
// stated since, succeeds and changes nothing.
func (f *Felix) RemoveEndpoint(ctx context.Context, hostIface, owner string) error {
	f.mu.Lock()
	ep, ok := f.endpoints[hostIface]
	if !ok || ep.Owner != owner {
		f.mu.Unlock()
		if ok {
			f.log.Debug("not removing an endpoint stated by another owner", "iface", hostIface, "owner", ep.Owner, "removedBy", owner)
		}
		return nil
	}
	delete(f.endpoints, hostIface)
	w := &waiter{ctx: ctx, kind: waitEndpointGone, iface: hostIface, prefixes: ep.Addrs, done: make(chan error, 1)}
	f.pending = append(f.pending, func() {
		f.rt.RemoveEndpoint(hostIface)
		f.ifs.Remove(hostIface)
	})
	f.newWait = append(f.newWait, w)
	f.mu.Unlock()
	f.wake()
	if err := w.wait(); err != nil {
		return fmt.Errorf("remove endpoint %s: %w", hostIface, err)
	}
	return nil
}

// EndpointsInSync declares that every live endpoint has been stated with
// SetEndpoint since start. Until then felix deletes no host route it finds
// in the kernel (except those of endpoints removed with RemoveEndpoint), so
// that an agent restart never removes the routes of running pods.
func (f *Felix) EndpointsInSync() {
	f.mu.Lock()
	f.pending = append(f.pending, func() { f.rt.MarkSynced(routetable.Endpoint) })
	f.mu.Unlock()
	f.wake()
}
