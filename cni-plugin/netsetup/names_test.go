package netsetup

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestHostVethName(t *testing.T) {
	cases := []struct {
		name                         string
		ns, pod, containerID, ifName string
		want                         string
	}{
		// Expected values are sha1 computed outside Go (python hashlib).
		{"pod on eth0: key namespace.pod", "default", "nginx", "c1", "eth0", "crnc440f455693"},
		{"same pod, other sandbox: same name", "default", "nginx", "c2", "eth0", "crnc440f455693"},
		{"second interface adds ifname", "kube-system", "coredns-1", "c1", "net1", "crn82a6f6dfaa5"},
		{"outside Kubernetes: containerID/ifname", "", "", "abc123", "eth0", "crn6bdc4b0e1f3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := HostVethName(tc.ns, tc.pod, tc.containerID, tc.ifName)
			if got != tc.want {
				t.Errorf("HostVethName = %q, want %q", got, tc.want)
			}
			if len(got) > 15 || !IsHostVethName(got) {
				t.Errorf("%q is not a valid host veth name", got)
			}
		})
	}
}

func TestHostVethNameSeparatesAttachments(t *testing.T) {
	a := HostVethName("", "", "ab", "ceth0")
	b := HostVethName("", "", "abc", "eth0")
	if a == b {
		t.Errorf("containerID/ifname keys collide: %q", a)
	}
	if HostVethName("ns", "p", "c", "eth0") == HostVethName("ns", "p", "c", "eth1") {
		t.Error("two interfaces of one pod share a host veth name")
	}
}

func TestIsHostVethName(t *testing.T) {
	for name, want := range map[string]bool{
		"crnc440f455693":  true,
		"crnc440f45569":   false, // short
		"crnc440f4556933": false, // long
		"calc440f455693":  false, // Calico's, not ours
		"crnzz40f455693":  false, // not hex
		"eth0":            false,
	} {
		if got := IsHostVethName(name); got != want {
			t.Errorf("IsHostVethName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRandomMAC(t *testing.T) {
	seen := map[string]bool{}
	for range 64 {
		mac, err := RandomMAC(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if mac[0]&0x02 == 0 || mac[0]&0x01 != 0 {
			t.Fatalf("%s is not locally administered unicast", mac)
		}
		seen[mac.String()] = true
	}
	if len(seen) < 60 {
		t.Errorf("only %d distinct MACs in 64", len(seen))
	}
	if _, err := RandomMAC(bytes.NewReader([]byte{1, 2})); err == nil {
		t.Error("short random source accepted")
	}
	if m := HostMAC(); m[0]&0x02 == 0 || m[0]&0x01 != 0 {
		t.Errorf("HostMAC %s is not locally administered unicast", m)
	}
}
