package lbipam

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cairn-net/cairn/ipam/pools"
)

const (
	// Class is the loadBalancerClass Cairn serves. Services of type
	// LoadBalancer without a class are served too; those of any other
	// class are left to their controller.
	Class = "cairn.dev/bgp"
	// RequestAnnotation asks for particular addresses, comma-separated, at
	// most one per address family: "192.0.2.10" or
	// "192.0.2.10,2001:db8::10". spec.loadBalancerIP (deprecated) asks for
	// one; when both are set it must be among the annotation's.
	RequestAnnotation = "cairn.dev/loadBalancerIPs"
	// Component is the source of the Events written on Services.
	Component = "cairn-lbipam"
)

// Event reasons on Services.
const (
	// ReasonAssigned (Normal): the Service was given addresses.
	ReasonAssigned = "LoadBalancerIPAssigned"
	// ReasonReleased (Normal): the Service's addresses were taken back
	// because it is no longer of type LoadBalancer.
	ReasonReleased = "LoadBalancerIPReleased"
	// ReasonUnavailable (Warning): a requested address cannot be given:
	// in use by another Service, outside every LoadBalancer pool, in a
	// pool that gives no addresses, or not a valid request.
	ReasonUnavailable = "LoadBalancerIPUnavailable"
	// ReasonAllocationFailed (Warning): no address could be chosen for
	// the Service: no LoadBalancer pool for its family, or pools full.
	ReasonAllocationFailed = "LoadBalancerIPAllocationFailed"
	// ReasonConflict (Warning): the Service's status carried an address
	// that another Service holds; it was replaced.
	ReasonConflict = "LoadBalancerIPConflict"
)

// Service is what deciding a Service's addresses needs, read from the
// object by View.
type Service struct {
	// Key is namespace/name.
	Key     string
	UID     types.UID
	Created time.Time
	// LoadBalancer is type LoadBalancer, of any class; Managed says Cairn
	// serves its class.
	LoadBalancer, Managed bool
	// Families are spec.ipFamilies in order (IPv4 when unset);
	// RequireAll is ipFamilyPolicy RequireDualStack.
	Families   []pools.Family
	RequireAll bool
	// Requested are the addresses asked for, in the order of Families;
	// RequestErr says why the request cannot be read.
	Requested  []netip.Addr
	RequestErr error
	// Status are the IPs of status.loadBalancer.ingress.
	Status []netip.Addr
}

// View reads a Service.
func View(s *corev1.Service) Service {
	v := Service{
		Key: s.Namespace + "/" + s.Name, UID: s.UID, Created: s.CreationTimestamp.Time,
		LoadBalancer: s.Spec.Type == corev1.ServiceTypeLoadBalancer,
		RequireAll:   s.Spec.IPFamilyPolicy != nil && *s.Spec.IPFamilyPolicy == corev1.IPFamilyPolicyRequireDualStack,
	}
	v.Managed = v.LoadBalancer && (s.Spec.LoadBalancerClass == nil || *s.Spec.LoadBalancerClass == Class)
	for _, f := range s.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			v.Families = append(v.Families, pools.V4)
		case corev1.IPv6Protocol:
			v.Families = append(v.Families, pools.V6)
		}
	}
	if len(v.Families) == 0 {
		v.Families = []pools.Family{pools.V4}
	}
	for _, in := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil && !slices.Contains(v.Status, a.Unmap()) {
			v.Status = append(v.Status, a.Unmap())
		}
	}
	v.Requested, v.RequestErr = requests(s, v.Families)
	return v
}

// requests reads the addresses a Service asks for, ordered as its
// families.
func requests(s *corev1.Service, families []pools.Family) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s.Annotations[RequestAnnotation], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := parseRequest(f)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", RequestAnnotation, err)
		}
		out = append(out, a)
	}
	if ip := strings.TrimSpace(s.Spec.LoadBalancerIP); ip != "" {
		a, err := parseRequest(ip)
		switch {
		case err != nil:
			return nil, fmt.Errorf("spec.loadBalancerIP: %w", err)
		case len(out) == 0:
			out = []netip.Addr{a}
		case !slices.Contains(out, a):
			return nil, fmt.Errorf("spec.loadBalancerIP %s is not among the addresses of annotation %s", a, RequestAnnotation)
		}
	}
	seen := map[pools.Family]netip.Addr{}
	for _, a := range out {
		f := familyOf(a)
		if prev, ok := seen[f]; ok {
			return nil, fmt.Errorf("%s and %s requested: a Service takes one %v address", prev, a, f)
		}
		if !slices.Contains(families, f) {
			return nil, fmt.Errorf("%v address %s requested, but the Service's ipFamilies are %v", f, a, families)
		}
		seen[f] = a
	}
	slices.SortStableFunc(out, func(a, b netip.Addr) int {
		return cmp.Compare(slices.Index(families, familyOf(a)), slices.Index(families, familyOf(b)))
	})
	return out, nil
}

func parseRequest(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

func familyOf(a netip.Addr) pools.Family {
	if a.Is4() {
		return pools.V4
	}
	return pools.V6
}
