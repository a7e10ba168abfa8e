package ifacesettings

import (
	"log/slog"
	"testing"

	"github.com/cairn-net/cairn/felix/kernel"
	"github.com/cairn-net/cairn/felix/kernel/fake"
)

// IPv6 forwarding is switched on only when an IPv6 pool serves the node,
// and uplinks configured by router advertisements keep accepting them.
func TestIPv6ForwardingWaitsForAnIPv6Pool(t *testing.T) {
	k := fake.New()
	links := map[string]string{ // link -> accept_ra before
		"eth0": "1", // RA-configured uplink
		"eth1": "0", // statically configured
		"lo":   "1",
		"crn1": "1", // a host veth felix has not configured yet
	}
	m := New(k, "crn", slog.New(slog.DiscardHandler))
	for name, ra := range links {
		idx := k.AddLink(name, true)
		k.SetSysctl("net/ipv6/conf/"+name+"/accept_ra", ra)
		m.OnLinkUpdate(kernel.LinkUpdate{Link: kernel.Link{Index: idx, Name: name, Up: true}})
	}
	k.SetSysctl("net/ipv6/conf/default/accept_ra", "1")
	k.SetSysctl("net/ipv6/conf/all/forwarding", "0")

	if _, err := CheckNode(k, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(true); err != nil {
		t.Fatal(err)
	}
	if v := k.Sysctl("net/ipv6/conf/all/forwarding"); v != "0" {
		t.Fatalf("IPv6 forwarding %q with no IPv6 pool, want untouched 0", v)
	}
	if v := k.Sysctl("net/ipv6/conf/eth0/accept_ra"); v != "1" {
		t.Fatalf("eth0 accept_ra %q with no IPv6 pool, want untouched 1", v)
	}

	m.SetIPv6Forwarding(true)
	if err := m.Apply(false); err != nil {
		t.Fatal(err)
	}
	if v := k.Sysctl("net/ipv6/conf/all/forwarding"); v != "1" || !m.IPv6Forwarding() {
		t.Fatalf("IPv6 forwarding %q once an IPv6 pool serves the node, want 1", v)
	}
	want := map[string]string{"eth0": "2", "eth1": "0", "lo": "2", "crn1": "1", "default": "1"}
	for name, ra := range want {
		if v := k.Sysctl("net/ipv6/conf/" + name + "/accept_ra"); v != ra {
			t.Errorf("%s accept_ra = %q, want %q", name, v, ra)
		}
	}
	// Wanted once, kept: a later pool set without IPv6 does not switch it
	// off, and a full pass puts it back if someone did.
	m.SetIPv6Forwarding(false)
	k.SetSysctl("net/ipv6/conf/all/forwarding", "0")
	if err := m.Apply(true); err != nil {
		t.Fatal(err)
	}
	if v := k.Sysctl("net/ipv6/conf/all/forwarding"); v != "1" {
		t.Fatalf("IPv6 forwarding %q after drift and a full pass, want 1", v)
	}
}
