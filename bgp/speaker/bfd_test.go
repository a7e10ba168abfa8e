package speaker

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"google.golang.org/protobuf/proto"
)

func TestBFDSettings(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.2")
	cases := []struct {
		name    string
		peer    Peer
		wantErr bool
		want    *api.BfdPeerConfig
	}{
		{name: "off", peer: Peer{}, want: nil},
		{name: "defaults: 300ms, 3", peer: Peer{BFD: BFD{Enabled: true}},
			want: &api.BfdPeerConfig{Enabled: true, DesiredMinimumTxInterval: 300000, RequiredMinimumReceive: 300000, DetectionMultiplier: 3}},
		{name: "200ms, 5", peer: Peer{BFD: BFD{Enabled: true, Interval: 200 * time.Millisecond, Multiplier: 5}},
			want: &api.BfdPeerConfig{Enabled: true, DesiredMinimumTxInterval: 200000, RequiredMinimumReceive: 200000, DetectionMultiplier: 5}},
		{name: "interval too short", peer: Peer{BFD: BFD{Enabled: true, Interval: 10 * time.Millisecond}}, wantErr: true},
		{name: "interval too long", peer: Peer{BFD: BFD{Enabled: true, Interval: time.Minute}}, wantErr: true},
		{name: "multiplier 1", peer: Peer{BFD: BFD{Enabled: true, Multiplier: 1}}, wantErr: true},
		{name: "multihop", peer: Peer{EBGPMultihop: 2, BFD: BFD{Enabled: true}}, wantErr: true},
		{name: "bad values ignored while off", peer: Peer{BFD: BFD{Interval: time.Hour, Multiplier: 1}}, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.peer
			p.Address, p.ASN = addr, 65000
			err := validatePeer(p, 64512)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("validate: %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if got := toAPIPeer(p, peerLocal{asn: 64512, routerID: rid}).Bfd; !proto.Equal(got, tc.want) {
				t.Errorf("GoBGP BFD config %v, want %v", got, tc.want)
			}
		})
	}
	if d := (BFD{Enabled: true, Interval: 200 * time.Millisecond}).DetectionTime(); d != 600*time.Millisecond {
		t.Errorf("detection time %v, want 600ms", d)
	}
}
