// Package speaker is Cairn's BGP speaker: it embeds GoBGP v4 as a library and
// hides it behind a small declarative interface (SetPeers, SetAdvertisements,
// SetImportFilter, a channel of learned paths, PeerStates).
//
// The package owns the BGP sessions, the routing policy that guards them and
// the choice of learned paths. It knows neither Kubernetes nor the kernel: the
// node agent turns CRDs into Peers and Advertisements, and turns Learned()
// into desired kernel routes.
//
// Safety rules (see the reference "BGP safety that network teams expect"):
//   - GoBGP's global import and export defaults are set to reject before any
//     peer exists; only explicit policy statements accept routes.
//   - Export: only locally originated paths (our Advertisements) are sent;
//     learned routes are never redistributed, except iBGP reflection of pool
//     prefixes to iBGP peers when this speaker has route-reflector clients.
//     A peer's export filter rules narrow both. A default route is never
//     exported.
//   - Import: only prefixes inside the import filter (the IP pools) are
//     accepted; a default route never is, whatever the filter says.
//   - Per peer: TCP-MD5 password, GTSM (TTL security), hold/keepalive timers,
//     max-prefix limit, graceful restart with End-of-RIB; forwarding state
//     is claimed after a restart only when the caller says it was kept.
//
// Concurrency: one goroutine (Run) owns the GoBGP server and makes every call
// into it. GoBGP's watch callbacks only translate events into a small inbox
// and wake that goroutine; they never block and never call GoBGP.
//
// One Speaker per process: GoBGP v4 keeps route-selection options in package
// variables (table.SelectionOptions, table.UseMultiplePaths) that StartBgp
// overwrites, so two running Speakers in one process share them (and race).
// Constructing several is harmless; tests run each Speaker in its own process.
// Several may run in one process when every one of them is started (wait on
// Started) before any is given a peer or an advertisement: StartBgp is then
// the only writer, it writes the same values for every Speaker (multipath
// on, default selection), and every read comes after every write. The scale
// simulation (internal/speakersim) runs a thousand that way.
package speaker
