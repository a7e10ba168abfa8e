package speaker

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// Defaults applied by New.
const (
	// DefaultRestartTime is the graceful-restart time when GROptions leaves
	// it zero (the common router default).
	DefaultRestartTime = 120 * time.Second
	// DefaultInitialSyncTimeout bounds the wait for End-of-RIB before the
	// first publication on Learned().
	DefaultInitialSyncTimeout = 30 * time.Second
	// DefaultMaxPrefixRestart is how long a session shut for exceeding its
	// maximum prefixes stays down (FRR's and BIRD's restart delays are of
	// this order: long enough not to churn, short enough to need no one).
	DefaultMaxPrefixRestart = 2 * time.Minute
	// maxRestartTime is the largest value of the 12-bit restart-time field.
	maxRestartTime = 4095 * time.Second
	// maxMD5KeyLen is TCP_MD5SIG_MAXKEYLEN on Linux.
	maxMD5KeyLen = 80
	// defaultHoldTime is GoBGP's hold time when a peer does not set one.
	defaultHoldTime = 90 * time.Second
	// connectRetry replaces GoBGP's 120s connect-retry default, which made a
	// peer that came up a moment after us wait two minutes for a session.
	connectRetry = 5 * time.Second
	// minConnectRetry is GoBGP's floor (minConnectRetryInterval).
	minConnectRetry = 2 * time.Second
)

// ErrInvalid is wrapped by every validation error, so callers can tell bad
// input from a failure to apply it.
var ErrInvalid = errors.New("invalid")

