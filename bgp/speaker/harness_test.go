package speaker

// Integration harness: every Speaker under test runs in its own process, a
// re-exec of this test binary (TestMain sees helperEnv), optionally inside a
// network namespace through `ip netns exec`.
//
// Why a process and not a goroutine on a thread locked into the namespace:
// GoBGP opens its listener and its outgoing connections from goroutines of
// its own, which run on whatever OS thread the scheduler picks, so only a
// process whose every thread lives in the namespace is reliably "in" it. A
// process per speaker also keeps GoBGP's package-level route-selection
// options from being shared between two speakers.
//
// The parent drives the child with JSON lines on stdin (SetPeers,
// SetAdvertisements, SetImportFilter, PeerStates, quit) and reads replies and
// every Learned() set from stdout; the child's logs (debug level, JSON) go to
// stderr, are kept, and are printed when a test fails. The child dies with
// the parent (PR_SET_PDEATHSIG) and exits when its stdin closes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "CAIRN_SPEAKER_HELPER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(runHelper(cfg))
	}
	os.Exit(m.Run())
}

// helperConfig is what a child speaker is started with.
type helperConfig struct {
	RouterID           netip.Addr
	ASN                uint32
	ListenPort         int32
	ListenAddresses    []string
	GracefulRestart    *GROptions
	InitialSyncTimeout time.Duration
	// ForwardingStateKept is Options.ForwardingStateKept.
	ForwardingStateKept bool
	MaxPrefixRestart    time.Duration
	// NextHop4 and NextHop6 are Options.NextHop4 and NextHop6.
	NextHop4, NextHop6 netip.Addr
}

type helperCmd struct {
	ID     int
	Op     string // global, peers, ads, filter, states, refused, leave, quit
	Global Global
	Peers  []Peer
	Ads    []Advertisement
	Filter []netip.Prefix
}

type helperMsg struct {
	ID      int
	Err     string
	States  []PeerState
	Refused []RefusedPath
	Learned *[]Path
	Exited  bool
}

// runHelper is the child: one Speaker, driven from stdin.
func runHelper(cfgJSON string) int {
	var hc helperConfig
	if err := json.Unmarshal([]byte(cfgJSON), &hc); err != nil {
		fmt.Fprintln(os.Stderr, "bad helper config:", err)
		return 2
	}
	var outMu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	send := func(m helperMsg) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(m)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sp, err := New(Options{
		RouterID: hc.RouterID, ASN: hc.ASN, ListenPort: hc.ListenPort, ListenAddresses: hc.ListenAddresses,
		Logger: log, GracefulRestart: hc.GracefulRestart, InitialSyncTimeout: hc.InitialSyncTimeout,
		ForwardingStateKept: hc.ForwardingStateKept, MaxPrefixRestart: hc.MaxPrefixRestart,
		NextHop4: hc.NextHop4, NextHop6: hc.NextHop6,
	})
	if err != nil {
		send(helperMsg{Exited: true, Err: err.Error()})
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	learnedDone := make(chan struct{})
	go func() {
		defer close(learnedDone)
		for paths := range sp.Learned() {
			send(helperMsg{Learned: &paths})
		}
	}()
	go func() {
		defer cancel() // stdin closed or quit: stop
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var c helperCmd
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				send(helperMsg{Err: "bad command: " + err.Error()})
				continue
			}
			reply := helperMsg{ID: c.ID}
			var err error
			switch c.Op {
			case "global":
				err = sp.SetGlobal(c.Global)
			case "peers":
				err = sp.SetPeers(c.Peers)
			case "ads":
				err = sp.SetAdvertisements(c.Ads)
			case "filter":
				sp.SetImportFilter(c.Filter)
			case "states":
				reply.States = sp.PeerStates()
			case "refused":
				reply.Refused, _ = sp.RefusedPaths()
			case "leave":
				sp.SetLeaving(true)
			case "quit":
				send(reply)
				return
			default:
				err = fmt.Errorf("unknown op %q", c.Op)
			}
			if err != nil {
				reply.Err = err.Error()
			}
			send(reply)
		}
	}()
	runErr := sp.Run(ctx)
	<-learnedDone
	msg := helperMsg{Exited: true}
	if runErr != nil {
		msg.Err = runErr.Error()
	}
	send(msg)
	return 0
}

