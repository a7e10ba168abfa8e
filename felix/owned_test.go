package felix

import (
	"testing"

	"github.com/cairn-net/cairn/felix/kernel"
	"github.com/cairn-net/cairn/felix/kernel/fake"
	nftfake "github.com/cairn-net/cairn/felix/nftchain/fake"
)

func TestCountOwnRoutes(t *testing.T) {
	ours := func(dst string) kernel.Route {
		return kernel.Route{Dst: pfx(dst), Type: kernel.TypeBlackhole, Protocol: DefaultRouteProtocol, Priority: 1024}
	}
	cases := []struct {
		name   string
		routes []kernel.Route
		fail   error // of the first dump
		want   int
	}{
		{name: "a fresh kernel has none", want: 0},
		{name: "only foreign routes", routes: []kernel.Route{
			{Dst: pfx("10.0.0.0/8"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoBoot, Priority: 0},
		}, want: 0},
		{name: "ours in both families among foreign ones", routes: []kernel.Route{
			ours("10.65.0.0/26"), ours("fd00:65::/122"),
			{Dst: pfx("10.0.0.0/8"), Type: kernel.TypeUnicast, Protocol: kernel.ProtoBoot},
		}, want: 2},
		{name: "an interrupted dump is read again", routes: []kernel.Route{
			ours("10.65.0.0/26"), ours("10.65.0.64/26"), ours("fd00:65::/122"),
		}, fail: kernel.ErrDumpInterrupted, want: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := fake.New()
			for _, r := range tc.routes {
				k.PutRoute(r)
			}
			if tc.fail != nil {
				k.FailNext(fake.RouteDump, tc.fail)
			}
			f, err := New(Options{Kernel: k, Nftables: &nftfake.Conn{}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.CountOwnRoutes()
			if err != nil || got != tc.want {
				t.Errorf("CountOwnRoutes() = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
