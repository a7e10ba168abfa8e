package deploy

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// granted is every verb the ClusterRole grants on each resource of group.
func granted(role *rbacv1.ClusterRole, group string) map[string][]string {
	out := map[string][]string{}
	for _, r := range role.Rules {
		if !slices.Contains(r.APIGroups, group) {
			continue
		}
		for _, res := range r.Resources {
			out[res] = append(out[res], r.Verbs...)
		}
	}
	for res := range out {
		slices.Sort(out[res])
		out[res] = slices.Compact(out[res])
	}
	return out
}

// TestStatusWritesOnly: cairn-node writes the status of the objects users
// write (pools, BGP objects) through their status subresource only, with
// the one verb it uses (a conditional update), and never the objects
// themselves; it creates its own CairnNodeStatus.
func TestStatusWritesOnly(t *testing.T) {
	r := render(t, "deploy")
	got := granted(into[rbacv1.ClusterRole](t, r.find(t, "ClusterRole", "cairn-node")), "cairn.dev")
	want := map[string]string{
		"ippools":                  "get,list,watch",
		"bgppeers":                 "get,list,watch",
		"bgpconfigurations":        "get,list,watch",
		"bgpfilters":               "get,list,watch",
		"cairnnodestatuses":        "create,get,list,watch",
		"ippools/status":           "update",
		"bgppeers/status":          "update",
		"bgpconfigurations/status": "update",
		"bgpfilters/status":        "update",
		"cairnnodestatuses/status": "update",
	}
	for res, verbs := range want {
		if g := strings.Join(got[res], ","); g != verbs {
			t.Errorf("cairn.dev %s: verbs %s, want %s", res, g, verbs)
		}
	}
}

// TestDaemonSetDeclaresMetrics: the agent's metrics port is declared and
// annotated for Prometheus's pod discovery.
func TestDaemonSetDeclaresMetrics(t *testing.T) {
	eachInstallation(t, func(t *testing.T, r rendered, ds *appsv1.DaemonSet) {
		c := container(t, ds, "cairn-node")
		i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" })
		if i < 0 || c.Ports[i].ContainerPort != 9091 || c.Ports[i].Protocol != "TCP" {
			t.Errorf("ports %+v: want metrics on TCP 9091", c.Ports)
		}
		a := ds.Spec.Template.Annotations
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "9091" || a["prometheus.io/path"] != "/metrics" {
			t.Errorf("pod annotations %v: want Prometheus's scrape, port 9091 and path /metrics", a)
		}
	})
}
