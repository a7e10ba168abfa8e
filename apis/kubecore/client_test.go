package kubecore

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// fakeAPI answers every request with the object registered for its
// method and path, and records the requests.
type fakeAPI struct {
	mu       sync.Mutex
	requests []string // "METHOD path?query"
	bodies   map[string]runtime.Object
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.requests = append(f.requests, key+"?"+r.URL.RawQuery)
	obj, ok := f.bodies[key]
	f.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound, Message: key + " not found"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(obj)
}

// Each kind goes to its group's path, requests carry their options as
// query parameters, and answers decode into the kind's Go type: the
// narrow scheme holds what the agent's requests need.
func TestClientReachesEachKindAtItsPath(t *testing.T) {
	node := &corev1.Node{TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "node1", ResourceVersion: "7"}}
	sliceList := &discoveryv1.EndpointSliceList{TypeMeta: metav1.TypeMeta{Kind: "EndpointSliceList", APIVersion: "discovery.k8s.io/v1"},
		Items: []discoveryv1.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1"}}}}
	lease := &coordinationv1.Lease{TypeMeta: metav1.TypeMeta{Kind: "Lease", APIVersion: "coordination.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "cairn-system", Name: "cairn-ipam-gc"}}
	svc := &corev1.Service{TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}
	api := &fakeAPI{bodies: map[string]runtime.Object{
		"GET /api/v1/nodes/node1":                                                       node,
		"GET /apis/discovery.k8s.io/v1/endpointslices":                                  sliceList,
		"PUT /apis/coordination.k8s.io/v1/namespaces/cairn-system/leases/cairn-ipam-gc": lease,
		"PATCH /api/v1/namespaces/default/services/web/status":                          svc,
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	c, err := NewForConfig(&rest.Config{Host: srv.URL, QPS: 100, Burst: 200})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n, err := c.Nodes().Get(ctx, "node1", metav1.GetOptions{ResourceVersion: "5"}); err != nil || n.Name != "node1" || n.ResourceVersion != "7" {
		t.Errorf("get node: %v %+v", err, n)
	}
	if l, err := c.EndpointSlices("").List(ctx, metav1.ListOptions{LabelSelector: "a=b"}); err != nil || len(l.Items) != 1 || l.Items[0].Name != "web-1" {
		t.Errorf("list endpoint slices: %v %+v", err, l)
	}
	if l, err := c.Leases("cairn-system").Update(ctx, lease, metav1.UpdateOptions{}); err != nil || l.Name != "cairn-ipam-gc" {
		t.Errorf("update lease: %v %+v", err, l)
	}
	if s, err := c.Services("default").Patch(ctx, "web", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{FieldManager: "test"}, "status"); err != nil || s.Name != "web" {
		t.Errorf("patch service status: %v %+v", err, s)
	}
	if _, err := c.Pods("default").Get(ctx, "gone", metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("get a missing pod: %v, want not found", err)
	}
	want := []string{
		"GET /api/v1/nodes/node1?resourceVersion=5",
		"GET /apis/discovery.k8s.io/v1/endpointslices?labelSelector=a%3Db",
		"PUT /apis/coordination.k8s.io/v1/namespaces/cairn-system/leases/cairn-ipam-gc?",
		"PATCH /api/v1/namespaces/default/services/web/status?fieldManager=test",
		"GET /api/v1/namespaces/default/pods/gone?",
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if !slices.Equal(api.requests, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(api.requests, "\n"), strings.Join(want, "\n"))
	}
}

// cairn-node reaches the API server only through narrow clients: nothing
// in it may bring client-go's scheme of every API group back (its
// clientset, typed clients, informer factory, leader election,
// discovery). That scheme cost the agent 7 MiB of resident memory.
func TestAgentLeavesClientGoSchemeOut(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-deps", "./cmd/cairn-node")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, p := range []string{"k8s.io/client-go/kubernetes/scheme", "k8s.io/client-go/kubernetes", "k8s.io/client-go/informers",
		"k8s.io/client-go/discovery", "k8s.io/client-go/tools/leaderelection"} {
		if slices.Contains(deps, p) {
			t.Errorf("cairn-node imports %s (go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/cairn-node shows through what)", p)
		}
	}
	if !slices.Contains(deps, "k8s.io/client-go/gentype") {
		t.Errorf("cairn-node does not import k8s.io/client-go/gentype: is this test still looking at the right binary?")
	}
}
