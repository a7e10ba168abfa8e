package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// SecretKeyRef names one key of a Secret in the namespace the Cairn agent
// runs in. Cairn reads the value; it never copies it into another object,
// a log line or an error.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// CommonStatus is the status every user-facing Cairn object carries.
type CommonStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, and kind-specific ones such as Overlapping.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types and reasons shared by Cairn objects.
const (
	// ConditionReady is true when the object is valid and in use.
	ConditionReady = "Ready"
	// ConditionOverlapping is true on an IPPool whose cidr overlaps
	// another pool's; such a pool gives no addresses.
	ConditionOverlapping = "Overlapping"
	// ConditionInvalid is true when the object passed admission but cannot
	// be used, for example a selector that does not parse.
	ConditionInvalid = "Invalid"
	// ConditionAccepted is true on a BGPConfiguration the agents can
	// apply as it is; false says what they cannot use, and why.
	ConditionAccepted = "Accepted"
	// ConditionExhausted is true on an IPPool that has no address left to
	// give.
	ConditionExhausted = "Exhausted"
	// ConditionFiltersResolved is true on a BGPPeer whose filters all
	// name existing, valid BGPFilters.
	ConditionFiltersResolved = "FiltersResolved"
)

// MaxListedInStatus caps the lists of names (nodes, BGPPeers, sessions)
// that a status carries, so that a status stays small on a thousand
// nodes; the counts beside the lists are always exact.
const MaxListedInStatus = 32
