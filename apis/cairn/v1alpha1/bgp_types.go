package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BGPConfiguration holds cluster-wide BGP settings in the object named
// "default". An object named "node.<node name>" overrides listenPort,
// logSeverityScreen and the announced service ranges for that node.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpconfig
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="ASN",type=integer,JSONPath=`.spec.asNumber`
// +kubebuilder:printcolumn:name="Mesh",type=boolean,JSONPath=`.spec.nodeToNodeMeshEnabled`
// +kubebuilder:printcolumn:name="Port",type=integer,JSONPath=`.spec.listenPort`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPConfigurationSpec `json:"spec"`
	// +optional
	Status BGPConfigurationStatus `json:"status,omitempty"`
}

// BGPConfigurationSpec is the cluster's BGP set-up.
type BGPConfigurationSpec struct {
	// ASNumber is the cluster's default AS; a node may override it with
	// the cairn.dev/as-number annotation.
	// +optional
	// +kubebuilder:default=64512
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	ASNumber int64 `json:"asNumber,omitempty"`

	// NodeToNodeMeshEnabled peers every node with every other (iBGP full
	// mesh). Turn it off when route reflectors are configured.
	// +optional
	// +kubebuilder:default=true
	NodeToNodeMeshEnabled *bool `json:"nodeToNodeMeshEnabled,omitempty"`

	// ListenPort is the TCP port the speaker listens on.
	// +optional
	// +kubebuilder:default=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	ListenPort int32 `json:"listenPort,omitempty"`

	// ServiceClusterIPs are announced as whole ranges by every node (the
	// routers spread over them with ECMP). A cluster IP inside them whose
	// Service has a Local traffic policy is also announced as a /32
	// (/128), only by the nodes with a ready endpoint of the Service.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	ServiceClusterIPs []ServiceIPBlock `json:"serviceClusterIPs,omitempty"`
	// ServiceExternalIPs: a Service's externalIPs inside these ranges are
	// announced, each as a /32 (/128), by every node, or with
	// externalTrafficPolicy Local only by the nodes with a ready endpoint.
	// The ranges themselves are not announced, nor is any externalIP
	// outside them.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	ServiceExternalIPs []ServiceIPBlock `json:"serviceExternalIPs,omitempty"`
	// ServiceLoadBalancerIPs: the same for the addresses of Services'
	// status.loadBalancer.ingress. A LoadBalancer IPPool adds nothing here:
	// list its cidr to have its addresses announced. The LoadBalancer IPAM
	// leader logs a warning for a pool outside these ranges and puts a
	// Warning Event (LoadBalancerIPNotAdvertised) on a Service given an
	// address that is not announced.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	ServiceLoadBalancerIPs []ServiceIPBlock `json:"serviceLoadBalancerIPs,omitempty"`

	// Communities names BGP communities for use in prefixAdvertisements.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Communities []Community `json:"communities,omitempty"`
	// PrefixAdvertisements attaches communities to announced prefixes.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	PrefixAdvertisements []PrefixAdvertisement `json:"prefixAdvertisements,omitempty"`

	// NodeMeshPassword is the TCP-MD5 password of node-to-node sessions.
	// +optional
	NodeMeshPassword *BGPPassword `json:"nodeMeshPassword,omitempty"`
	// NodeMeshHoldTime is the hold time of node-to-node sessions: a node
	// that stops answering loses its routes on the other nodes after it.
	// Unset means 90s; 0 disables keepalives.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || (duration(self) >= duration('3s') && duration(self) <= duration('65535s'))",message="nodeMeshHoldTime must be 0s or between 3s and 65535s"
	NodeMeshHoldTime *metav1.Duration `json:"nodeMeshHoldTime,omitempty"`
	// NodeMeshBFD runs BFD on node-to-node sessions, so a node whose link
	// fails loses its routes on the other nodes in under a second.
	// +optional
	NodeMeshBFD *BFD `json:"nodeMeshBFD,omitempty"`

	// GracefulRestart keeps routes while a peer's agent restarts (RFC 4724).
	// +optional
	GracefulRestart *GracefulRestart `json:"gracefulRestart,omitempty"`

	// MaxPrefixes is the default limit on the prefixes one peer may send
	// per address family: it applies to node-mesh sessions and to
	// BGPPeers without their own maxPrefixes. A peer that sends more is
	// shut down (Cease, maximum prefixes reached), its routes are dropped
	// at once, and the session is tried again after
	// maxPrefixRestartTime. Unset means 20000: twice the blocks of a
	// 5,000-node cluster (Kubernetes' largest) with two blocks per node,
	// the most a route reflector legitimately sends, while bounding what
	// a flooding peer costs the speaker (100,000 prefixes cost it about
	// 120 MiB).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxPrefixes *int32 `json:"maxPrefixes,omitempty"`

	// MaxPrefixRestartTime is how long a session shut for exceeding its
	// maximum prefixes stays down before it is tried again. Unset means
	// 2m. A change applies live, to the next shutdown.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="maxPrefixRestartTime must be between 1s and 24h"
	MaxPrefixRestartTime *metav1.Duration `json:"maxPrefixRestartTime,omitempty"`

	// LogSeverityScreen is the speaker's log level.
	// +optional
	// +kubebuilder:validation:Enum=Debug;Info;Warning;Error
	LogSeverityScreen string `json:"logSeverityScreen,omitempty"`
}

