package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// frrDir holds the FRR daemons of the Debian frr package.
const frrDir = "/usr/lib/frr"

// frrDriver runs FRR's zebra and bgpd in the foreground with every path
// (config, pid, zebra socket, vty sockets) in the router's own directory,
// so several FRR instances never meet. The daemons run as the frr user the
// Debian package creates: FRR refuses a user outside its compile-time vty
// group (frrvty), and root is not in it.
type frrDriver struct{}

// frrUser is the account FRR's daemons drop to.
const frrUser = "frr"

// frrMaxPaths bounds ECMP: paths of equal merit installed together, one
// per node announcing a service range (Debian's FRR allows up to 64).
const frrMaxPaths = 64

func (frrDriver) configure(rp RouterPlan, dir string) ([]routerCommand, error) {
	if err := chownToFRR(dir); err != nil {
		return nil, err
	}
	zebraConf := filepath.Join(dir, "zebra.conf")
	bgpdConf := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(zebraConf, []byte(fmt.Sprintf("hostname %s\n", rp.Name)), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", zebraConf, err)
	}
	if err := os.WriteFile(bgpdConf, []byte(frrBGPConfig(rp)), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", bgpdConf, err)
	}
	cmds := []routerCommand{}
	common := func(daemon, conf string) []string {
		return []string{
			filepath.Join(frrDir, daemon),
			"-f", conf,
			"-i", filepath.Join(dir, daemon+".frr.pid"), // ours is <daemon>.pid
			"-z", filepath.Join(dir, "zserv.api"),
			"--vty_socket", dir,
			"-u", frrUser, "-g", frrUser,
			"-P", "0", // no TCP vty: the CLI goes through the socket
			"--log", "stdout",
		}
	}
	// Order matters under load. bgpd registers its BFD sessions with bfdd
	// through zebra; a registration sent while bgpd is not yet connected
	// to zebra is lost, and bgpd sends them all again only when zebra
	// relays bfdd's replay request, which bfdd makes once, when it
	// connects. Seen in CI: zebra slow to listen, bfdd connected before
	// bgpd, and the ToR never ran a BFD session. So zebra listens first,
	// bgpd is zebra's client next, and bfdd comes last: its replay
	// request then reaches bgpd.
	zserv := filepath.Join(dir, "zserv.api")
	cmds = append(cmds, routerCommand{name: "zebra", argv: common("zebra", zebraConf),
		ready: func(context.Context) (bool, error) { return unixListening(zserv) }})
	cmds = append(cmds, routerCommand{name: "bgpd", argv: common("bgpd", bgpdConf),
		ready: func(ctx context.Context) (bool, error) { return frrZebraHasClient(ctx, dir, "bgp") }})
	if frrUsesBFD(rp) {
		// bfdd's control socket goes beside the others (the default is
		// global).
		bfddConf := filepath.Join(dir, "bfdd.conf")
		if err := os.WriteFile(bfddConf, []byte(frrBFDConfig()), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", bfddConf, err)
		}
		cmds = append(cmds, routerCommand{name: "bfdd",
			argv: append(common("bfdd", bfddConf), "--bfdctl", filepath.Join(dir, "bfdd.sock"))})
	}
	return cmds, nil
}

// unixListening reports whether a server accepts connections on the unix
// socket at path.
func unixListening(path string) (bool, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", path, err)
	}
	c.Close()
	return true, nil
}

// frrZebraHasClient reports whether the daemon that calls itself proto
// ("bgp", "bfd") is connected to the zebra of the FRR in dir.
func frrZebraHasClient(ctx context.Context, dir, proto string) (bool, error) {
	out, err := run(ctx, "vtysh", "--vty_socket", dir, "-d", "zebra", "-c", "show zebra client summary")
	if err != nil {
		return false, err
	}
	return zebraListsClient(out, proto), nil
}

// zebraListsClient reads `show zebra client summary`: a table whose rows
// start with the client's protocol name.
func zebraListsClient(out []byte, proto string) bool {
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == proto {
			return true
		}
	}
	return false
}

// frrBFDProfile names the lab's BFD timers in bfdd.conf.
const frrBFDProfile = "lab"

func frrUsesBFD(rp RouterPlan) bool {
	for _, p := range rp.Peers {
		if p.BFD {
			return true
		}
	}
	return false
}

// frrBFDConfig is bfdd's configuration: the lab's timers as a profile
// that bgpd's BFD neighbours use.
func frrBFDConfig() string {
	ms := LabBFDInterval.Milliseconds()
	return fmt.Sprintf("bfd\n profile %s\n  transmit-interval %d\n  receive-interval %d\n  detect-multiplier %d\n !\n!\n",
		frrBFDProfile, ms, ms, LabBFDMultiplier)
}

func (frrDriver) cli(_ RouterPlan, dir string) []string {
	return []string{"vtysh", "--vty_socket", dir}
}

func (d frrDriver) ready(ctx context.Context, rp RouterPlan, dir string) error {
	_, err := run(ctx, append(d.cli(rp, dir), "-c", "show bgp summary json")...)
	return err
}

