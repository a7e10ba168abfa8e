package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnfake "github.com/cairn-net/cairn/apis/client/clientset/versioned/fake"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// fakeAgent answers NodeStatus; the plugin's calls are not cairnctl's.
type fakeAgent struct {
	agentv1.AgentClient
	status *agentv1.NodeStatusResponse
}

func (f fakeAgent) NodeStatus(context.Context, *agentv1.NodeStatusRequest, ...grpc.CallOption) (*agentv1.NodeStatusResponse, error) {
	return f.status, nil
}

func agentStatus(tor string) *agentv1.NodeStatusResponse {
	return &agentv1.NodeStatusResponse{Node: "node1", Ready: true, NodeAddress: "172.30.1.2", Asn: 64512,
		Sessions: []*agentv1.BGPSession{
			{Name: "mesh:node2", Address: "172.30.1.3", Asn: 64512, State: "Established", UptimeSeconds: 60, Received: 1, Accepted: 1, Advertised: 2},
			{Name: "peer:tor", Address: "172.30.1.1", Asn: 65001, State: tor},
		},
		Blocks: []string{"10.244.0.0/26"}, Announced: []string{"10.244.0.0/26"}, ImportFilter: []string{"10.244.0.0/16"},
		Learned:   []*agentv1.LearnedRoute{{Prefix: "10.244.1.0/26", NextHops: []string{"172.30.1.3"}, Peers: []string{"172.30.1.3"}, Installed: true}},
		Endpoints: []*agentv1.Endpoint{{ContainerId: "c1", HostIface: "crn1", Addresses: []string{"10.244.0.5/32"}, PodNamespace: "default", PodName: "web-1"}},
		Routes:    &agentv1.RouteCounts{Endpoint: 1, Blackhole: 1, Learned: 1}}
}

// cluster is the API server's objects: two nodes, a pool, two blocks,
// a pod on node2, and node1's status.
func cluster() (*kubefake.Clientset, *cairnfake.Clientset) {
	node := func(name, addr string) runtime.Object {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr}}}}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-1", Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "node2"},
		Status: corev1.PodStatus{PodIP: "10.244.1.7"}}
	updated := metav1.NewTime(now.Add(-3 * time.Second))
	st := &v1.CairnNodeStatus{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Spec: v1.CairnNodeStatusSpec{Node: "node1"},
		Status: v1.CairnNodeStatusStatus{LastUpdated: &updated, Blocks: []string{"10.244.0.0/26"},
			BGP: v1.NodeBGPStatus{Peers: []v1.BGPSessionStatus{{PeerIP: "172.30.1.3", Type: "NodeMesh", State: "Established"}}},
			Routes: v1.NodeRouteStatus{LearnedCount: 1, Learned: []v1.LearnedRouteStatus{
				{Prefix: "10.244.1.0/26", NextHops: []string{"172.30.1.3"}, State: v1.LearnedRouteInstalled}}}}}
	st.Status.Conditions = []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Synced"}}
	return kubefake.NewClientset(node("node1", "172.30.1.2"), node("node2", "172.30.1.3"), pod),
		cairnfake.NewSimpleClientset(st,
			&v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.IPPoolSpec{CIDR: "10.244.0.0/16"}},
			&v1.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: "10-244-0-0-26"}, Spec: v1.IPAMBlockSpec{CIDR: "10.244.0.0/26", Pool: "default", Affinity: "node:node1",
				Allocations: []v1.BlockAllocation{{Ordinal: 5, Handle: "h1", Node: "node1", Namespace: "default", Pod: "web-1"}}}},
			&v1.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: "10-244-1-0-26"}, Spec: v1.IPAMBlockSpec{CIDR: "10.244.1.0/26", Pool: "default", Affinity: "node:node2",
				Allocations: []v1.BlockAllocation{{Ordinal: 7, Handle: "h2", Node: "node2", Namespace: "default", Pod: "api-1"}}}})
}

