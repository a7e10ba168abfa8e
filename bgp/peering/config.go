package peering

import (
	"time"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

// DefaultListenPort is where a node accepts BGP sessions when no
// BGPConfiguration says otherwise.
const DefaultListenPort = 179

// DefaultConfigName is the cluster-wide BGPConfiguration.
const DefaultConfigName = "default"

// NodeConfigName is the name of the BGPConfiguration that overrides the
// default for one node.
func NodeConfigName(node string) string { return "node." + node }

// EffectiveConfig is the configuration one node runs with: the default
// (nil when there is none) with the fields a per-node BGPConfiguration
// (nil when there is none) may override replaced by its non-empty ones:
// listenPort, logSeverityScreen and the three service ranges. Everything
// else (AS number, mesh, communities, passwords, graceful restart) is
// cluster-wide and read from the default only. The result is a copy; nil
// only when both are nil.
func EffectiveConfig(def, node *v1.BGPConfiguration) *v1.BGPConfiguration {
	if def == nil && node == nil {
		return nil
	}
	out := &v1.BGPConfiguration{}
	if def != nil {
		out = def.DeepCopy()
	}
	if node == nil {
		return out
	}
	n := node.Spec
	if n.ListenPort != 0 {
		out.Spec.ListenPort = n.ListenPort
	}
	if n.LogSeverityScreen != "" {
		out.Spec.LogSeverityScreen = n.LogSeverityScreen
	}
	if n.ServiceClusterIPs != nil {
		out.Spec.ServiceClusterIPs = append([]v1.ServiceIPBlock(nil), n.ServiceClusterIPs...)
	}
	if n.ServiceExternalIPs != nil {
		out.Spec.ServiceExternalIPs = append([]v1.ServiceIPBlock(nil), n.ServiceExternalIPs...)
	}
	if n.ServiceLoadBalancerIPs != nil {
		out.Spec.ServiceLoadBalancerIPs = append([]v1.ServiceIPBlock(nil), n.ServiceLoadBalancerIPs...)
	}
	return out
}

// ListenPort is the port a node with this effective configuration (nil:
// none) accepts sessions on: other nodes dial it.
func ListenPort(cfg *v1.BGPConfiguration) uint16 {
	if cfg == nil || cfg.Spec.ListenPort < 1 || cfg.Spec.ListenPort > 65535 {
		return DefaultListenPort
	}
	return uint16(cfg.Spec.ListenPort)
}

// Global is the speaker's global settings for a node: its AS, its
// effective configuration's listen port, and graceful restart from the
// cluster's configuration (on, with the speaker's default restart time,
// unless it says otherwise).
func Global(self NodeInfo, cfg *v1.BGPConfiguration) speaker.Global {
	g := speaker.Global{ASN: self.ASN, ListenPort: int32(ListenPort(cfg)), GracefulRestart: speaker.GROptions{Enabled: true}}
	if cfg != nil && cfg.Spec.MaxPrefixRestartTime != nil {
		g.MaxPrefixRestart = max(cfg.Spec.MaxPrefixRestartTime.Duration, 0)
	}
	if cfg == nil || cfg.Spec.GracefulRestart == nil {
		return g
	}
	gr := cfg.Spec.GracefulRestart
	g.GracefulRestart.Enabled = gr.Enabled == nil || *gr.Enabled
	if gr.RestartTime != nil {
		g.GracefulRestart.RestartTime = max(gr.RestartTime.Duration, 0).Truncate(time.Second)
	}
	return g
}
