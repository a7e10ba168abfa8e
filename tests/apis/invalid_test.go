package apis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
)

// invalidCase is an object the API server must reject, and the parts its
// error message must contain: the field path and what is wrong.
type invalidCase struct {
	name   string
	create func(ctx context.Context, c versioned.Interface, name string) error
	want   []string
}

func pool(spec v1.IPPoolSpec) func(context.Context, versioned.Interface, string) error {
	return func(ctx context.Context, c versioned.Interface, name string) error {
		_, err := c.CairnV1alpha1().IPPools().Create(ctx, &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
		return err
	}
}

func peer(spec v1.BGPPeerSpec) func(context.Context, versioned.Interface, string) error {
	return func(ctx context.Context, c versioned.Interface, name string) error {
		_, err := c.CairnV1alpha1().BGPPeers().Create(ctx, &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
		return err
	}
}

func bgpConfig(spec v1.BGPConfigurationSpec) func(context.Context, versioned.Interface, string) error {
	return func(ctx context.Context, c versioned.Interface, name string) error {
		_, err := c.CairnV1alpha1().BGPConfigurations().Create(ctx, &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
		return err
	}
}

var invalidCases = []invalidCase{
	{"pool cidr not a cidr", pool(v1.IPPoolSpec{CIDR: "10.0.0.0/33"}), []string{"spec.cidr", "cidr must be a CIDR"}},
	{"pool cidr garbage", pool(v1.IPPoolSpec{CIDR: "pods"}), []string{"spec.cidr", "cidr must be a CIDR"}},
	{"pool cidr host bits", pool(v1.IPPoolSpec{CIDR: "10.0.0.1/16"}), []string{"spec.cidr", "host bits set"}},
	{"pool v6 cidr host bits", pool(v1.IPPoolSpec{CIDR: "fd00::1/64"}), []string{"spec.cidr", "host bits set"}},
	{"v4 blockSize too small", pool(v1.IPPoolSpec{CIDR: "10.0.0.0/8", BlockSize: 19}), []string{"spec.blockSize", "between 20 and 32"}},
	{"v4 blockSize too large", pool(v1.IPPoolSpec{CIDR: "10.0.0.0/8", BlockSize: 33}), []string{"spec.blockSize", "between 20 and 32"}},
	{"v6 blockSize too small", pool(v1.IPPoolSpec{CIDR: "fd00::/48", BlockSize: 115}), []string{"spec.blockSize", "between 116 and 128"}},
	{"v6 blockSize over 128", pool(v1.IPPoolSpec{CIDR: "fd00::/48", BlockSize: 129}), []string{"spec.blockSize", "less than or equal to 128"}},
	{"block larger than pool", pool(v1.IPPoolSpec{CIDR: "10.0.0.0/24", BlockSize: 22}), []string{"spec.blockSize", "cannot be larger than its pool"}},
	{"pool bad nat/assignment mode", pool(v1.IPPoolSpec{CIDR: "10.1.0.0/16", AssignmentMode: "Sometimes"}), []string{"spec.assignmentMode", "Unsupported value"}},
	{"pool for pods and Services", pool(v1.IPPoolSpec{CIDR: "10.1.0.0/16", AllowedUses: []v1.IPPoolUse{v1.IPPoolUseWorkload, v1.IPPoolUseLoadBalancer}}), []string{"spec.allowedUses", "LoadBalancer cannot be combined"}},
	{"pool unknown use", pool(v1.IPPoolSpec{CIDR: "10.1.0.0/16", AllowedUses: []v1.IPPoolUse{"Tunnel"}}), []string{"spec.allowedUses[0]", "Unsupported value"}},
	{"pool use twice", pool(v1.IPPoolSpec{CIDR: "10.1.0.0/16", AllowedUses: []v1.IPPoolUse{v1.IPPoolUseLoadBalancer, v1.IPPoolUseLoadBalancer}}), []string{"spec.allowedUses[1]", "Duplicate value"}},
	{"peerIP not an IP", peer(v1.BGPPeerSpec{PeerIP: "router-1", ASNumber: 65000}), []string{"spec.peerIP", "peerIP must be an IPv4 or IPv6 address"}},
	{"peerIP is a cidr", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1/32", ASNumber: 65000}), []string{"spec.peerIP", "peerIP must be an IPv4 or IPv6 address"}},
	{"peer AS zero", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 0}), []string{"spec.asNumber", "asNumber is required"}},
	{"peer AS too large", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 4294967296}), []string{"spec.asNumber", "less than or equal to 4294967295"}},
	{"peer AS negative", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: -1}), []string{"spec.asNumber", "greater than or equal to 1"}},
	{"peer node and nodeSelector", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, Node: "n1", NodeSelector: "rack=r1"}), []string{"spec.nodeSelector", "mutually exclusive"}},
	{"peer without peerIP or peerSelector", peer(v1.BGPPeerSpec{ASNumber: 65000}), []string{"spec.peerIP", "exactly one of peerIP"}},
	{"peer port out of range", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, Port: 70000}), []string{"spec.port", "less than or equal to 65535"}},
	{"peer holdTime 1s", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, HoldTime: &metav1.Duration{Duration: time.Second}}), []string{"spec.holdTime", "holdTime must be 0s or between 3s and 65535s"}},
	{"peer ttlSecurity 255", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, TTLSecurity: 255}), []string{"spec.ttlSecurity", "less than or equal to 254"}},
	{"peer BFD interval 10ms", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, BFD: &v1.BFD{Enabled: true, Interval: &metav1.Duration{Duration: 10 * time.Millisecond}}}), []string{"spec.bfd.interval", "interval must be between 50ms and 10s"}},
	{"peer BFD multiplier 1", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, BFD: &v1.BFD{Enabled: true, Multiplier: 1}}), []string{"spec.bfd.multiplier", "greater than or equal to 2"}},
	{"peer maxRestartTime 0s", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, MaxRestartTime: &metav1.Duration{}}), []string{"spec.maxRestartTime", "maxRestartTime must be between 1s and 4095s"}},
	{"peer maxRestartTime 2h", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, MaxRestartTime: &metav1.Duration{Duration: 2 * time.Hour}}), []string{"spec.maxRestartTime", "maxRestartTime must be between 1s and 4095s"}},
	{"peer maxPrefixes negative", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, MaxPrefixes: -5}), []string{"spec.maxPrefixes", "greater than or equal to 1"}},
	{"peer ebgpMultihop 256", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, EBGPMultihop: 256}), []string{"spec.ebgpMultihop", "less than or equal to 255"}},
	{"peer ebgpMultihop with ttlSecurity", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, EBGPMultihop: 2, TTLSecurity: 1}), []string{"spec.ebgpMultihop", "ebgpMultihop and ttlSecurity are mutually exclusive"}},
	{"peer sourceAddress unknown", peer(v1.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, SourceAddress: "Loopback"}), []string{"spec.sourceAddress", "Unsupported value"}},
	{"config maxPrefixes zero", bgpConfig(v1.BGPConfigurationSpec{MaxPrefixes: new(int32)}), []string{"spec.maxPrefixes", "greater than or equal to 1"}},
	{"config maxPrefixRestartTime 500ms", bgpConfig(v1.BGPConfigurationSpec{MaxPrefixRestartTime: &metav1.Duration{Duration: 500 * time.Millisecond}}), []string{"spec.maxPrefixRestartTime", "maxPrefixRestartTime must be between 1s and 24h"}},
	{"config maxPrefixRestartTime 25h", bgpConfig(v1.BGPConfigurationSpec{MaxPrefixRestartTime: &metav1.Duration{Duration: 25 * time.Hour}}), []string{"spec.maxPrefixRestartTime", "maxPrefixRestartTime must be between 1s and 24h"}},
	{"config mesh BFD multiplier 256", bgpConfig(v1.BGPConfigurationSpec{NodeMeshBFD: &v1.BFD{Enabled: true, Multiplier: 256}}), []string{"spec.nodeMeshBFD.multiplier", "less than or equal to 255"}},
	{"config mesh hold time 2s", bgpConfig(v1.BGPConfigurationSpec{NodeMeshHoldTime: &metav1.Duration{Duration: 2 * time.Second}}), []string{"spec.nodeMeshHoldTime", "nodeMeshHoldTime must be 0s or between 3s and 65535s"}},
	{"config AS too large", bgpConfig(v1.BGPConfigurationSpec{ASNumber: 4294967296}), []string{"spec.asNumber", "less than or equal to 4294967295"}},
	{"config listenPort negative", bgpConfig(v1.BGPConfigurationSpec{ListenPort: -1}), []string{"spec.listenPort", "greater than or equal to 1"}},
	{"config listenPort 65536", bgpConfig(v1.BGPConfigurationSpec{ListenPort: 65536}), []string{"spec.listenPort", "less than or equal to 65535"}},
	{"config service cidr", bgpConfig(v1.BGPConfigurationSpec{ServiceClusterIPs: []v1.ServiceIPBlock{{CIDR: "10.96.0.0"}}}), []string{"spec.serviceClusterIPs[0].cidr", "cidr must be a CIDR"}},
	{"config community", bgpConfig(v1.BGPConfigurationSpec{Communities: []v1.Community{{Name: "x", Value: "65000"}}}), []string{"spec.communities[0].value", "should match"}},
}

func testInvalid(t *testing.T, ctx context.Context, cs versioned.Interface) {
	if len(invalidCases) < 12 {
		t.Fatalf("only %d invalid cases", len(invalidCases))
	}
	for i, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.create(ctx, cs, fmt.Sprintf("invalid-%d", i))
			if err == nil {
				t.Fatalf("created; want the API server to reject it with %q", tc.want)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("error is not Invalid: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err.Error(), w)
				}
			}
		})
	}
}
