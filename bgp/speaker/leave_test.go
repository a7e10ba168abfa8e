package speaker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// TestStopLeavingSendsCease: a speaker with graceful restart stops. An
// agent restarting closes its sessions without a NOTIFICATION, so a peer
// that negotiated graceful restart keeps its routes for the restart time;
// a speaker leaving (SetLeaving: its Node is gone) sends a Cease, so the
// peer withdraws its routes at once (RFC 4724 section 4: the restart
// procedures apply to a session that ends without a NOTIFICATION).
// Loopback, no root.
func TestStopLeavingSendsCease(t *testing.T) {
	if testing.Short() {
		t.Skip("real BGP sessions over loopback; skipped with -short")
	}
	for _, tc := range []struct {
		name    string
		leaving bool
		want    string
	}{
		{"an agent restarting closes without a NOTIFICATION", false, ""},
		{"a node leaving the cluster closes with a Cease", true, "Cease"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freeLoopbackPort(t)
			a := startSpeaker(t, "A", "", helperConfig{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: 64512, ListenPort: port,
				ListenAddresses: []string{"127.0.0.1"}, GracefulRestart: &GROptions{Enabled: true}, InitialSyncTimeout: 5 * time.Second})
			a.SetFilter(t, "10.244.0.0/16")
			tor := netip.MustParseAddr("127.0.0.8")
			a.SetPeers(t, Peer{Name: "tor", Address: tor, ASN: 65001, Passive: true})
			a.SetAds(t, "10.244.1.0/26")
			p := dialRawOpen(t, tor, port, rawOpen{asn: 65001, holdTime: 90, grRestartTime: 120})
			// Without graceful restart negotiated the speaker would send a
			// Cease either way: the restart case shows it was.
			a.WaitEstablished(t, sessionTimeout)
			if tc.leaving {
				a.call(t, helperCmd{Op: "leave"})
			}
			a.Stop(t)
			got, err := p.notificationUntilClosed()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("the speaker's last word before closing: %q, want %q", got, tc.want)
			}
		})
	}
}

// notificationUntilClosed reads what the speaker sends until it closes the
// connection, and names the NOTIFICATION it sent last ("" for none).
func (p *rawPeer) notificationUntilClosed() (string, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(sessionTimeout))
	last := ""
	hdr := make([]byte, 19)
	for {
		if _, err := io.ReadFull(p.conn, hdr); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
				return last, nil
			}
			return last, fmt.Errorf("raw peer: the speaker did not close the session: %w", err)
		}
		body := make([]byte, int(binary.BigEndian.Uint16(hdr[16:]))-19)
		if _, err := io.ReadFull(p.conn, body); err != nil {
			return last, fmt.Errorf("raw peer: read a message body: %w", err)
		}
		if hdr[18] == bgp.BGP_MSG_NOTIFICATION && len(body) >= 2 {
			last = fmt.Sprintf("code %d subcode %d", body[0], body[1])
			if body[0] == bgp.BGP_ERROR_CEASE {
				last = "Cease"
			}
		}
	}
}
