package netsetup

import "testing"

func TestChooseMTU(t *testing.T) {
	eth := func(name string, mtu int) Uplink { return Uplink{Name: name, MTU: mtu, Up: true, Global: true} }
	for _, tc := range []struct {
		name  string
		links []Uplink
		want  int
	}{
		{"no link", nil, 0},
		{"one uplink", []Uplink{eth("eth0", 9000)}, 9000},
		{"the smallest of several uplinks", []Uplink{eth("eth0", 9000), eth("bond0", 1500), eth("eth1", 9000)}, 1500},
		{"loopback is not an uplink", []Uplink{{Name: "lo", MTU: 65536, Up: true, Loopback: true, Global: true}, eth("eth0", 1450)}, 1450},
		{"pods' host veths are not uplinks", []Uplink{eth("crn0123456789a", 1400), eth("eth0", 9000)}, 9000},
		{"a link that is down is not", []Uplink{{Name: "eth1", MTU: 1280, Global: true}, eth("eth0", 1500)}, 1500},
		{"a link without a global address is not", []Uplink{{Name: "eth2", MTU: 1280, Up: true}, eth("eth0", 1500)}, 1500},
		{"only non-uplinks: the kernel's default", []Uplink{{Name: "lo", MTU: 65536, Up: true, Loopback: true}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ChooseMTU(tc.links); got != tc.want {
				t.Errorf("ChooseMTU = %d, want %d", got, tc.want)
			}
		})
	}
}
