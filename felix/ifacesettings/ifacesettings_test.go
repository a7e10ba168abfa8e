package ifacesettings

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/cairn-net/cairn/felix/kernel"
	"github.com/cairn-net/cairn/felix/kernel/fake"
	"golang.org/x/sys/unix"
)

func TestManager(t *testing.T) {
	k := fake.New()
	m := New(k, "crn", slog.New(slog.DiscardHandler))
	m.Set("crn1")
	if err := m.Apply(false); err != nil || m.Ready("crn1") {
		t.Fatalf("missing link: err %v ready %v", err, m.Ready("crn1"))
	}
	idx := k.AddLink("crn1", true)
	m.OnLinkUpdate(kernel.LinkUpdate{Link: kernel.Link{Index: idx, Name: "crn1", Up: true}})
	k.SetSysctl("net/ipv4/conf/crn1/proxy_arp", "1")
	if err := m.Apply(false); err != nil || !m.Ready("crn1") {
		t.Fatalf("err %v ready %v", err, m.Ready("crn1"))
	}
	for _, s := range HostVethSettings {
		if v, _ := k.ReadSysctl(sysctlName(s, "crn1")); v != s.Value {
			t.Errorf("%s = %q, want %q", sysctlName(s, "crn1"), v, s.Value)
		}
	}
	// Drift is repaired by a full pass only.
	k.SetSysctl("net/ipv4/conf/crn1/rp_filter", "0")
	_ = m.Apply(false)
	if v, _ := k.ReadSysctl("net/ipv4/conf/crn1/rp_filter"); v != "0" {
		t.Fatal("incremental pass rewrote settings")
	}
	_ = m.Apply(true)
	if v, _ := k.ReadSysctl("net/ipv4/conf/crn1/rp_filter"); v != "1" {
		t.Fatal("full pass did not repair rp_filter")
	}
	// A new interface under the same name is configured again.
	k.DelLink("crn1")
	m.OnLinkUpdate(kernel.LinkUpdate{Link: kernel.Link{Index: idx, Name: "crn1"}, Deleted: true})
	idx2 := k.AddLink("crn1", true)
	m.OnLinkUpdate(kernel.LinkUpdate{Link: kernel.Link{Index: idx2, Name: "crn1", Up: true}})
	if m.Ready("crn1") {
		t.Fatal("ready for a new interface before configuring it")
	}
	k.FailNext(fake.WriteSysctl, unix.EPERM)
	k.SetSysctl("net/ipv4/conf/crn1/rp_filter", "0")
	if err := m.Apply(false); !errors.Is(err, unix.EPERM) || m.Ready("crn1") {
		t.Fatalf("write failure: err %v ready %v", err, m.Ready("crn1"))
	}
	if err := m.Apply(false); err != nil || !m.Ready("crn1") {
		t.Fatalf("retry: err %v ready %v", err, m.Ready("crn1"))
	}
	// Gone before it could be configured: waits quietly.
	m.Set("crn2")
	m.OnLinkUpdate(kernel.LinkUpdate{Link: kernel.Link{Index: 99, Name: "crn2", Up: true}})
	if err := m.Apply(false); err != nil || m.Ready("crn2") {
		t.Fatalf("vanished interface: err %v ready %v", err, m.Ready("crn2"))
	}
}

func TestCheckNode(t *testing.T) {
	tests := []struct {
		name     string
		preset   map[string]string
		fail     error
		warnings int
		unfit    bool
	}{
		{"clean", nil, nil, 0, false},
		{"loose rp_filter and proxy arp", map[string]string{"net/ipv4/conf/all/rp_filter": "2", "net/ipv4/conf/all/proxy_arp": "1"}, nil, 2, false},
		{"ipv6 disabled", map[string]string{"net/ipv6/conf/all/disable_ipv6": "1"}, nil, 1, false},
		{"forwarding cannot be enabled", nil, unix.EROFS, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := fake.New()
			for n, v := range tc.preset {
				k.SetSysctl(n, v)
			}
			if tc.fail != nil {
				k.FailNext(fake.WriteSysctl, tc.fail)
			}
			rep, err := CheckNode(k, slog.New(slog.DiscardHandler))
			if errors.Is(err, ErrNodeUnfit) != tc.unfit {
				t.Fatalf("err %v", err)
			}
			if len(rep.Warnings) != tc.warnings {
				t.Fatalf("warnings %q", rep.Warnings)
			}
			if !tc.unfit && k.Sysctl("net/ipv4/ip_forward") != "1" {
				t.Fatal("IPv4 forwarding not enabled")
			}
			if k.Sysctl("net/ipv6/conf/all/forwarding") == "1" {
				t.Fatal("IPv6 forwarding enabled without an IPv6 pool")
			}
		})
	}
}