// speakerProc is the parent's handle on a child speaker.
type speakerProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	logs *lockedBuffer

	mu       sync.Mutex
	nextID   int
	replies  map[int]chan helperMsg
	learned  []Path
	gotFirst bool
	// history is every Learned set received, in order.
	history [][]Path
	changed chan struct{} // closed and replaced on every Learned set
	exited  chan struct{}
	exitErr string
}

// startSpeaker runs a speaker in a child process, inside netns if not empty.
func startSpeaker(t *testing.T, name, netns string, hc helperConfig) *speakerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find test binary: %v", err)
	}
	cfg, err := json.Marshal(hc)
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if netns != "" {
		cmd = exec.Command("ip", "netns", "exec", netns, exe, "-test.run=^$")
	} else {
		cmd = exec.Command(exe, "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), helperEnv+"="+string(cfg))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sp := &speakerProc{t: t, name: name, cmd: cmd, logs: &lockedBuffer{},
		replies: map[int]chan helperMsg{}, changed: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stderr = sp.logs
	if sp.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start speaker %s: %v", name, err)
	}
	go sp.read(out)
	t.Cleanup(func() {
		sp.kill()
		if t.Failed() {
			t.Logf("=== logs of speaker %s ===\n%s", name, sp.logs.String())
		}
	})
	return sp
}

func (sp *speakerProc) read(out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m helperMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		sp.mu.Lock()
		switch {
		case m.Learned != nil:
			sp.learned, sp.gotFirst = *m.Learned, true
			sp.history = append(sp.history, *m.Learned)
			close(sp.changed)
			sp.changed = make(chan struct{})
		case m.Exited:
			sp.exitErr = m.Err
		case m.ID != 0:
			if ch := sp.replies[m.ID]; ch != nil {
				ch <- m
				delete(sp.replies, m.ID)
			}
		}
		sp.mu.Unlock()
	}
	_ = sp.cmd.Wait()
	close(sp.exited)
}

// call sends a command and waits for its reply.
func (sp *speakerProc) call(t testing.TB, c helperCmd) helperMsg {
	t.Helper()
	ch := make(chan helperMsg, 1)
	sp.mu.Lock()
	sp.nextID++
	c.ID = sp.nextID
	sp.replies[c.ID] = ch
	sp.mu.Unlock()
	b, _ := json.Marshal(c)
	if _, err := sp.in.Write(append(b, '\n')); err != nil {
		t.Fatalf("speaker %s: send %s: %v", sp.name, c.Op, err)
	}
	select {
	case m := <-ch:
		return m
	case <-sp.exited:
		t.Fatalf("speaker %s exited during %s: %s", sp.name, c.Op, sp.exitErr)
	case <-time.After(15 * time.Second):
		t.Fatalf("speaker %s: no reply to %s", sp.name, c.Op)
	}
	return helperMsg{}
}

func (sp *speakerProc) SetPeers(t testing.TB, peers ...Peer) {
	t.Helper()
	if m := sp.call(t, helperCmd{Op: "peers", Peers: peers}); m.Err != "" {
		t.Fatalf("speaker %s: SetPeers: %s", sp.name, m.Err)
	}
}

func (sp *speakerProc) SetGlobal(t testing.TB, g Global) {
	t.Helper()
	if m := sp.call(t, helperCmd{Op: "global", Global: g}); m.Err != "" {
		t.Fatalf("speaker %s: SetGlobal: %s", sp.name, m.Err)
	}
}

// History returns every Learned set received so far, in order.
func (sp *speakerProc) History() [][]Path {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return slices.Clone(sp.history)
}

func (sp *speakerProc) SetAds(t testing.TB, ps ...string) {
	t.Helper()
	ads := make([]Advertisement, len(ps))
	for i, p := range ps {
		ads[i] = Advertisement{Prefix: netip.MustParsePrefix(p)}
	}
	if m := sp.call(t, helperCmd{Op: "ads", Ads: ads}); m.Err != "" {
		t.Fatalf("speaker %s: SetAdvertisements: %s", sp.name, m.Err)
	}
}

func (sp *speakerProc) SetFilter(t testing.TB, ps ...string) {
	t.Helper()
	sp.call(t, helperCmd{Op: "filter", Filter: prefixes(ps...)})
}

// Refused is the speaker's RefusedPaths.
func (sp *speakerProc) Refused(t testing.TB) []RefusedPath {
	t.Helper()
	return sp.call(t, helperCmd{Op: "refused"}).Refused
}

