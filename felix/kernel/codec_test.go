package kernel

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCodecRoundTrip encodes route ops as felix sends them and decodes the
// messages as a dump would return them: what is written reads back equal.
func TestCodecRoundTrip(t *testing.T) {
	routes := []Route{
		{Dst: netip.MustParsePrefix("10.65.0.5/32"), Type: TypeUnicast, Scope: ScopeLink, Protocol: 77, LinkIndex: 12},
		{Dst: netip.MustParsePrefix("fd00:65::5/128"), Type: TypeUnicast, Protocol: 77, Priority: 1024, LinkIndex: 12},
		{Dst: netip.MustParsePrefix("10.65.0.0/26"), Type: TypeBlackhole, Protocol: 77},
		{Dst: netip.MustParsePrefix("10.65.1.0/26"), Type: TypeUnicast, Protocol: 77,
			NextHops: []NextHop{{Gateway: netip.MustParseAddr("192.168.1.2"), LinkIndex: 3}, {Gateway: netip.MustParseAddr("192.168.1.3"), LinkIndex: 4}}},
		{Dst: netip.MustParsePrefix("fd00:66::/122"), Type: TypeUnicast, Protocol: 77, Priority: 1024,
			NextHops: []NextHop{{Gateway: netip.MustParseAddr("2001:db8::2"), LinkIndex: 3}}},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Type: TypeUnicast, Protocol: ProtoBoot,
			NextHops: []NextHop{{Gateway: netip.MustParseAddr("192.168.1.1")}}},
	}
	for _, r := range routes {
		for _, kind := range []OpKind{OpAdd, OpReplace} {
			msg := appendRouteOp(nil, &RouteOp{Kind: kind, Route: r}, 7)
			m, rest, err := nextMsg(msg)
			if err != nil || len(rest) != 0 {
				t.Fatalf("%v: framing: %v, %d bytes left", r.Dst, err, len(rest))
			}
			if m.typ != unix.RTM_NEWROUTE || m.seq != 7 || m.flags&unix.NLM_F_CREATE == 0 {
				t.Fatalf("%v: header %+v", r.Dst, m)
			}
			if excl := m.flags&unix.NLM_F_EXCL != 0; excl != (kind == OpAdd) {
				t.Fatalf("%v %s: EXCL=%v", r.Dst, kind, excl)
			}
			var got Route
			if !decodeRoute(m.body, &got) {
				t.Fatalf("%v: not decoded", r.Dst)
			}
			want := r
			if len(want.NextHops) == 1 {
				// A single path is sent as RTA_GATEWAY, without interface.
				want.NextHops = []NextHop{{Gateway: r.NextHops[0].Gateway}}
			}
			if got.Dst != want.Dst || got.Type != want.Type || got.Scope != want.Scope || got.Protocol != want.Protocol ||
				got.Priority != want.Priority || got.LinkIndex != want.LinkIndex || !slices.Equal(got.NextHops, want.NextHops) {
				t.Errorf("round trip of %s:\n got %+v\nwant %+v", kind, got, want)
			}
		}
	}
}

func TestCodecDelete(t *testing.T) {
	msg := appendRouteOp(nil, &RouteOp{Kind: OpDelete, Route: Route{Dst: netip.MustParsePrefix("10.65.0.5/32"), Protocol: 77, LinkIndex: 3}}, 9)
	m, _, err := nextMsg(msg)
	if err != nil {
		t.Fatal(err)
	}
	if m.typ != unix.RTM_DELROUTE || m.flags != unix.NLM_F_REQUEST {
		t.Fatalf("header %+v", m)
	}
	// Protocol set (so a foreign route never matches), scope "nowhere" and
	// type unspec (so ours matches whatever its scope), no interface.
	if m.body[5] != 77 || m.body[6] != unix.RT_SCOPE_NOWHERE || m.body[7] != unix.RTN_UNSPEC {
		t.Fatalf("rtmsg %v", m.body[:12])
	}
	var r Route
	decodeRoute(m.body, &r)
	if r.LinkIndex != 0 {
		t.Fatal("delete carries an interface")
	}
}

func TestDecodeSkipsOtherTablesAndClones(t *testing.T) {
	r := Route{Dst: netip.MustParsePrefix("10.65.0.5/32"), Type: TypeUnicast, Protocol: 77, LinkIndex: 2}
	msg := appendRouteOp(nil, &RouteOp{Kind: OpAdd, Route: r}, 1)
	body := slices.Clone(msg[nlmsgHdrLen:])
	body[4] = 255 // local table
	// The RTA_TABLE attribute, which felix does not send, is absent, so
	// the header's table decides.
	var got Route
	if decodeRoute(body, &got) {
		t.Error("local-table route decoded")
	}
	body = slices.Clone(msg[nlmsgHdrLen:])
	native.PutUint32(body[8:], unix.RTM_F_CLONED)
	if decodeRoute(body, &got) {
		t.Error("cloned route decoded")
	}
	if decodeRoute(body[:5], &got) {
		t.Error("short message decoded")
	}
}

func TestNextMsgRejectsBadLengths(t *testing.T) {
	msg := appendHeader(nil, unix.NLMSG_DONE, 0, 1)
	finishMsg(msg, 0)
	native.PutUint32(msg, 1000)
	if _, _, err := nextMsg(msg); err == nil {
		t.Fatal("overlong length accepted")
	}
	if _, _, err := nextMsg(msg[:8]); err == nil {
		t.Fatal("short buffer accepted")
	}
}

type flakyLinks struct {
	Kernel
	fails []error
	calls int
}

func (f *flakyLinks) LinkList() ([]Link, error) {
	f.calls++
	if len(f.fails) > 0 {
		err := f.fails[0]
		f.fails = f.fails[1:]
		return []Link{{}}, err
	}
	return []Link{{}, {}}, nil
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name      string
		fails     []error
		wantCalls int
		wantErr   error
	}{
		{"clean", nil, 1, nil},
		{"interrupted twice", []error{ErrDumpInterrupted, ErrDumpInterrupted}, 3, nil},
		{"EINTR", []error{unix.EINTR}, 2, nil},
		{"always interrupted", []error{ErrDumpInterrupted, ErrDumpInterrupted, ErrDumpInterrupted}, 3, ErrDumpInterrupted},
		{"hard error is not retried", []error{unix.EPERM}, 1, unix.EPERM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &flakyLinks{fails: slices.Clone(tc.fails)}
			links, err := WithDumpRetry(f, 3).LinkList()
			if f.calls != tc.wantCalls {
				t.Errorf("LinkList: %d calls, want %d", f.calls, tc.wantCalls)
			}
			if tc.wantErr == nil && (err != nil || len(links) != 2) {
				t.Errorf("got %d links, %v", len(links), err)
			}
			if tc.wantErr != nil && (!errors.Is(err, tc.wantErr) || links != nil) {
				t.Errorf("got %v (%d links), want %v and none", err, len(links), tc.wantErr)
			}
			// RetryDump is the same loop for streamed dumps.
			fails, calls := slices.Clone(tc.fails), 0
			err = RetryDump(3, "test", func() error {
				calls++
				if len(fails) > 0 {
					e := fails[0]
					fails = fails[1:]
					return e
				}
				return nil
			})
			if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) && (err != nil || tc.wantErr != nil) {
				t.Errorf("RetryDump: %d calls, err %v", calls, err)
			}
		})
	}
	// Wrapping twice does not multiply attempts.
	k := WithDumpRetry(&flakyLinks{}, 3)
	if WithDumpRetry(k, 3) != k {
		t.Error("double wrap")
	}
}