// ServiceIPBlock is a service address range to announce.
type ServiceIPBlock struct {
	// CIDR to announce.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be a CIDR such as 10.96.0.0/12"
	CIDR string `json:"cidr"`
}

// Community gives a BGP community a name.
type Community struct {
	// Name used in prefixAdvertisements.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Value is a standard community "aa:nn" or a large one "aa:nn:mm".
	// +kubebuilder:validation:Pattern=`^[0-9]+:[0-9]+(:[0-9]+)?$`
	Value string `json:"value"`
}

// PrefixAdvertisement attaches communities to a prefix Cairn announces.
type PrefixAdvertisement struct {
	// CIDR the communities apply to.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be a CIDR"
	CIDR string `json:"cidr"`
	// Communities are names from spec.communities or literal values.
	// +kubebuilder:validation:MaxItems=16
	Communities []string `json:"communities"`
}

// GracefulRestart holds RFC 4724 settings.
type GracefulRestart struct {
	// Enabled turns graceful restart on.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
	// RestartTime is how long peers keep our routes while we restart.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('4095s')",message="restartTime must be between 1s and 4095s"
	RestartTime *metav1.Duration `json:"restartTime,omitempty"`
}

// BFD is single-hop Bidirectional Forwarding Detection (RFC 5880, 5881)
// on a BGP session: both ends send a control packet every interval, and a
// session not heard from for interval times multiplier is torn down, its
// routes withdrawn at once (not kept as a restarting peer's). The peer must
// run BFD too (UDP 3784); until it answers, BFD changes nothing.
type BFD struct {
	// Enabled turns BFD on for the session.
	Enabled bool `json:"enabled"`
	// Interval is how often control packets are sent, and the least time
	// between those expected from the peer. Default 300ms.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('50ms') && duration(self) <= duration('10s')",message="interval must be between 50ms and 10s"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Multiplier is how many intervals may pass without a packet before
	// the session is declared down. Default 3.
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	Multiplier int32 `json:"multiplier,omitempty"`
}

// BGPConfigurationStatus is what Cairn observed of the configuration:
// Accepted (can the agents apply it as it is) and, on the default one,
// Ready and the node mesh's sessions as the nodes report them.
type BGPConfigurationStatus struct {
	CommonStatus `json:",inline"`
	// MeshSessions is how many node-to-node mesh sessions the nodes
	// report; MeshEstablished how many of them are Established.
	// +optional
	MeshSessions int32 `json:"meshSessions,omitempty"`
	// +optional
	MeshEstablished int32 `json:"meshEstablished,omitempty"`
	// SessionsDown are mesh sessions not Established, at most
	// MaxListedInStatus, by node then peer.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	SessionsDown []SessionDown `json:"sessionsDown,omitempty"`
	// LastError is the commonest reason of the mesh sessions that are
	// down; empty when all are Established.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// SessionDown is one session a node reports not Established.
type SessionDown struct {
	// Node that reports the session.
	Node string `json:"node"`
	// PeerIP of the session.
	PeerIP string `json:"peerIP"`
	// State of the session.
	State string `json:"state"`
	// Reason the session is down, when known; never the password.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Problem classifies the reason, when Cairn can tell.
	// +optional
	Problem SessionProblem `json:"problem,omitempty"`
}

// BGPConfigurationList is a list of BGPConfiguration.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type BGPConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPConfiguration `json:"items"`
}

// BGPPassword is a TCP-MD5 password kept in a Secret.
type BGPPassword struct {
	// SecretKeyRef names the Secret key holding the password.
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef"`
}

// Source address choices for a BGPPeer.
const (
	SourceAddressUseNodeIP = "UseNodeIP"
	SourceAddressNone      = "None"
)