func run(t *testing.T, agent *agentv1.NodeStatusResponse, noAPI bool, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	kube, cairn := cluster()
	env := Env{Stdout: &out, Stderr: &errw, Now: func() time.Time { return now },
		Kube: func() (*Clients, error) {
			if noAPI {
				return nil, errors.New("load kubeconfig: no configuration")
			}
			return &Clients{Kube: kube, Cairn: cairn}, nil
		},
		Agent: func(context.Context, string) (agentv1.AgentClient, io.Closer, error) {
			if agent == nil {
				return nil, nil, errors.New("stat /var/run/cairn/agent.sock: no such file or directory")
			}
			return fakeAgent{status: agent}, io.NopCloser(nil), nil
		}}
	code := Run(context.Background(), env, args)
	return code, out.String(), errw.String()
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name  string
		agent *agentv1.NodeStatusResponse
		noAPI bool
		args  []string
		code  int
		// out and errOut must each contain every string listed.
		out, errOut []string
	}{
		{"node status from the agent", agentStatus("Established"), false, []string{"node", "status"}, ExitOK,
			[]string{"node1", "the node's agent (live)", "mesh:node2", "65001", "1/1/2"}, nil},
		{"a session down is a problem", agentStatus("Active"), false, []string{"node", "status"}, ExitProblems, []string{"Active"}, nil},
		{"no agent socket", nil, false, []string{"node", "status"}, ExitError, nil, []string{"reach the agent", "name the node"}},
		{"node status from the API", nil, false, []string{"node", "status", "node1"}, ExitOK, []string{"CairnNodeStatus", "mesh:node2", "64512"}, nil},
		{"an unknown node", nil, false, []string{"node", "status", "node9"}, ExitNotFound, nil, []string{"node9", "not found"}},
		{"explain a local pod through the agent", agentStatus("Established"), false, []string{"route", "explain", "10.244.0.5"}, ExitOK,
			[]string{"local-pod", "default/web-1", "default, block 10.244.0.0/26 of node1", "dev crn1"}, nil},
		{"explain a pod by name on another node", agentStatus("Established"), false, []string{"route", "explain", "-o", "table", "api-1"}, ExitOK,
			[]string{"Pod:", "default/api-1 on node2", "installed", "mesh:node2"}, nil},
		{"explain from the API for a named node", nil, false, []string{"route", "explain", "--node", "node1", "default/api-1"}, ExitOK,
			[]string{"installed"}, nil},
		{"explain a prefix outside the pools", agentStatus("Established"), false, []string{"route", "explain", "192.0.2.0/24"}, ExitProblems,
			[]string{"import-filtered"}, nil},
		{"explain without API access", agentStatus("Established"), true, []string{"route", "explain", "10.244.1.7"}, ExitOK,
			[]string{"installed", "pool and block unknown"}, nil},
		{"an unknown pod", agentStatus("Established"), false, []string{"route", "explain", "nope/x"}, ExitNotFound, nil, []string{"nope/x"}},
		{"pool list", nil, false, []string{"pool", "list"}, ExitOK, []string{"default", "10.244.0.0/16", "65536", "0.0%"}, nil},
		{"pool show", nil, false, []string{"pool", "show", "default"}, ExitOK, []string{"node1", "node2", "BORROWED"}, nil},
		{"an unknown pool", nil, false, []string{"pool", "show", "gold"}, ExitNotFound, nil, []string{"gold"}},
		{"pools without API access", nil, true, []string{"pool", "list"}, ExitError, nil, []string{"kubeconfig"}},
		{"bad format", nil, false, []string{"pool", "list", "-o", "xml"}, ExitError, nil, []string{"-o xml", "usage"}},
		{"unknown command", nil, false, []string{"frob"}, ExitError, nil, []string{"unknown command"}},
		{"missing subcommand", nil, false, []string{"node"}, ExitError, nil, []string{"needs a subcommand"}},
		{"completion bash", nil, false, []string{"completion", "bash"}, ExitOK, []string{"complete -F _cairnctl cairnctl"}, nil},
		{"completion zsh", nil, false, []string{"completion", "zsh"}, ExitOK, []string{"bashcompinit", "complete -F"}, nil},
		{"names for completion", nil, false, []string{"__complete", "pools"}, ExitOK, []string{"default"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.agent, tc.noAPI, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.errOut {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// JSON and YAML carry the same document, for scripts.
func TestMachineOutput(t *testing.T) {
	for _, args := range [][]string{{"node", "status"}, {"route", "explain", "10.244.1.7"}, {"pool", "list"}} {
		_, js, _ := run(t, agentStatus("Established"), false, append(args, "-o", "json")...)
		_, ym, _ := run(t, agentStatus("Established"), false, append(args, "-o", "yaml")...)
		var fromJSON, fromYAML any
		if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
			t.Fatalf("%v -o json: %v\n%s", args, err, js)
		}
		if err := yaml.Unmarshal([]byte(ym), &fromYAML); err != nil {
			t.Fatalf("%v -o yaml: %v\n%s", args, err, ym)
		}
		a, _ := json.Marshal(fromJSON)
		b, _ := json.Marshal(fromYAML)
		if !bytes.Equal(a, b) {
			t.Errorf("%v: JSON and YAML differ:\n%s\n%s", args, a, b)
		}
	}
	_, js, _ := run(t, agentStatus("Established"), false, "route", "explain", "10.244.1.7", "-o", "json")
	var e struct{ Verdict, Pool, BlockNode string }
	if err := json.Unmarshal([]byte(js), &e); err != nil || e.Verdict != "installed" || e.Pool != "default" || e.BlockNode != "node2" {
		t.Errorf("explain JSON %+v (%v):\n%s", e, err, js)
	}
}
