package lbipam

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestTable(t *testing.T) {
	tb := NewTable()
	if freed := tb.Set("ns/a", "u-a", addrs("192.0.2.1", "2001:db8::1")); len(freed) != 0 {
		t.Errorf("nothing held before, freed %v", freed)
	}
	tb.Set("ns/other", "u-o", addrs("192.0.2.1")) // another controller's Service carrying it too
	if !tb.TakenByOther("ns/b")(ip("192.0.2.1")) || !tb.TakenByOther("ns/a")(ip("192.0.2.1")) {
		t.Error("an address with two holders is taken for everyone")
	}
	if tb.TakenByOther("ns/a")(ip("2001:db8::1")) || !tb.TakenByOther("ns/b")(ip("2001:db8::1")) {
		t.Error("an address is not taken for its holder, and is for anyone else")
	}
	if freed := tb.Set("ns/a", "u-a", addrs("192.0.2.2")); !slices.Equal(freed, addrs("2001:db8::1")) {
		t.Errorf("freed %v, want only the address nobody else holds", freed)
	}
	if uid, held := tb.Held("ns/a"); uid != "u-a" || !slices.Equal(held, addrs("192.0.2.2")) {
		t.Errorf("held %v by %s", held, uid)
	}
	if freed := tb.Remove("ns/a"); !slices.Equal(freed, addrs("192.0.2.2")) {
		t.Errorf("remove freed %v", freed)
	}
	if uid, held := tb.Held("ns/a"); uid != "" || held != nil {
		t.Errorf("removed, still held %v by %q", held, uid)
	}
	if tb.Len() != 1 || !slices.Equal(tb.Holders(ip("192.0.2.1")), []string{"ns/other"}) {
		t.Errorf("len %d holders %v", tb.Len(), tb.Holders(ip("192.0.2.1")))
	}
}

// Rebuild keeps one holder of a duplicated address: another controller's
// Service first, then the oldest of Cairn's; a Service no longer of type
// LoadBalancer holds only LoadBalancer pool addresses, and only free ones.
func TestRebuild(t *testing.T) {
	all := analyze(ippool("lb", "192.0.2.0/24", true), ippool("pods", "10.244.0.0/16", false))
	services := []*corev1.Service{
		svc("young", 20, status("192.0.2.1", "192.0.2.7")),
		svc("old", 10, status("192.0.2.1")),
		svc("same-age-b", 30, status("192.0.2.2")),
		svc("same-age-a", 30, status("192.0.2.2")),
		svc("metal", 40, class("example.com/metal"), status("192.0.2.3", "192.0.2.4")),
		svc("newer-than-metal", 5, status("192.0.2.3")),
		svc("was-lb", 1, clusterIP, status("192.0.2.4", "192.0.2.5", "10.244.0.9")),
		svc("was-lb-too", 2, clusterIP, status("192.0.2.5")),
	}
	var views []Service
	for _, s := range services {
		views = append(views, View(s))
	}
	tb := Rebuild(views, all)
	for _, c := range []struct {
		key  string
		want []string
	}{
		{"default/old", []string{"192.0.2.1"}},
		{"default/young", []string{"192.0.2.7"}},
		{"default/same-age-a", []string{"192.0.2.2"}},
		{"default/same-age-b", nil},
		{"default/metal", []string{"192.0.2.3", "192.0.2.4"}},
		{"default/newer-than-metal", nil},
		{"default/was-lb", []string{"192.0.2.5"}},
		{"default/was-lb-too", nil},
	} {
		if _, held := tb.Held(c.key); !slices.Equal(held, addrs(c.want...)) {
			t.Errorf("%s holds %v, want %v", c.key, held, c.want)
		}
	}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }
