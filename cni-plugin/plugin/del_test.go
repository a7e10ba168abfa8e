package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

func TestDel(t *testing.T) {
	cases := []struct {
		name      string
		netns     string
		fail      map[string]error
		wantCode  uint
		wantCalls []string
	}{
		{"normal", "/var/run/netns/pod1", nil, 0, []string{"dp.DeletePodInterface", "agent.Release"}},
		{"no netns given", "", nil, 0, []string{"agent.Release"}},
		{"agent knows nothing", "/var/run/netns/pod1",
			map[string]error{"agent.Release": status.Error(codes.NotFound, "no allocation")}, 0,
			[]string{"dp.DeletePodInterface", "agent.Release"}},
		{"interface not ours is left, addresses still released", "/var/run/netns/pod1",
			map[string]error{"dp.DeletePodInterface": fmt.Errorf("eth0 is a dummy: %w", netsetup.ErrNotOurs)}, 0,
			[]string{"dp.DeletePodInterface", "agent.Release"}},
		{"veth delete fails: keep addresses, runtime retries", "/var/run/netns/pod1",
			map[string]error{"dp.DeletePodInterface": errors.New("EBUSY")}, types.ErrInternal,
			[]string{"dp.DeletePodInterface"}},
		{"agent down: try again", "/var/run/netns/pod1",
			map[string]error{"agent.Release": status.Error(codes.Unavailable, "refused")}, types.ErrTryAgainLater,
			[]string{"dp.DeletePodInterface", "agent.Release"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			for k, v := range tc.fail {
				f.rec.fail[k] = v
			}
			args := cmdArgs(testConf)
			args.Netns = tc.netns
			err := f.p.Del(context.Background(), args)
			if got := cniCode(err); got != tc.wantCode {
				t.Errorf("code = %d (%v), want %d", got, err, tc.wantCode)
			}
			if calls := f.rec.log(); !slices.Equal(calls, tc.wantCalls) {
				t.Errorf("calls = %v, want %v", calls, tc.wantCalls)
			}
		})
	}
}

func TestGC(t *testing.T) {
	f := newFixture()
	conf := `{"cniVersion":"1.1.0","name":"cairn","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"},{"containerID":"c2","ifname":"net1"}]}`
	if err := f.p.GC(context.Background(), cmdArgs(conf)); err != nil {
		t.Fatalf("GC: %v", err)
	}
	var got []string
	for _, a := range f.agent.lastGC.GetValidAttachments() {
		got = append(got, a.GetContainerId()+"/"+a.GetIfname())
	}
	if !slices.Equal(got, []string{"c1/eth0", "c2/net1"}) {
		t.Errorf("agent got %v", got)
	}
	// The agent collects only this network's attachments.
	if n := f.agent.lastGC.GetNetwork(); n != "cairn" {
		t.Errorf("GC network = %q, want the configuration's name cairn", n)
	}
}

func TestGCRefuses(t *testing.T) {
	cases := map[string]string{
		"no list":       `{"cniVersion":"1.1.0","name":"cairn"}`,
		"invalid entry": `{"cniVersion":"1.1.0","name":"cairn","cni.dev/valid-attachments":[{"containerID":"../x","ifname":"eth0"}]}`,
	}
	for name, conf := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture()
			err := f.p.GC(context.Background(), cmdArgs(conf))
			if got := cniCode(err); got != types.ErrInvalidNetworkConfig {
				t.Errorf("code = %d (%v), want 7", got, err)
			}
			if calls := f.rec.log(); len(calls) != 0 {
				t.Errorf("agent called: %v", calls)
			}
		})
	}
}

func TestGCEmptyListIsPassed(t *testing.T) {
	f := newFixture()
	if err := f.p.GC(context.Background(), cmdArgs(`{"cniVersion":"1.1.0","name":"cairn","cni.dev/valid-attachments":[]}`)); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if f.agent.lastGC == nil || len(f.agent.lastGC.GetValidAttachments()) != 0 {
		t.Errorf("agent got %v", f.agent.lastGC)
	}
}

func TestStatus(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		notReady string
		want     uint
	}{
		{"ready", nil, "", 0},
		{"not ready", nil, "waiting for API server", types.ErrPluginNotAvailable},
		{"unreachable", status.Error(codes.Unavailable, "no socket"), "", types.ErrPluginNotAvailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.rec.fail["agent.Status"] = tc.err
			f.agent.notReady = tc.notReady
			err := f.p.Status(context.Background(), cmdArgs(testConf))
			if got := cniCode(err); got != tc.want {
				t.Errorf("code = %d (%v), want %d", got, err, tc.want)
			}
		})
	}
}

func TestUndoListOrder(t *testing.T) {
	var ran []string
	var u undoList
	for _, name := range []string{"a", "b", "c"} {
		u.push(name, func() error {
			ran = append(ran, name)
			if name == "b" {
				return errors.New("b failed")
			}
			return nil
		})
	}
	err := u.run(discardLogger())
	if !slices.Equal(ran, []string{"c", "b", "a"}) {
		t.Errorf("ran %v, want newest first and past failures", ran)
	}
	if err == nil {
		t.Error("failed step not reported")
	}
	if err := u.run(discardLogger()); err != nil || len(ran) != 3 {
		t.Error("steps ran twice")
	}
}