func (d frrDriver) sessions(ctx context.Context, rp RouterPlan, dir string) ([]Session, error) {
	var all []Session
	for _, fam := range frrFamilies(rp) {
		out, err := run(ctx, append(d.cli(rp, dir), "-c", "show bgp "+fam+" unicast summary json")...)
		if err != nil {
			return nil, fmt.Errorf("ask FRR on %s for its sessions: %w", rp.Name, err)
		}
		sessions, err := parseFRRSummary(out, rp, fam)
		if err != nil {
			return nil, err
		}
		all = append(all, sessions...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Addr.Less(all[j].Addr) })
	return all, nil
}

func (d frrDriver) routes(ctx context.Context, rp RouterPlan, dir string) ([]RouterRoute, error) {
	var all []RouterRoute
	for _, fam := range frrFamilies(rp) {
		out, err := run(ctx, append(d.cli(rp, dir), "-c", "show bgp "+fam+" unicast json")...)
		if err != nil {
			return nil, fmt.Errorf("ask FRR on %s for its routes: %w", rp.Name, err)
		}
		routes, err := parseFRRRoutes(out, rp)
		if err != nil {
			return nil, err
		}
		all = append(all, routes...)
	}
	sortRoutes(all)
	return all, nil
}

// frrBGPConfig renders bgpd's configuration. FRR enforces RFC 8212 on eBGP
// sessions (nothing is accepted or sent without a policy), so every
// neighbor gets explicit route-maps: pool prefixes and service addresses
// from nodes, pool prefixes to them; pool, service and lab link prefixes
// between routers. Several paths of equal merit (a service range announced
// by every node, from one AS or from racks of different ASes) are
// installed together as one ECMP route.
func frrBGPConfig(rp RouterPlan) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("! Generated by cairn-lab for %s (AS %d); regenerated by every `up`.", rp.Name, rp.AS)
	w("frr defaults traditional")
	w("hostname %s", rp.Name)
	w("!")
	w("ip prefix-list POOL seq 10 permit %s le 32", PoolCIDR)
	w("ip prefix-list LAB seq 10 permit %s le 32", LabCIDR)
	for i, p := range ServiceCIDRs() {
		w("ip prefix-list SERVICES seq %d permit %s le %d", 10*(i+1), p, p.Addr().BitLen())
	}
	w("!")
	w("ip prefix-list POOL-AGGREGATE seq 10 permit %s", PoolCIDR)
	w("route-map POOL-ONLY permit 10")
	w(" match ip address prefix-list POOL")
	w("route-map FROM-NODES permit 10")
	w(" match ip address prefix-list POOL")
	w("route-map FROM-NODES permit 20")
	w(" match ip address prefix-list SERVICES")
	w("route-map ROUTERS deny 5")
	w(" match ip address prefix-list POOL-AGGREGATE")
	w("route-map ROUTERS permit 10")
	w(" match ip address prefix-list POOL")
	w("route-map ROUTERS permit 20")
	w(" match ip address prefix-list LAB")
	w("route-map ROUTERS permit 30")
	w(" match ip address prefix-list SERVICES")
	w("route-map CONNECTED permit 10")
	w(" match ip address prefix-list LAB")
	if dualStack(rp) {
		b.WriteString(frrIPv6Policy())
	}
	w("!")
	w("router bgp %d", rp.AS)
	w(" bgp router-id %s", rp.RouterID)
	w(" no bgp default ipv4-unicast")
	w(" bgp bestpath as-path multipath-relax")
	w(" timers bgp 10 30")
	for _, p := range rp.Peers {
		w(" neighbor %s remote-as %d", p.Addr, p.AS)
		w(" neighbor %s description %s", p.Addr, p.Name)
		w(" neighbor %s update-source %s", p.Addr, p.Local)
		w(" neighbor %s timers connect 2", p.Addr)
		if p.BFD {
			w(" neighbor %s bfd profile %s", p.Addr, frrBFDProfile)
		}
		if p.Password != "" {
			w(" neighbor %s password %s", p.Addr, p.Password)
		}
	}
	w(" !")
	w(" address-family ipv4 unicast")
	if rp.ExportConnected {
		w("  redistribute connected route-map CONNECTED")
	}
	if rp.AnnouncePool {
		// Sent to the nodes only (ROUTERS denies it): see AnnouncePool.
		w("  aggregate-address %s", PoolCIDR)
	}
	w("  maximum-paths %d", frrMaxPaths)
	w("  maximum-paths ibgp %d", frrMaxPaths)
	frrFamilyNeighbours(w, rp.Peers, false) // IPv6 peers: in the IPv6 family below
	w(" exit-address-family")
	if dualStack(rp) {
		b.WriteString(frrIPv6Family(rp))
	}
	w("!")
	return b.String()
}