// validateOptions checks opts and fills defaults; it returns the options the
// speaker will use.
func validateOptions(opts Options) (Options, error) {
	if !opts.RouterID.Is4() {
		return opts, fmt.Errorf("%w router ID %q: GoBGP needs an IPv4 address", ErrInvalid, opts.RouterID)
	}
	for _, a := range opts.ListenAddresses {
		if _, err := netip.ParseAddr(a); err != nil {
			return opts, fmt.Errorf("%w listen address %q: %w", ErrInvalid, a, err)
		}
	}
	g, err := validateGlobal(opts.global(), opts.ListenAddresses)
	if err != nil {
		return opts, err
	}
	if opts.GracefulRestart != nil {
		gr := g.GracefulRestart
		opts.GracefulRestart = &gr
	}
	if opts.InitialSyncTimeout < 0 {
		return opts, fmt.Errorf("%w initial sync timeout %s", ErrInvalid, opts.InitialSyncTimeout)
	}
	if opts.MaxPrefixRestart < 0 {
		return opts, fmt.Errorf("%w max-prefix restart %s", ErrInvalid, opts.MaxPrefixRestart)
	}
	if opts.MaxPrefixRestart == 0 {
		opts.MaxPrefixRestart = DefaultMaxPrefixRestart
	}
	if opts.InitialSyncTimeout == 0 {
		opts.InitialSyncTimeout = DefaultInitialSyncTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if (opts.NextHop4.IsValid() && !opts.NextHop4.Unmap().Is4()) || (opts.NextHop6.IsValid() && !opts.NextHop6.Is6()) {
		return opts, fmt.Errorf("%w next hops %s, %s: want an IPv4 and an IPv6 address", ErrInvalid, opts.NextHop4, opts.NextHop6)
	}
	opts.NextHop4 = opts.NextHop4.Unmap()
	opts.ListenAddresses = append([]string(nil), opts.ListenAddresses...)
	return opts, nil
}

// global is the initial Global of opts.
func (opts Options) global() Global {
	g := Global{ASN: opts.ASN, ListenPort: opts.ListenPort, MaxPrefixRestart: opts.MaxPrefixRestart}
	if opts.GracefulRestart != nil {
		g.GracefulRestart = *opts.GracefulRestart
	}
	return g
}

// validateGlobal checks global settings and fills defaults (the restart
// time). listen are the fixed listen addresses.
func validateGlobal(g Global, listen []string) (Global, error) {
	if g.ASN == 0 {
		return g, fmt.Errorf("%w ASN 0", ErrInvalid)
	}
	if g.ListenPort < 0 || g.ListenPort > 65535 {
		return g, fmt.Errorf("%w listen port %d: want 0 (do not listen) to 65535", ErrInvalid, g.ListenPort)
	}
	if g.ListenPort == 0 && len(listen) > 0 {
		return g, fmt.Errorf("%w listen addresses %v given with listen port 0", ErrInvalid, listen)
	}
	if g.MaxPrefixRestart < 0 {
		return g, fmt.Errorf("%w max-prefix restart %s", ErrInvalid, g.MaxPrefixRestart)
	}
	gr := &g.GracefulRestart
	if gr.RestartTime == 0 {
		gr.RestartTime = DefaultRestartTime
	}
	if gr.RestartTime < time.Second || gr.RestartTime > maxRestartTime {
		return g, fmt.Errorf("%w graceful-restart time %s: want 1s to %s", ErrInvalid, gr.RestartTime, maxRestartTime)
	}
	return g, nil
}

// validatePeers checks every peer and indexes the valid ones by address. An
// invalid peer, or a second peer with an address already taken, is left out
// and reported; the others are kept, so one bad BGPPeer cannot take the
// whole mesh down. Errors name the peer, never its password.
func validatePeers(peers []Peer, localASN uint32) (map[netip.Addr]Peer, error) {
	out := make(map[netip.Addr]Peer, len(peers))
	var errs []error
	for _, p := range peers {
		p.Address = p.Address.Unmap()
		if p.SourceAddress.IsValid() {
			p.SourceAddress = p.SourceAddress.Unmap()
		}
		err := validatePeer(p, localASN)
		if err == nil {
			p.Filters, err = validateFilters(p.Filters)
			if err != nil {
				err = fmt.Errorf("%w filters: %w", ErrInvalid, err)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s (%s): %w", p.displayName(), p.Address, err))
			continue
		}
		if prev, dup := out[p.Address]; dup {
			errs = append(errs, fmt.Errorf("%w: peer %s has the address %s of peer %s", ErrInvalid, p.displayName(), p.Address, prev.displayName()))
			continue
		}
		out[p.Address] = p
	}
	return out, errors.Join(errs...)
}

// effectiveHoldTime is the hold time GoBGP will use.
func effectiveHoldTime(p Peer) time.Duration {
	if p.HoldTime == 0 {
		return defaultHoldTime
	}
	return p.HoldTime
}

func validatePeer(p Peer, localASN uint32) error {
	switch {
	case !p.Address.IsValid(), p.Address.IsUnspecified(), p.Address.IsMulticast():
		return fmt.Errorf("%w address", ErrInvalid)
	case p.Address.Zone() != "":
		return fmt.Errorf("%w address: zoned (link-local) peers are not supported", ErrInvalid)
	case p.ASN == 0:
		return fmt.Errorf("%w ASN 0", ErrInvalid)
	case len(p.Password) > maxMD5KeyLen:
		// The length is not secret; the key is, so it is not shown.
		return fmt.Errorf("%w password: %d bytes, TCP-MD5 allows at most %d", ErrInvalid, len(p.Password), maxMD5KeyLen)
	case p.TTLSecurity > 0 && p.Address.Is6():
		// GoBGP v4.8.0 sets the listener's hop limit through
		// extractFamilyFromAddress("[::]:179"), which reads IPv4, so its
		// SYN-ACKs leave with hop limit 64 and a GTSM peer drops them: the
		// session would sit in Active forever without saying why.
		return fmt.Errorf("%w: TTL security over IPv6 is not supported (GoBGP v4.8.0 cannot set the IPv6 listener's hop limit)", ErrInvalid)
	case p.TTLSecurity > 0 && p.EBGPMultihop > 0:
		return fmt.Errorf("%w: TTL security and eBGP multihop are mutually exclusive", ErrInvalid)
	case p.MaxRestartTime < 0:
		return fmt.Errorf("%w max restart time %s: negative", ErrInvalid, p.MaxRestartTime)
	case p.HoldTime < 0 || p.KeepaliveTime < 0:
		return fmt.Errorf("%w timers: negative", ErrInvalid)
	case p.ConnectRetry != 0 && (p.ConnectRetry < minConnectRetry || p.ConnectRetry%time.Second != 0):
		return fmt.Errorf("%w connect retry %s: whole seconds, at least %s", ErrInvalid, p.ConnectRetry, minConnectRetry)
	case p.HoldTime != 0 && (p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second):
		return fmt.Errorf("%w hold time %s: want 0 (default) or 3s to 65535s (RFC 4271)", ErrInvalid, p.HoldTime)
	case p.KeepaliveTime >= effectiveHoldTime(p):
		return fmt.Errorf("%w keepalive time %s: must be below the hold time %s", ErrInvalid, p.KeepaliveTime, effectiveHoldTime(p))
	case p.RouteReflectorClient && p.ASN != localASN:
		return fmt.Errorf("%w: route-reflector clients must be iBGP (AS %d), not AS %d", ErrInvalid, localASN, p.ASN)
	case p.RouteReflectorClusterID != "" && !p.RouteReflectorClient:
		return fmt.Errorf("%w: cluster ID without route-reflector client", ErrInvalid)
	case p.SourceAddress.IsValid() && p.SourceAddress.Is4() != p.Address.Is4():
		return fmt.Errorf("%w source address %s: not the peer's address family", ErrInvalid, p.SourceAddress)
	}
	if p.RouteReflectorClusterID != "" {
		id, err := netip.ParseAddr(p.RouteReflectorClusterID)
		if err != nil || !id.Is4() {
			return fmt.Errorf("%w cluster ID %q: want a dotted IPv4 address", ErrInvalid, p.RouteReflectorClusterID)
		}
	}
	return validateBFD(p)
}

// exportable reports why a prefix must never be announced, or nil. Only
// unicast space can be announced; a default route never is.
func exportable(p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !p.IsValid():
		return fmt.Errorf("%w prefix", ErrInvalid)
	case p.Bits() == 0:
		return fmt.Errorf("%w prefix %s: a default route is never exported", ErrInvalid, p)
	case a.Is4In6():
		return fmt.Errorf("%w prefix %s: IPv4-mapped IPv6", ErrInvalid, p)
	case a.Zone() != "":
		return fmt.Errorf("%w prefix %s: zoned", ErrInvalid, p)
	case a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsUnspecified():
		return fmt.Errorf("%w prefix %s: not global unicast space", ErrInvalid, p)
	}
	return nil
}

// validateAdvertisements checks and indexes the advertisements by their
// masked prefix. A bad entry (or a second one for a prefix) is left out and
// reported; the rest is kept, so an owned block is never withdrawn because an
// unrelated service range is wrong.
func validateAdvertisements(ads []Advertisement) (map[netip.Prefix]adAttrs, error) {
	out := make(map[netip.Prefix]adAttrs, len(ads))
	var errs []error
	for _, ad := range ads {
		if err := exportable(ad.Prefix); err != nil {
			errs = append(errs, err)
			continue
		}
		p := ad.Prefix.Masked()
		if _, dup := out[p]; dup {
			errs = append(errs, fmt.Errorf("%w: prefix %s advertised twice", ErrInvalid, p))
			continue
		}
		out[p] = adAttrs{communities: slices.Clone(ad.Communities), large: slices.Clone(ad.LargeCommunities)}
	}
	return out, errors.Join(errs...)
}

// nextHop is the configured next hop for advertisements of a's family,
// invalid when each session's local address is to be used.
func (o Options) nextHop(a netip.Addr) netip.Addr {
	if a.Is4() {
		return o.NextHop4
	}
	return o.NextHop6
}

// validateFamilies leaves out the peers that carry both families while the
// speaker has no next hop of the other one: its paths would go out with
// the session's address of the wrong family, which no peer installs.
func validateFamilies(peers map[netip.Addr]Peer, opts Options) error {
	var errs []error
	for a, p := range peers {
		if !p.BothFamilies {
			continue
		}
		other := netip.IPv6Unspecified()
		if a.Is6() {
			other = netip.IPv4Unspecified()
		}
		if !opts.nextHop(other).IsValid() {
			errs = append(errs, fmt.Errorf("%w: peer %s (%s) carries both address families, but this node has no address of the other one for the next hop", ErrInvalid, p.displayName(), a))
			delete(peers, a)
		}
	}
	return errors.Join(errs...)
}
