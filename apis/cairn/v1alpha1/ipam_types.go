package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// IPAMBlock is one block of a pool: its addresses and who holds each. The
// allocator writes it with compare-and-swap on resourceVersion; nobody else
// should.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=`.spec.cidr`
// +kubebuilder:printcolumn:name="Affinity",type=string,JSONPath=`.spec.affinity`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAMBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMBlockSpec `json:"spec"`
}

// IPAMBlockSpec is the allocator's record of one block.
type IPAMBlockSpec struct {
	// CIDR of the block.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be a CIDR"
	CIDR string `json:"cidr"`
	// Pool is the name of the IPPool the block was cut from.
	// +optional
	Pool string `json:"pool,omitempty"`
	// Affinity is "node:<name>" for the node that owns and announces the
	// block, empty when no node owns it.
	// +optional
	Affinity string `json:"affinity,omitempty"`
	// Sequence increases with every allocation in the block. An
	// allocation remembers the sequence it was made at, so a release that
	// names an older one fails instead of freeing a reused address.
	// +optional
	Sequence int64 `json:"sequence,omitempty"`
	// Allocations lists the addresses in use, by ordinal in the block.
	// +optional
	// +listType=map
	// +listMapKey=ordinal
	Allocations []BlockAllocation `json:"allocations,omitempty"`
	// Deleted marks a block being released, so no one allocates from it.
	// +optional
	Deleted bool `json:"deleted,omitempty"`
}

// BlockAllocation is one address in use within a block.
type BlockAllocation struct {
	// Ordinal is the address's offset from the block's first address.
	// +kubebuilder:validation:Minimum=0
	Ordinal int32 `json:"ordinal"`
	// Handle is the IPAMHandle that holds the address.
	Handle string `json:"handle"`
	// Sequence is the block's sequence when the address was handed out.
	Sequence int64 `json:"sequence"`
	// Node that asked for the address; differs from the block's affinity
	// when the address was borrowed.
	// +optional
	Node string `json:"node,omitempty"`
	// Namespace of the pod holding the address.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Pod holding the address.
	// +optional
	Pod string `json:"pod,omitempty"`
}

// IPAMBlockList is a list of IPAMBlock.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type IPAMBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAMBlock `json:"items"`
}

// Block affinity states: a claim is written pending, the block is created,
// then the claim is confirmed; releasing goes through pendingDeletion.
const (
	AffinityPending         = "pending"
	AffinityConfirmed       = "confirmed"
	AffinityPendingDeletion = "pendingDeletion"
)

// BlockAffinity records that a node claims a block. The two-phase state
// makes sure two nodes never both own one block.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=`.spec.cidr`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.spec.state`
type BlockAffinity struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BlockAffinitySpec `json:"spec"`
}

// BlockAffinitySpec is one node's claim on one block.
type BlockAffinitySpec struct {
	// Node claiming the block.
	// +kubebuilder:validation:MinLength=1
	Node string `json:"node"`
	// CIDR of the block.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be a CIDR"
	CIDR string `json:"cidr"`
	// State of the claim.
	// +kubebuilder:validation:Enum=pending;confirmed;pendingDeletion
	State string `json:"state"`
}

// BlockAffinityList is a list of BlockAffinity.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type BlockAffinityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BlockAffinity `json:"items"`
}

// IPAMHandle groups the addresses held by one owner (a pod's interface),
// so they are released together and release is idempotent.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Handle",type=string,JSONPath=`.spec.handleID`
// +kubebuilder:printcolumn:name="Pod",type=string,JSONPath=`.spec.pod`,priority=1
type IPAMHandle struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMHandleSpec `json:"spec"`
}

// IPAMHandleSpec is one owner's holding.
type IPAMHandleSpec struct {
	// HandleID is built from the container ID and interface name.
	// +kubebuilder:validation:MinLength=1
	HandleID string `json:"handleID"`
	// Blocks maps a block cidr to the number of addresses held in it.
	// +optional
	Blocks map[string]int32 `json:"blocks,omitempty"`
	// ContainerID of the owner.
	// +optional
	ContainerID string `json:"containerID,omitempty"`
	// Interface of the owner inside its pod.
	// +optional
	Interface string `json:"interface,omitempty"`
	// Node the owner runs on.
	// +optional
	Node string `json:"node,omitempty"`
	// Namespace of the owning pod.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Pod that owns the handle.
	// +optional
	Pod string `json:"pod,omitempty"`
	// PodUID is the UID of the owning pod. A pod of the same namespace and
	// name with another UID is a later pod, not the owner: garbage
	// collection releases the handle's addresses. Empty on handles written
	// before it existed and outside Kubernetes.
	// +optional
	PodUID string `json:"podUID,omitempty"`
}

// IPAMHandleList is a list of IPAMHandle.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type IPAMHandleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAMHandle `json:"items"`
}