func (sp *speakerProc) States(t testing.TB) []PeerState {
	t.Helper()
	return sp.call(t, helperCmd{Op: "states"}).States
}

// WaitEstablished polls PeerStates until every peer is Established.
func (sp *speakerProc) WaitEstablished(t testing.TB, timeout time.Duration) []PeerState {
	t.Helper()
	return sp.WaitStates(t, "all sessions Established", timeout, func(st []PeerState) bool {
		return len(st) > 0 && !slices.ContainsFunc(st, func(s PeerState) bool { return s.State != StateEstablished })
	})
}

// WaitStates polls PeerStates until cond holds or the deadline passes.
func (sp *speakerProc) WaitStates(t testing.TB, what string, timeout time.Duration, cond func([]PeerState) bool) []PeerState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st := sp.States(t)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("speaker %s: %s: not within %s; peer states: %+v", sp.name, what, timeout, st)
		}
		<-tick.C
	}
}

// WaitLearned waits until the latest Learned() set satisfies cond.
func (sp *speakerProc) WaitLearned(t testing.TB, what string, timeout time.Duration, cond func([]Path) bool) []Path {
	t.Helper()
	paths, ok := sp.waitLearned(timeout, cond)
	if !ok {
		t.Fatalf("speaker %s: %s: not within %s; learned: %v", sp.name, what, timeout, paths)
	}
	return paths
}

// HoldsLearned checks that cond keeps holding for the whole window; it
// fails as soon as a Learned() set breaks it.
func (sp *speakerProc) HoldsLearned(t testing.TB, what string, window time.Duration, cond func([]Path) bool) {
	t.Helper()
	if paths, broke := sp.waitLearned(window, func(p []Path) bool { return !cond(p) }); broke {
		t.Fatalf("speaker %s: %s: broken; learned: %v", sp.name, what, paths)
	}
}

func (sp *speakerProc) waitLearned(timeout time.Duration, cond func([]Path) bool) ([]Path, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		sp.mu.Lock()
		paths, got, changed := sp.learned, sp.gotFirst, sp.changed
		sp.mu.Unlock()
		if got && cond(paths) {
			return paths, true
		}
		select {
		case <-changed:
		case <-timer.C:
			return paths, false
		case <-sp.exited:
			return paths, false
		}
	}
}

// Stop asks the speaker to stop (Run's context is cancelled) and waits.
func (sp *speakerProc) Stop(t testing.TB) {
	t.Helper()
	sp.call(t, helperCmd{Op: "quit"})
	select {
	case <-sp.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("speaker %s did not stop", sp.name)
	}
	if sp.exitErr != "" {
		t.Errorf("speaker %s: Run returned %s", sp.name, sp.exitErr)
	}
}

// kill ends the child at once (a crash) and waits for it.
func (sp *speakerProc) kill() {
	select {
	case <-sp.exited:
		return
	default:
	}
	_ = sp.cmd.Process.Kill()
	select {
	case <-sp.exited:
	case <-time.After(10 * time.Second):
		sp.t.Errorf("speaker %s (pid %d) did not die", sp.name, sp.cmd.Process.Pid)
	}
}

// has reports whether paths contain prefix via nextHop.
func has(paths []Path, prefix, nextHop string) bool {
	return slices.ContainsFunc(paths, func(p Path) bool {
		return p.Prefix.String() == prefix && p.NextHop.String() == nextHop
	})
}

// hasPrefix reports whether any path is for prefix.
func hasPrefix(paths []Path, prefix string) bool {
	return slices.ContainsFunc(paths, func(p Path) bool { return p.Prefix.String() == prefix })
}

// exactly reports whether paths are exactly these "prefix via nexthop".
func exactly(want ...string) func([]Path) bool {
	return func(paths []Path) bool {
		got := make([]string, len(paths))
		for i, p := range paths {
			got[i] = p.Prefix.String() + " via " + p.NextHop.String()
		}
		slices.Sort(got)
		w := slices.Clone(want)
		slices.Sort(w)
		return slices.Equal(got, w)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mustNotContain fails if secret appears in any of the texts.
func mustNotContain(t *testing.T, secret string, texts map[string]string) {
	t.Helper()
	for what, text := range texts {
		if strings.Contains(text, secret) {
			t.Errorf("the password appears in %s", what)
		}
	}
}
