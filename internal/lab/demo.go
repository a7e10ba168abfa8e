package lab

import (
	"context"
	"fmt"
	"io"
	"time"
)

// DemoOptions configure Demo.
type DemoOptions struct {
	Up Options
	// Keep leaves the lab up at the end.
	Keep bool
	Out  io.Writer
}

// Demo is the README's first command: it brings up a lab, shows that pods
// on different nodes reach each other (ping, and a UDP probe showing the
// receiver sees the sender's own pod address after routed hops), prints
// the status, and tears the lab down unless told to keep it.
func Demo(ctx context.Context, o DemoOptions) (err error) {
	w := o.Out
	begin := time.Now()
	l, err := Up(ctx, o.Up)
	if err != nil {
		return err
	}
	defer func() {
		if o.Keep {
			fmt.Fprintf(w, "\nThe lab stays up (state in %s). Try:\n  cairn-lab status\n  cairn-lab exec %s -- ping -c 3 <pod IP>\n  cairn-lab down\n", l.StateDir(), firstPod(l))
			return
		}
		fmt.Fprintln(w, "\nTearing the lab down.")
		if derr := Down(context.WithoutCancel(ctx), l.StateDir(), nil); derr != nil && err == nil {
			err = derr
		}
	}()
	fmt.Fprintf(w, "Lab up in %v.\n\nPod to pod across nodes (ping, then a UDP probe read in the receiving pod):\n", time.Since(begin).Round(time.Millisecond))
	if err := demoTraffic(ctx, l, w); err != nil {
		return err
	}
	st, err := l.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	st.Print(w)
	return nil
}

func demoTraffic(ctx context.Context, l *Lab, w io.Writer) error {
	pods := l.Pods()
	plan := l.Plan()
	for _, from := range pods {
		for _, to := range pods {
			if from.Node == to.Node {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := Ping(pctx, from, to.IP)
			var res ProbeResult
			if err == nil {
				res, err = Probe(pctx, from, to)
			}
			cancel()
			if err != nil {
				return fmt.Errorf("%s -> %s: %w", from.Name, to.Name, err)
			}
			a, _ := plan.Node(from.Node)
			b, _ := plan.Node(to.Node)
			nat := "no NAT"
			if res.Source != from.IP {
				nat = "NAT! source rewritten"
			}
			fmt.Fprintf(w, "  %-12s %-12s -> %-12s %-12s ping ok; receiver saw source %s (%s), TTL %d = %d routed hops (want %d)\n",
				from.Name, from.IP, to.Name, to.IP, res.Source, nat, res.TTL, res.Hops(), plan.RoutedHops(a, b))
		}
	}
	return nil
}

func firstPod(l *Lab) string {
	if pods := l.Pods(); len(pods) > 0 {
		return pods[0].Name
	}
	return "<pod>"
}
