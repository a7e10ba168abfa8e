package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-net/cairn/internal/lab"
)

// freeBlocks picks n /26 blocks of the lab's pool that no node has
// claimed, from the top of the pool down, for a router to announce as
// other nodes' blocks would arrive. A node that claims one later keeps it:
// a learned prefix never overrides a local block.
func freeBlocks(ctx context.Context, l *lab.Lab, n int) ([]netip.Prefix, error) {
	cc, err := l.CairnClient()
	if err != nil {
		return nil, err
	}
	list, err := cc.CairnV1alpha1().IPAMBlocks().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list IPAMBlocks: %w", err)
	}
	pool := netip.MustParsePrefix(lab.PoolCIDR)
	claimed := make([]netip.Prefix, 0, len(list.Items))
	for _, b := range list.Items {
		if p, err := netip.ParsePrefix(b.Spec.CIDR); err == nil {
			claimed = append(claimed, p)
		}
	}
	var out []netip.Prefix
	total := 1 << (lab.BlockSize - pool.Bits())
	for i := total - 1; i >= 0 && len(out) < n; i-- {
		p := nthBlock(pool, lab.BlockSize, i)
		free := true
		for _, c := range claimed {
			if c.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			out = append(out, p)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("only %d free blocks in %s, want %d", len(out), pool, n)
	}
	return out, nil
}

// nthBlock is the i-th prefix of length bits inside pool (IPv4).
func nthBlock(pool netip.Prefix, bits, i int) netip.Prefix {
	a := pool.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i) << (32 - bits)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits)
}

// hostRoutes splits blocks into their addresses, n /32s in all.
func hostRoutes(blocks []netip.Prefix, n int) []netip.Prefix {
	var out []netip.Prefix
	for _, b := range blocks {
		for a := b.Addr(); b.Contains(a) && len(out) < n; a = a.Next() {
			out = append(out, netip.PrefixFrom(a, 32))
		}
	}
	return out
}

// benchMark separates what the bench appends to a lab router's
// configuration from what the lab wrote.
const benchMark = "\n# cairn-bench routes\n"

// announce makes a lab's BIRD router announce exactly these prefixes of
// its own (a static protocol appended to its configuration, reloaded with
// `birdc configure`, which keeps the sessions up); nil withdraws them.
func announce(ctx context.Context, l *lab.Lab, r lab.RouterPlan, prefixes []netip.Prefix) error {
	if l.Plan().Router != lab.RouterBIRD {
		return fmt.Errorf("announcing routes needs BIRD routers, the lab has %s", l.Plan().Router)
	}
	conf := fmt.Sprintf("%s/routers/%s/bird.conf", l.StateDir(), r.Name)
	old, err := os.ReadFile(conf)
	if err != nil {
		return fmt.Errorf("read %s: %w", conf, err)
	}
	base, _, _ := strings.Cut(string(old), benchMark)
	var b strings.Builder
	b.WriteString(base)
	if len(prefixes) > 0 {
		b.WriteString(benchMark + "protocol static bench_routes {\n  ipv4;\n")
		for _, p := range prefixes {
			fmt.Fprintf(&b, "  route %s blackhole;\n", p)
		}
		b.WriteString("}\n")
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", conf, err)
	}
	out, err := l.Output(ctx, r.Name, "birdc", "configure")
	if err != nil || !strings.Contains(string(out), "onfigur") {
		return fmt.Errorf("birdc configure on %s: %v: %s", r.Name, err, out)
	}
	return nil
}

// waitRoutes waits until a namespace's main table holds a route for each
// of want.
func waitRoutes(ctx context.Context, netns string, want []netip.Prefix, timeout time.Duration) error {
	return waitRouteCount(ctx, netns, want, len(want), timeout)
}

// waitRouteCount waits until a namespace's main table holds routes for
// exactly n of the prefixes (n = 0: all gone).
func waitRouteCount(ctx context.Context, netns string, of []netip.Prefix, n int, timeout time.Duration) error {
	set := make(map[netip.Prefix]bool, len(of))
	for _, p := range of {
		set[p] = true
	}
	deadline := time.Now().Add(timeout)
	for {
		routes, err := lab.KernelRoutes(ctx, netns)
		if err != nil {
			return err
		}
		got := 0
		for _, r := range routes {
			if p, err := netip.ParsePrefix(r.Dst); err == nil && set[p] {
				got++
			} else if a, err := netip.ParseAddr(r.Dst); err == nil && set[netip.PrefixFrom(a, 32)] {
				got++ // ip prints a /32 without its length
			}
		}
		if got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has routes for %d of the %d prefixes after %v, want %d", netns, got, len(of), timeout, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
