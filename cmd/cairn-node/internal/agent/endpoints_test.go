package agent

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestEndpointStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := openEndpointStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := endpointRecord{ContainerID: "abc123", IfName: "eth0", HostIface: "crn0123456789a", Addresses: []netip.Prefix{netip.MustParsePrefix("10.244.0.5/32")}}
	if err := s.put(r); err != nil {
		t.Fatal(err)
	}
	if err := s.put(endpointRecord{ContainerID: "gone", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.remove("gone", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.remove("never-there", "eth0"); err != nil {
		t.Errorf("removing an unknown record must succeed: %v", err)
	}
	// A damaged file is set aside, not fatal.
	if err := os.WriteFile(filepath.Join(dir, "bad.eth0.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := openEndpointStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.all(); !reflect.DeepEqual(got, []endpointRecord{r}) {
		t.Errorf("after reopen: %+v, want only %+v", got, r)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.eth0.json.corrupt")); err != nil {
		t.Errorf("corrupt record not set aside: %v", err)
	}
}

func TestValidateAttachment(t *testing.T) {
	for _, tc := range []struct {
		id, ifname string
		ok         bool
	}{
		{"abc", "eth0", true},
		{"../../etc", "eth0", false},
		{"abc", "eth0/../x", false},
		{"", "eth0", false},
		{"abc", "", false},
		{"abc", "a-very-long-interface", false},
		{"abc", "..", false},
	} {
		if err := validateAttachment(tc.id, tc.ifname); (err == nil) != tc.ok {
			t.Errorf("validateAttachment(%q, %q) = %v, want ok=%v", tc.id, tc.ifname, err, tc.ok)
		}
	}
}
