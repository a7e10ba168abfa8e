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

// TestStopLeavingWithdraws: a speaker with graceful restart stops. An
// agent restarting closes its sessions without a word, so a peer that
// negotiated graceful restart keeps its routes for the restart time
// (RFC 4724 section 4); a speaker leaving (SetLeaving: its Node is gone)
// first withdraws its routes by UPDATE and then closes with a Cease, so
// the peer drops them at once. The withdrawal is what the test requires:
// GoBGP's Cease on stop is not always delivered (the peer may see the
// connection reset instead, and take it for a restart). Loopback, no
// root.
func TestStopLeavingWithdraws(t *testing.T) {
	if testing.Short() {
		t.Skip("real BGP sessions over loopback; skipped with -short")
	}
	for _, tc := range []struct {
		name     string
		leaving  bool
		withdraw bool
	}{
		{"an agent restarting closes without a word", false, false},
		{"a node leaving the cluster withdraws its routes first", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tor := netip.MustParseAddr("127.0.0.8")
			a, port := startSpeakerForRawTor(t, tor)
			p := dialRawOpen(t, tor, port, rawOpen{asn: 65001, holdTime: 90, grRestartTime: 120})
			a.WaitEstablished(t, sessionTimeout)
			if tc.leaving {
				a.call(t, helperCmd{Op: "leave"})
			}
			a.Stop(t)
			w, err := p.lastWords()
			if err != nil {
				t.Fatal(err)
			}
			if w.withdrew != tc.withdraw {
				t.Errorf("withdrew before closing: %v, want %v (then %q)", w.withdrew, tc.withdraw, w.notification)
			}
			if !tc.leaving && w.notification != "" {
				// Without graceful restart negotiated the speaker would
				// send a Cease: silence shows it was.
				t.Errorf("a restarting speaker sent %q", w.notification)
			}
			t.Logf("withdrew %v, then NOTIFICATION %q", w.withdrew, w.notification)
		})
	}
}

// lastWords is what a raw peer heard until the speaker closed.
type lastWords struct {
	// withdrew: an UPDATE withdrew something.
	withdrew bool
	// notification names the NOTIFICATION sent last, "" for none.
	notification string
}

// lastWords reads what the speaker sends until it closes the connection.
func (p *rawPeer) lastWords() (lastWords, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(sessionTimeout))
	var w lastWords
	hdr := make([]byte, 19)
	for {
		if _, err := io.ReadFull(p.conn, hdr); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
				return w, nil
			}
			return w, fmt.Errorf("raw peer: the speaker did not close the session: %w", err)
		}
		body := make([]byte, int(binary.BigEndian.Uint16(hdr[16:]))-19)
		if _, err := io.ReadFull(p.conn, body); err != nil {
			return w, fmt.Errorf("raw peer: read a message body: %w", err)
		}
		switch {
		case hdr[18] == bgp.BGP_MSG_UPDATE && len(body) >= 2 && binary.BigEndian.Uint16(body) > 0:
			w.withdrew = true
		case hdr[18] == bgp.BGP_MSG_NOTIFICATION && len(body) >= 2:
			w.notification = fmt.Sprintf("code %d subcode %d", body[0], body[1])
			if body[0] == bgp.BGP_ERROR_CEASE {
				w.notification = "Cease"
			}
		}
	}
}