// chownToFRR gives the router directory to the frr user, which writes its
// pid files and sockets there; the state directory above is traversable.
func chownToFRR(dir string) error {
	if err := checkTraversable(filepath.Dir(dir)); err != nil {
		return err
	}
	u, err := user.Lookup(frrUser)
	if err != nil {
		return fmt.Errorf("find the %s user (Debian package frr): %w", frrUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("give %s to %s: %w", dir, frrUser, err)
	}
	return nil
}

// checkTraversable makes sure every directory from / down to dir lets
// others through, since FRR's daemons reach their files as the frr user.
func checkTraversable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("check %s: %w", d, err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("FRR runs as user %s and cannot reach %s: %s is mode %v; use a state directory under a traversable path", frrUser, dir, d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// frrSummary is the part of `show bgp ipv4 unicast summary json` we read.
type frrSummary struct {
	Peers map[string]struct {
		RemoteAS int64  `json:"remoteAs"`
		State    string `json:"state"`
		Desc     string `json:"desc"`
	} `json:"peers"`
}

// parseFRRSummary reads the summary of family ("ipv4" or "ipv6").
func parseFRRSummary(out []byte, rp RouterPlan, family string) ([]Session, error) {
	var s frrSummary
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("decode FRR summary of %s: %w", rp.Name, err)
	}
	var sessions []Session
	for addr, p := range s.Peers {
		a, _ := netip.ParseAddr(addr)
		sessions = append(sessions, Session{Peer: peerName(rp, a, p.Desc), Addr: a, AS: p.RemoteAS, State: p.State})
	}
	// Peers missing from the summary (no session at all yet) still show;
	// a summary is of one family, and shows only that family's peers.
	for _, p := range rp.Peers {
		if p.Addr.Is4() != (family == "ipv4") {
			continue
		}
		if _, ok := s.Peers[p.Addr.String()]; !ok {
			sessions = append(sessions, Session{Peer: p.Name, Addr: p.Addr, AS: p.AS, State: "Idle"})
		}
	}
	sort.Slice(sessions, func(i, j int) bool { return sessions[i].Addr.Less(sessions[j].Addr) })
	return sessions, nil
}

func peerName(rp RouterPlan, addr netip.Addr, fallback string) string {
	for _, p := range rp.Peers {
		if p.Addr == addr {
			return p.Name
		}
	}
	if fallback != "" {
		return fallback
	}
	return addr.String()
}

// frrRoutes is the part of `show bgp ipv4 unicast json` we read.
type frrRoutes struct {
	Routes map[string][]struct {
		Valid    bool   `json:"valid"`
		Bestpath bool   `json:"bestpath"`
		PeerID   string `json:"peerId"`
		Nexthops []struct {
			IP string `json:"ip"`
		} `json:"nexthops"`
	} `json:"routes"`
}

func parseFRRRoutes(out []byte, rp RouterPlan) ([]RouterRoute, error) {
	var r frrRoutes
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("decode FRR routes of %s: %w", rp.Name, err)
	}
	var routes []RouterRoute
	for prefix, paths := range r.Routes {
		pfx, err := netip.ParsePrefix(prefix)
		if err != nil {
			continue
		}
		for _, path := range paths {
			if !path.Valid {
				continue
			}
			from := ""
			if peer, err := netip.ParseAddr(path.PeerID); err == nil && !peer.IsUnspecified() {
				from = peerName(rp, peer, path.PeerID)
			}
			for _, nh := range path.Nexthops {
				a, err := netip.ParseAddr(nh.IP)
				if err != nil || a.IsUnspecified() || a.IsLinkLocalUnicast() {
					continue // an IPv6 path lists its link-local next hop too
				}
				routes = append(routes, RouterRoute{Prefix: pfx, NextHop: a, From: from, Best: path.Bestpath})
			}
		}
	}
	sortRoutes(routes)
	return routes, nil
}

func sortRoutes(rs []RouterRoute) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Prefix != rs[j].Prefix {
			return rs[i].Prefix.Addr().Less(rs[j].Prefix.Addr()) ||
				(rs[i].Prefix.Addr() == rs[j].Prefix.Addr() && rs[i].Prefix.Bits() < rs[j].Prefix.Bits())
		}
		return rs[i].NextHop.Less(rs[j].NextHop)
	})
}

// frrFamilyNeighbours writes, inside an address family, the lines of each
// peer of that family (IPv6 or IPv4): activate, reflection, route maps
// (the IPv6 maps carry a "6").
func frrFamilyNeighbours(w func(string, ...any), peers []Peer, v6 bool) {
	suffix := ""
	if v6 {
		suffix = "6"
	}
	for _, p := range peers {
		if p.Addr.Is6() != v6 {
			continue
		}
		w("  neighbor %s activate", p.Addr)
		in, out := "FROM-NODES"+suffix, "POOL-ONLY"+suffix
		if p.Kind == PeerRouter {
			in, out = "ROUTERS"+suffix, "ROUTERS"+suffix
		}
		if p.RRClient {
			// Without "force", next-hop-self only rewrites routes learned
			// over eBGP: reflected node routes keep their node.
			w("  neighbor %s route-reflector-client", p.Addr)
			w("  neighbor %s next-hop-self", p.Addr)
		}
		w("  neighbor %s route-map %s in", p.Addr, in)
		w("  neighbor %s route-map %s out", p.Addr, out)
	}
}
