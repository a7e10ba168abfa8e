package agent

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/bgp/speaker"
	"github.com/cairn-net/cairn/felix"
)

func TestLearnedOf(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	routes := []felix.LearnedRoute{
		{Prefix: netip.MustParsePrefix("10.244.1.0/26"), NextHops: []netip.Addr{a, b}},
		{Prefix: netip.MustParsePrefix("10.244.0.0/26"), NextHops: []netip.Addr{a}},
	}
	paths := []speaker.Path{
		{Prefix: routes[0].Prefix, NextHop: a, Peer: a}, {Prefix: routes[0].Prefix, NextHop: b, Peer: b},
		{Prefix: routes[1].Prefix, NextHop: a, Peer: netip.MustParseAddr("10.0.0.254")},
	}
	got := learnedOf(routes, paths, map[netip.Prefix]string{routes[1].Prefix: "same prefix as an owned block"})
	want := []*agentv1.LearnedRoute{
		{Prefix: "10.244.1.0/26", NextHops: []string{"10.0.0.2", "10.0.0.3"}, Peers: []string{"10.0.0.2", "10.0.0.3"}, Installed: true},
		{Prefix: "10.244.0.0/26", NextHops: []string{"10.0.0.2"}, Peers: []string{"10.0.0.254"}, RefusedReason: "same prefix as an owned block"},
	}
	for i := range want {
		if i >= len(got) || !reflect.DeepEqual(got[i].String(), want[i].String()) {
			t.Errorf("route %d: got %v, want %v", i, got, want)
		}
	}
}

// NodeStatus is served on the same socket as the plugin's calls.
func TestNodeStatusOnTheAgentSocket(t *testing.T) {
	s, _, _ := newTestServer(t)
	api := nodeAPI{cniServer: s, describe: func(context.Context) *agentv1.NodeStatusResponse {
		return &agentv1.NodeStatusResponse{Node: "node-1", Ready: true, Blocks: []string{"10.244.0.0/26"}}
	}}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serveCNI(ctx, sock, api, s.log, time.Second) }()
	defer func() { cancel(); <-served }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	callCtx, done := context.WithTimeout(context.Background(), time.Minute)
	defer done()
	st, err := agentv1.NewAgentClient(conn).NodeStatus(callCtx, &agentv1.NodeStatusRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "node-1" || !st.Ready || len(st.Blocks) != 1 {
		t.Errorf("NodeStatus = %v", st)
	}
	// The plugin's calls are still served by the CNI server.
	if _, err := agentv1.NewAgentClient(conn).Status(callCtx, &agentv1.StatusRequest{}); err != nil {
		t.Errorf("Status: %v", err)
	}
}
