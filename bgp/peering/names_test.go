package peering

import "testing"

func TestBGPPeerOf(t *testing.T) {
	for _, tc := range []struct{ session, want string }{
		{"peer:tor-r1", "tor-r1"},
		{"peer:rr:node2", "rr"},
		{"mesh:node2", ""},
		{"10.0.0.1", ""},
		{"peer:", ""},
	} {
		if got := BGPPeerOf(tc.session); got != tc.want {
			t.Errorf("BGPPeerOf(%q) = %q, want %q", tc.session, got, tc.want)
		}
	}
	if !IsMesh("mesh:node2") || IsMesh("peer:mesh") {
		t.Error("IsMesh")
	}
}
