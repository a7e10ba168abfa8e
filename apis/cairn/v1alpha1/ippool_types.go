package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// IPPool is a range of addresses. A Workload pool (the default) holds pod
// addresses: Cairn cuts it into blocks of blockSize that nodes claim and
// announce over BGP. A LoadBalancer pool holds Service addresses: single
// addresses handed to Services of type LoadBalancer, never cut into blocks.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ipp
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=`.spec.cidr`
// +kubebuilder:printcolumn:name="BlockSize",type=integer,JSONPath=`.spec.blockSize`
// +kubebuilder:printcolumn:name="NATOutgoing",type=boolean,JSONPath=`.spec.natOutgoing`
// +kubebuilder:printcolumn:name="Disabled",type=boolean,JSONPath=`.spec.disabled`
// +kubebuilder:printcolumn:name="AllowedUses",type=string,JSONPath=`.spec.allowedUses`
// +kubebuilder:printcolumn:name="Allocated",type=integer,JSONPath=`.status.allocated`
// +kubebuilder:printcolumn:name="Capacity",type=integer,JSONPath=`.status.capacity`,priority=1
// +kubebuilder:printcolumn:name="NodeSelector",type=string,JSONPath=`.spec.nodeSelector`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPPoolSpec `json:"spec"`
	// +optional
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolSpec is what the operator asks of a pool.
//
// blockSize bounds depend on the address family of cidr, so they are
// checked here rather than on the field. Rules guard with isCIDR so a bad
// cidr reports one clear error instead of a CEL evaluation failure. A
// LoadBalancer pool is never cut into blocks: the defaulting policy gives
// it no blockSize, and one it carries anyway (set by hand, or by an older
// policy) is not held against a cidr smaller than a block.
//
// +kubebuilder:validation:XValidation:rule="!has(self.blockSize) || !isCIDR(self.cidr) || (cidr(self.cidr).ip().family() == 4 ? (self.blockSize >= 20 && self.blockSize <= 32) : (self.blockSize >= 116 && self.blockSize <= 128))",message="blockSize must be between 20 and 32 for an IPv4 pool and between 116 and 128 for an IPv6 pool",fieldPath=".blockSize",reason=FieldValueInvalid
// +kubebuilder:validation:XValidation:rule="!has(self.blockSize) || !isCIDR(self.cidr) || (has(self.allowedUses) && 'LoadBalancer' in self.allowedUses) || self.blockSize >= cidr(self.cidr).prefixLength()",message="blockSize must be at least the cidr's prefix length: a block cannot be larger than its pool",fieldPath=".blockSize",reason=FieldValueInvalid
type IPPoolSpec struct {
	// CIDR of the pool, for example 10.244.0.0/16 or fd00:10:244::/56.
	// Host bits must be zero. Immutable: to renumber, create a new pool
	// and disable this one.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be a CIDR such as 10.244.0.0/16 or fd00:10:244::/56"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",message="cidr has host bits set: use its network address"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="cidr is immutable: create a new pool and disable this one"
	CIDR string `json:"cidr"`

	// BlockSize is the prefix length of the blocks nodes claim: 20..32
	// for IPv4 (default 26), 116..128 for IPv6 (default 122).
	// Immutable once set.
	// +optional
	// +kubebuilder:validation:Minimum=20
	// +kubebuilder:validation:Maximum=128
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="blockSize is immutable"
	BlockSize int32 `json:"blockSize,omitempty"`

	// NATOutgoing masquerades traffic from this pool to destinations
	// outside every pool. Pod-to-pod traffic is never translated.
	// +optional
	// +kubebuilder:default=false
	NATOutgoing bool `json:"natOutgoing"`

	// Disabled pools keep their allocations but give no new addresses.
	// +optional
	// +kubebuilder:default=false
	Disabled bool `json:"disabled"`

	// NodeSelector selects the nodes that may take blocks from this pool,
	// as a Kubernetes label selector ("rack=r1,zone in (a,b)"). Empty
	// selects every node.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	NodeSelector string `json:"nodeSelector,omitempty"`

	// DisableBGPExport stops nodes announcing this pool's blocks to BGP
	// peers outside the cluster's own mesh.
	// +optional
	DisableBGPExport bool `json:"disableBGPExport,omitempty"`

	// AssignmentMode Automatic lets any pod take addresses from the pool;
	// Manual only pods that name the pool. In a LoadBalancer pool, Manual
	// gives only the addresses Services ask for by address.
	// +optional
	// +kubebuilder:default=Automatic
	// +kubebuilder:validation:Enum=Automatic;Manual
	AssignmentMode string `json:"assignmentMode,omitempty"`

	// AllowedUses says what the pool's addresses are for: Workload (pod
	// addresses, in node blocks) or LoadBalancer (Service LoadBalancer
	// addresses, one at a time, never in blocks; blockSize, nodeSelector
	// and natOutgoing do not apply; nodes announce its addresses only
	// inside BGPConfiguration serviceLoadBalancerIPs, which the pool does
	// not extend). A pool is one or the other: pods and
	// Services must never be handed the same address. Immutable, for the
	// same reason: create a new pool instead. Default [Workload].
	// +optional
	// +listType=set
	// +kubebuilder:default={Workload}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:XValidation:rule="!('LoadBalancer' in self) || size(self) == 1",message="LoadBalancer cannot be combined with another use: a pool's addresses go either to pods or to Services"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="allowedUses is immutable: create a new pool"
	AllowedUses []IPPoolUse `json:"allowedUses,omitempty"`
}

// IPPoolUse is one purpose of a pool's addresses.
//
// +kubebuilder:validation:Enum=Workload;LoadBalancer
type IPPoolUse string

// What a pool's addresses are for.
const (
	// IPPoolUseWorkload pools give pods their addresses.
	IPPoolUseWorkload IPPoolUse = "Workload"
	// IPPoolUseLoadBalancer pools give Services of type LoadBalancer their
	// ingress addresses.
	IPPoolUseLoadBalancer IPPoolUse = "LoadBalancer"
)

// IPPoolStatus is what Cairn observed about a pool.
type IPPoolStatus struct {
	CommonStatus `json:",inline"`
	// Blocks is the number of blocks claimed from this pool.
	// +optional
	Blocks int32 `json:"blocks,omitempty"`
	// Allocated is the number of addresses in use from this pool: pods'
	// addresses in its blocks, or, in a LoadBalancer pool, Services'
	// LoadBalancer addresses.
	// +optional
	Allocated int64 `json:"allocated,omitempty"`
	// Capacity is the number of addresses the pool can give, at most
	// 2^63-1 (an IPv6 pool can hold more): every address of a Workload
	// pool's cidr; a LoadBalancer pool's without its network (and, IPv4,
	// broadcast) address.
	// +optional
	Capacity int64 `json:"capacity,omitempty"`
}

// IPPoolList is a list of IPPool.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPPool `json:"items"`
}
