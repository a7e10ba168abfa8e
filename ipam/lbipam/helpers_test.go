package lbipam

import (
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam/pools"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// svc is a Service of type LoadBalancer in namespace default, IPv4 only,
// created age seconds after epoch; mods change it.
func svc(name string, age int, mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name),
			ResourceVersion: "1", CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Second))},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func class(c string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c }
}

func clusterIP(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }

func families(fs ...corev1.IPFamily) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.IPFamilies = fs }
}

func policy(p corev1.IPFamilyPolicy) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.IPFamilyPolicy = &p }
}

func dual(s *corev1.Service) { families(corev1.IPv4Protocol, corev1.IPv6Protocol)(s) }

func lbIP(ip string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip }
}

func annotated(v string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[RequestAnnotation] = v
	}
}

func status(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = nil
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}

// ippool is an IPPool; lb marks it for LoadBalancer use.
func ippool(name, cidr string, lb bool, mods ...func(*v1.IPPoolSpec)) *v1.IPPool {
	p := &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.IPPoolSpec{CIDR: cidr}}
	if lb {
		p.Spec.AllowedUses = []v1.IPPoolUse{v1.IPPoolUseLoadBalancer}
	}
	for _, m := range mods {
		m(&p.Spec)
	}
	return p
}

func manual(s *v1.IPPoolSpec)   { s.AssignmentMode = "Manual" }
func disabled(s *v1.IPPoolSpec) { s.Disabled = true }

func analyze(ps ...*v1.IPPool) []pools.Pool { return pools.Analyze(ps) }

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}
