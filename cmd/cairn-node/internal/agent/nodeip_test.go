package agent

import (
	"strings"
	"testing"
)

func TestParseNodeIPs(t *testing.T) {
	tests := []struct {
		in, v4, v6, err string
	}{
		{in: ""},
		{in: "172.30.1.11", v4: "172.30.1.11"},
		{in: "fd30:0:1::11", v6: "fd30:0:1::11"},
		{in: "172.30.1.11,fd30:0:1::11", v4: "172.30.1.11", v6: "fd30:0:1::11"},
		{in: "fd30:0:1::11, 172.30.1.11", v4: "172.30.1.11", v6: "fd30:0:1::11"},
		{in: "::ffff:172.30.1.11", v4: "172.30.1.11"},
		{in: "172.30.1.11,172.30.1.12", err: "two addresses of one family"},
		{in: "172.30.1.11,", err: `node IP ""`},
		{in: "node1", err: `node IP "node1"`},
	}
	for _, tc := range tests {
		v4, v6, err := ParseNodeIPs(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := str(v4.IsValid(), v4.String()); got != tc.v4 {
			t.Errorf("%q: IPv4 %q, want %q", tc.in, got, tc.v4)
		}
		if got := str(v6.IsValid(), v6.String()); got != tc.v6 {
			t.Errorf("%q: IPv6 %q, want %q", tc.in, got, tc.v6)
		}
	}
}

func str(ok bool, s string) string {
	if !ok {
		return ""
	}
	return s
}
