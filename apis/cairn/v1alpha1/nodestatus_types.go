package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// CairnNodeStatus is written by the agent on each node, named after the
// node: its BGP sessions, the routes it announces and learns, its blocks
// and its last error.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cns
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="Established",type=integer,JSONPath=`.status.bgp.established`
// +kubebuilder:printcolumn:name="NotEstablished",type=integer,JSONPath=`.status.bgp.notEstablished`
// +kubebuilder:printcolumn:name="Updated",type=date,JSONPath=`.status.lastUpdated`
type CairnNodeStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CairnNodeStatusSpec `json:"spec"`
	// +optional
	Status CairnNodeStatusStatus `json:"status,omitempty"`
}

// CairnNodeStatusSpec names the node the status is about.
type CairnNodeStatusSpec struct {
	// Node whose agent writes this status.
	// +kubebuilder:validation:MinLength=1
	Node string `json:"node"`
}

// CairnNodeStatusStatus is the agent's report.
type CairnNodeStatusStatus struct {
	CommonStatus `json:",inline"`
	// AgentVersion of cairn-node.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`
	// LastUpdated is when the agent last wrote this status.
	// +optional
	LastUpdated *metav1.Time `json:"lastUpdated,omitempty"`
	// BGP sessions of the node.
	// +optional
	BGP NodeBGPStatus `json:"bgp,omitempty"`
	// Blocks the node owns and announces.
	// +optional
	Blocks []string `json:"blocks,omitempty"`
	// Routes the node announces and learns.
	// +optional
	Routes NodeRouteStatus `json:"routes,omitempty"`
	// LastError the agent met, empty when healthy.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// NodeBGPStatus summarises a node's sessions.
type NodeBGPStatus struct {
	// +optional
	Established int32 `json:"established"`
	// +optional
	NotEstablished int32 `json:"notEstablished"`
	// +optional
	Peers []BGPSessionStatus `json:"peers,omitempty"`
}

// BGPSessionStatus is one session as the node's speaker sees it.
type BGPSessionStatus struct {
	// PeerIP of the session.
	PeerIP string `json:"peerIP"`
	// Name of the session: mesh:<node> for the node mesh, peer:<BGPPeer>
	// for a router, peer:<BGPPeer>:<node> for a node a BGPPeer's
	// peerSelector picks.
	// +optional
	Name string `json:"name,omitempty"`
	// ASNumber of the peer.
	// +optional
	ASNumber int64 `json:"asNumber,omitempty"`
	// BGPPeer is the BGPPeer the session comes from; empty for the node
	// mesh, whose settings are the default BGPConfiguration's.
	// +optional
	BGPPeer string `json:"bgpPeer,omitempty"`
	// Type: NodeMesh, or BGPPeer (from a BGPPeer object).
	// +optional
	Type string `json:"type,omitempty"`
	// State as in RFC 4271: Idle, Connect, Active, OpenSent, OpenConfirm,
	// Established.
	State string `json:"state"`
	// Since is when the session entered State.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// Reason the session is down, if known.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Problem classifies why a session that is not Established is down,
	// when Cairn can tell; Events are raised on its transitions.
	// +optional
	Problem SessionProblem `json:"problem,omitempty"`
	// BFD is the state of the session's BFD (RFC 5880) as this node sees
	// it: Up, Down, Init or AdminDown; empty when the session runs none.
	// Until the peer answers, BFD is Down and changes nothing.
	// +optional
	// +kubebuilder:validation:Enum=Up;Down;Init;AdminDown
	BFD string `json:"bfd,omitempty"`
	// +optional
	PrefixesReceived int64 `json:"prefixesReceived,omitempty"`
	// +optional
	PrefixesAccepted int64 `json:"prefixesAccepted,omitempty"`
	// +optional
	PrefixesAdvertised int64 `json:"prefixesAdvertised,omitempty"`
}

// SessionProblem is a known cause of a session being down.
//
// +kubebuilder:validation:Enum=AuthFailure;MaxPrefixes
type SessionProblem string

const (
	// ProblemAuthFailure: the node's kernel drops the peer's TCP segments
	// for a wrong, missing or unexpected TCP-MD5 signature while the
	// session is down; the two sides' passwords differ.
	ProblemAuthFailure SessionProblem = "AuthFailure"
	// ProblemMaxPrefixes: the session was shut for sending more prefixes
	// than the BGPPeer's maxPrefixes.
	ProblemMaxPrefixes SessionProblem = "MaxPrefixes"
)

// NodeRouteStatus lists routes; Learned is capped (refused routes are
// listed first), LearnedCount and RefusedCount are not.
type NodeRouteStatus struct {
	// +optional
	Announced []string `json:"announced,omitempty"`
	// +optional
	Learned []LearnedRouteStatus `json:"learned,omitempty"`
	// +optional
	LearnedCount int32 `json:"learnedCount,omitempty"`
	// RefusedCount is how many learned routes the node does not install.
	// +optional
	RefusedCount int32 `json:"refusedCount,omitempty"`
}

// LearnedRouteState says what the node did with a learned route.
type LearnedRouteState string

const (
	// LearnedRouteInstalled: the dataplane took the route (and keeps it
	// in the kernel).
	LearnedRouteInstalled LearnedRouteState = "Installed"
	// LearnedRouteRefused: the dataplane does not install the route; the
	// reason says why (it would hide local state, or no next hop is
	// usable).
	LearnedRouteRefused LearnedRouteState = "Refused"
)

// LearnedRouteStatus is a prefix, its next hops, and whether the node
// installed it.
type LearnedRouteStatus struct {
	Prefix   string   `json:"prefix"`
	NextHops []string `json:"nextHops"`
	// State: Installed or Refused.
	// +optional
	// +kubebuilder:validation:Enum=Installed;Refused
	State LearnedRouteState `json:"state,omitempty"`
	// Reason a route is refused.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// CairnNodeStatusList is a list of CairnNodeStatus.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type CairnNodeStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CairnNodeStatus `json:"items"`
}