// BGPPeer is a BGP session that the selected nodes open: to a router
// (peerIP) or to other nodes (peerSelector, for route reflectors).
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="PeerIP",type=string,JSONPath=`.spec.peerIP`
// +kubebuilder:printcolumn:name="ASN",type=integer,JSONPath=`.spec.asNumber`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="NodeSelector",type=string,JSONPath=`.spec.nodeSelector`
// +kubebuilder:printcolumn:name="PeerSelector",type=string,JSONPath=`.spec.peerSelector`,priority=1
// +kubebuilder:printcolumn:name="Established",type=integer,JSONPath=`.status.established`
// +kubebuilder:printcolumn:name="Sessions",type=integer,JSONPath=`.status.sessions`
// +kubebuilder:printcolumn:name="LastError",type=string,JSONPath=`.status.lastError`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPPeerSpec `json:"spec"`
	// +optional
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerSpec describes the session.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.node) && has(self.nodeSelector))",message="node and nodeSelector are mutually exclusive: name one node or select several",fieldPath=".nodeSelector"
// +kubebuilder:validation:XValidation:rule="has(self.peerIP) != has(self.peerSelector)",message="exactly one of peerIP (a router) and peerSelector (other nodes) must be set",fieldPath=".peerIP"
// +kubebuilder:validation:XValidation:rule="!has(self.peerIP) || has(self.asNumber)",message="asNumber is required with peerIP",fieldPath=".asNumber"
// +kubebuilder:validation:XValidation:rule="!(has(self.ebgpMultihop) && has(self.ttlSecurity))",message="ebgpMultihop and ttlSecurity are mutually exclusive",fieldPath=".ebgpMultihop"
type BGPPeerSpec struct {
	// Node is the one node that opens this session. Empty with an empty
	// nodeSelector means every node.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node,omitempty"`
	// NodeSelector selects the nodes that open this session, as a
	// Kubernetes label selector.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	NodeSelector string `json:"nodeSelector,omitempty"`

	// PeerIP is the router's address.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="peerIP must be an IPv4 or IPv6 address such as 10.0.0.1"
	PeerIP string `json:"peerIP,omitempty"`
	// Port of the peer.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// ASNumber is the peer's AS.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	ASNumber int64 `json:"asNumber,omitempty"`
	// PeerSelector selects other nodes to peer with (route reflector
	// topologies), as a Kubernetes label selector.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	PeerSelector string `json:"peerSelector,omitempty"`

	// Password is the TCP-MD5 password, from a Secret.
	// +optional
	Password *BGPPassword `json:"password,omitempty"`
	// SourceAddress: UseNodeIP binds the session to the node's address;
	// None lets the kernel choose.
	// +optional
	// +kubebuilder:default=UseNodeIP
	// +kubebuilder:validation:Enum=UseNodeIP;None
	SourceAddress string `json:"sourceAddress,omitempty"`
	// EBGPMultihop lets an eBGP session reach a peer this many hops away
	// (the TTL of its packets; 1, the default, is a directly connected
	// peer), for example a router's loopback. With it, keep
	// sourceAddress UseNodeIP so the peer sees the node's address.
	// Exclusive with ttlSecurity.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	EBGPMultihop int32 `json:"ebgpMultihop,omitempty"`
	// TTLSecurity enables GTSM (RFC 5082): the peer must be at most this
	// many hops away.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=254
	TTLSecurity int32 `json:"ttlSecurity,omitempty"`
	// HoldTime of the session; 0 disables keepalives.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || (duration(self) >= duration('3s') && duration(self) <= duration('65535s'))",message="holdTime must be 0s or between 3s and 65535s"
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`
	// KeepaliveTime of the session; defaults to a third of holdTime.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('21845s')",message="keepaliveTime must be between 1s and 21845s"
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`
	// BFD runs BFD on this session (single hop: a directly connected peer).
	// +optional
	BFD *BFD `json:"bfd,omitempty"`
	// KeepOriginalNextHop announces routes with their original next hop
	// instead of this node's address.
	// +optional
	KeepOriginalNextHop bool `json:"keepOriginalNextHop,omitempty"`
	// DualStackAddressFamily makes one session carry IPv4 and IPv6 unicast
	// whatever the family of peerIP (MP-BGP): the IPv6 blocks over an IPv4
	// session, say, with the node's IPv6 address as their next hop. Nodes
	// without an address of the other family report the peer as invalid.
	// Without it a session carries its own family only, and a dual-stack
	// node peers with a router's IPv6 address in a BGPPeer of its own.
	// +optional
	DualStackAddressFamily bool `json:"dualStackAddressFamily,omitempty"`
	// MaxPrefixes is the most prefixes the peer may send per address
	// family; beyond it the session is shut down, its routes dropped at
	// once, and tried again after the BGPConfiguration's
	// maxPrefixRestartTime. Unset: the BGPConfiguration's maxPrefixes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxPrefixes int32 `json:"maxPrefixes,omitempty"`
	// MaxRestartTime bounds how long routes from this peer are kept, stale,
	// after its session went down with graceful restart negotiated: this,
	// or the restart time the peer announced if that is shorter. Unset:
	// the peer's own restart time.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('4095s')",message="maxRestartTime must be between 1s and 4095s"
	MaxRestartTime *metav1.Duration `json:"maxRestartTime,omitempty"`
	// Filters are BGPFilter names, applied in this order on every
	// session of this peer: to the routes learned from it and to what the
	// node announces to it. A name with no BGPFilter, or with an invalid
	// one, makes those sessions refuse every prefix both ways until it is
	// fixed (the FiltersResolved condition says which). Editing a filter
	// or this list applies live, without resetting the session.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Filters []string `json:"filters,omitempty"`
}

