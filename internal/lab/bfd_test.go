package lab

import (
	"net/netip"
	"testing"
)

// frrBFDPeers is FRR 8.4's `show bfd peers json` (fields trimmed) right
// after a BGP session came up: node1's first session (no source yet) and
// node2's second one, from the ToR's address.
const frrBFDPeers = `[
  {"multihop":false,"peer":"172.30.1.11","vrf":"default","id":542855573,"remote-id":0,"status":"up","uptime":2,"diagnostic":"ok","remote-diagnostic":"ok"},
  {"multihop":false,"peer":"172.30.1.12","local":"172.30.1.1","vrf":"default","interface":"br0","id":1122445929,"remote-id":1582434502,"status":"up","uptime":78,"diagnostic":"ok","remote-diagnostic":"ok"},
  {"multihop":false,"peer":"172.30.1.13","local":"172.30.1.1","vrf":"default","interface":"br0","id":7,"remote-id":0,"status":"down","downtime":5,"diagnostic":"control detection time expired","remote-diagnostic":"ok"}
]`

// birdBFDSessions is BIRD 2.0's `birdc show bfd sessions`.
const birdBFDSessions = `BIRD 2.0.12 ready.
bfd1:
IP address                Interface  State      Since         Interval  Timeout
172.30.1.11               node1      Up         04:03:05.123    0.200    0.600
172.30.1.12               node2      Down       04:03:01.001    1.000    0.000
`

func TestBFDUpFromTheRoutersAddress(t *testing.T) {
	frr, err := parseFRRBFD([]byte(frrBFDPeers))
	if err != nil {
		t.Fatal(err)
	}
	bird := parseBirdBFD(birdBFDSessions)
	tor := netip.MustParseAddr("172.30.1.1")
	peer := func(last byte) Peer {
		return Peer{Addr: netip.AddrFrom4([4]byte{172, 30, 1, last}), Local: tor, BFD: true}
	}
	for _, c := range []struct {
		name     string
		sessions []BFDSession
		peer     Peer
		want     bool
	}{
		// The session bgpd replaces once BGP is up: not settled.
		{"FRR, up without a source", frr, peer(11), false},
		{"FRR, up from the ToR's address", frr, peer(12), true},
		{"FRR, down", frr, peer(13), false},
		{"FRR, no session", frr, peer(14), false},
		// BIRD knows its source from the start and does not say it.
		{"BIRD, up", bird, peer(11), true},
		{"BIRD, down", bird, peer(12), false},
		{"BIRD, no session", bird, peer(13), false},
	} {
		if got := bfdUpFrom(c.sessions, c.peer); got != c.want {
			t.Errorf("%s: bfdUpFrom(%v, %s) = %v, want %v", c.name, c.sessions, c.peer.Addr, got, c.want)
		}
	}
	if len(frr) != 3 || frr[0].Local != netip.IPv4Unspecified() || frr[1].Local != tor || frr[2].State != "down" {
		t.Errorf("FRR sessions read as %+v", frr)
	}
	if len(bird) != 2 || bird[0].State != "up" || bird[1].State != "down" || bird[0].Local.IsValid() {
		t.Errorf("BIRD sessions read as %+v", bird)
	}
}

func TestParseFRRBFDRejectsGarbage(t *testing.T) {
	for _, in := range []string{`{`, `[{"peer":"not an address","status":"up"}]`} {
		if s, err := parseFRRBFD([]byte(in)); err == nil {
			t.Errorf("parseFRRBFD(%q) = %v, want an error", in, s)
		}
	}
}
