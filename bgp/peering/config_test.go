package peering

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

func TestEffectiveConfigAndGlobal(t *testing.T) {
	off := false
	def := &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.BGPConfigurationSpec{
		ASNumber: 64600, ListenPort: 1790, LogSeverityScreen: "Info",
		ServiceClusterIPs:    []v1.ServiceIPBlock{{CIDR: "10.96.0.0/16"}},
		GracefulRestart:      &v1.GracefulRestart{RestartTime: &metav1.Duration{Duration: 30 * time.Second}},
		MaxPrefixRestartTime: &metav1.Duration{Duration: 20 * time.Second},
	}}
	node := &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "node.n1"}, Spec: v1.BGPConfigurationSpec{
		ASNumber: 1, ListenPort: 1791, LogSeverityScreen: "Debug", ServiceClusterIPs: []v1.ServiceIPBlock{},
		GracefulRestart: &v1.GracefulRestart{Enabled: &off}, MaxPrefixRestartTime: &metav1.Duration{Duration: 5 * time.Second},
	}}
	self := NodeInfo{Name: "n1", ASN: 65010}
	for _, tc := range []struct {
		name      string
		def, node *v1.BGPConfiguration
		port      uint16
		level     string
		services  int
		global    speaker.Global
	}{
		{name: "none", port: 179, global: speaker.Global{ASN: 65010, ListenPort: 179, GracefulRestart: speaker.GROptions{Enabled: true}}},
		{name: "default only", def: def, port: 1790, level: "Info", services: 1,
			global: speaker.Global{ASN: 65010, ListenPort: 1790, GracefulRestart: speaker.GROptions{Enabled: true, RestartTime: 30 * time.Second}, MaxPrefixRestart: 20 * time.Second}},
		// The node's AS number, graceful restart and max-prefix restart
		// time are not overridable: they stay the default's.
		{name: "node overrides port, level, services", def: def, node: node, port: 1791, level: "Debug", services: 0,
			global: speaker.Global{ASN: 65010, ListenPort: 1791, GracefulRestart: speaker.GROptions{Enabled: true, RestartTime: 30 * time.Second}, MaxPrefixRestart: 20 * time.Second}},
		{name: "node only", node: node, port: 1791, level: "Debug",
			global: speaker.Global{ASN: 65010, ListenPort: 1791, GracefulRestart: speaker.GROptions{Enabled: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eff := EffectiveConfig(tc.def, tc.node)
			if got := ListenPort(eff); got != tc.port {
				t.Errorf("port %d, want %d", got, tc.port)
			}
			if eff != nil && (eff.Spec.LogSeverityScreen != tc.level || len(eff.Spec.ServiceClusterIPs) != tc.services) {
				t.Errorf("effective %+v", eff.Spec)
			}
			if eff != nil && eff.Spec.ASNumber == 1 {
				t.Error("the node configuration's asNumber was taken")
			}
			if g := Global(self, eff); g != tc.global {
				t.Errorf("global %+v, want %+v", g, tc.global)
			}
		})
	}
	if def.Spec.ListenPort != 1790 || len(def.Spec.ServiceClusterIPs) != 1 {
		t.Error("EffectiveConfig changed the default it was given")
	}
}