// BGPPeerStatus is what the nodes report of the peering, gathered by one
// controller: which nodes peer, how many sessions are Established, and
// why the others are not.
type BGPPeerStatus struct {
	CommonStatus `json:",inline"`
	// Nodes is how many nodes report sessions of this peer; NodeNames
	// the first MaxListedInStatus of them, sorted.
	// +optional
	Nodes int32 `json:"nodes"`
	// +optional
	// +kubebuilder:validation:MaxItems=32
	NodeNames []string `json:"nodeNames,omitempty"`
	// Sessions is how many sessions the nodes report (one per node with
	// peerIP, one per node pair with peerSelector); Established how many
	// of them are Established.
	// +optional
	Sessions int32 `json:"sessions"`
	// +optional
	Established int32 `json:"established"`
	// SessionsDown are sessions not Established, at most
	// MaxListedInStatus, by node then peer.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	SessionsDown []SessionDown `json:"sessionsDown,omitempty"`
	// LastError is the commonest reason of the sessions that are down;
	// empty when all are Established. Never the password.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// BGPPeerList is a list of BGPPeer.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

// BGPFilter holds import and export rules that BGPPeers refer to.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:subresource:status
type BGPFilter struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPFilterSpec `json:"spec"`
	// +optional
	Status BGPFilterStatus `json:"status,omitempty"`
}

// BGPFilterSpec holds rules per direction and family. For each prefix
// the rules of its family are evaluated in order, the first that matches
// decides: Reject refuses the prefix, Accept ends the evaluation and
// leaves the prefix to Cairn's own rules; a prefix no rule matches goes
// on to the next filter the peer names, then to Cairn's own rules too.
// Filters only narrow: Accept never lets in a prefix Cairn would refuse
// anyway (outside the IP pools, a default route, another node's block
// from anyone but its owner) nor makes a node announce anything it does
// not own. Import rules apply to the routes learned from the peer; export
// rules to the node's own announcements (blocks, borrowed addresses,
// Service addresses), not to routes a route reflector reflects.
type BGPFilterSpec struct {
	// +optional
	// +kubebuilder:validation:MaxItems=256
	ExportV4 []BGPFilterRule `json:"exportV4,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=256
	ImportV4 []BGPFilterRule `json:"importV4,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=256
	ExportV6 []BGPFilterRule `json:"exportV6,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=256
	ImportV6 []BGPFilterRule `json:"importV6,omitempty"`
}

// BGPFilterRule matches prefixes and decides.
//
// +kubebuilder:validation:XValidation:rule="!has(self.matchOperator) || has(self.cidr)",message="matchOperator needs a cidr",fieldPath=".cidr"
type BGPFilterRule struct {
	// CIDR to compare prefixes with; without it the rule matches every
	// prefix of its list's family (within prefixLength).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be a CIDR"
	CIDR string `json:"cidr,omitempty"`
	// MatchOperator compares the prefix with cidr: Equal (the prefix is
	// cidr), NotEqual, In (inside cidr, cidr itself included), NotIn
	// (disjoint from cidr, or covering it). Unset with a cidr: In.
	// +optional
	// +kubebuilder:validation:Enum=Equal;NotEqual;In;NotIn
	MatchOperator string `json:"matchOperator,omitempty"`
	// PrefixLength bounds the length of the prefixes the rule matches,
	// inclusive, on top of cidr: min defaults to 0, max to 32 (IPv4) or
	// 128 (IPv6).
	// +optional
	PrefixLength *PrefixLengthRange `json:"prefixLength,omitempty"`
	// Action when the rule matches.
	// +kubebuilder:validation:Enum=Accept;Reject
	Action string `json:"action"`
}

// PrefixLengthRange bounds a prefix length.
type PrefixLengthRange struct {
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	Min *int32 `json:"min,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	Max *int32 `json:"max,omitempty"`
}

// BGPFilterStatus says whether the filter is valid and where it applies.
type BGPFilterStatus struct {
	CommonStatus `json:",inline"`
	// UsedBy are the BGPPeers whose filters name this one, the first
	// MaxListedInStatus of them, sorted; UsedByCount counts them all.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	UsedBy []string `json:"usedBy,omitempty"`
	// +optional
	UsedByCount int32 `json:"usedByCount"`
}

// BGPFilterList is a list of BGPFilter.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type BGPFilterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPFilter `json:"items"`
}
