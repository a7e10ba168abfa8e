package view

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-net/cairn/ipam/usage"
)

// PrintNode writes a node's state as tables.
func PrintNode(w io.Writer, n Node) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	ready := "yes"
	if !n.Ready {
		ready = "no: " + n.NotReady
	}
	fmt.Fprintf(tw, "Node:\t%s\n", n.Node)
	fmt.Fprintf(tw, "Source:\t%s\n", sourceText(n))
	if n.Address != "" {
		fmt.Fprintf(tw, "Address:\t%s AS %d\n", n.Address, n.AS)
	}
	if n.AgentVersion != "" {
		fmt.Fprintf(tw, "Agent:\t%s\n", n.AgentVersion)
	}
	fmt.Fprintf(tw, "Ready:\t%s\n", ready)
	if n.LastError != "" {
		fmt.Fprintf(tw, "Last error:\t%s\n", n.LastError)
	}
	fmt.Fprintf(tw, "Routes:\t%s endpoint, %s blackhole, %s learned installed, %d learned refused\n",
		count(n.Routes.Endpoint), count(n.Routes.Blackhole), count(n.Routes.Learned), n.Routes.Refused)
	fmt.Fprintf(tw, "Blocks:\t%s\n", orNone(strings.Join(n.Blocks, " ")))
	if len(n.Borrowed) > 0 {
		fmt.Fprintf(tw, "Borrowed:\t%s\n", strings.Join(n.Borrowed, " "))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "PEER\tADDRESS\tAS\tSTATE\tUPTIME\tPREFIXES IN/ACCEPTED/OUT\tFLAPS\tLAST ERROR")
	for _, s := range n.Sessions {
		as := "-"
		if s.AS != 0 {
			as = fmt.Sprint(s.AS)
		}
		up := "-"
		if s.Established() {
			up = (time.Duration(s.UptimeSeconds) * time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d/%d\t%d\t%s\n", s.Peer, s.Address, as, s.State, up,
			s.PrefixesIn, s.Accepted, s.PrefixesOut, s.Flaps, orDash(s.LastError))
	}
	refused := 0
	for _, l := range n.Learned {
		if !l.Installed {
			refused++
		}
	}
	if refused > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "REFUSED ROUTE\tNEXT HOPS\tREASON")
		for _, l := range n.Learned {
			if !l.Installed {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Prefix, strings.Join(l.NextHops, ","), l.Reason)
			}
		}
	}
	return tw.Flush()
}

// PrintExplanation writes an explanation as lines.
func PrintExplanation(w io.Writer, e Explanation) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Route:\t%s on %s\n", e.Prefix, e.Node)
	if e.Pod != "" {
		fmt.Fprintf(tw, "Pod:\t%s on %s\n", e.Pod, orUnknown(e.PodNode))
	}
	if e.Pool != "" || e.Block != "" {
		fmt.Fprintf(tw, "Pool:\t%s, block %s of %s\n", orDash(e.Pool), orDash(e.Block), orDash(e.BlockNode))
	}
	fmt.Fprintf(tw, "Verdict:\t%s\n", e.Verdict)
	for _, r := range e.Reasons {
		fmt.Fprintf(tw, "\t- %s\n", r)
	}
	return tw.Flush()
}

// PrintPools writes the pools' usage, one line each.
func PrintPools(w io.Writer, pools []usage.Pool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tCIDR\tBLOCK\tSIZE\tBLOCKS\tALLOCATED\tUSED\tNODES")
	for _, p := range pools {
		fmt.Fprintf(tw, "%s\t%s\t/%d\t%s\t%d\t%d\t%s\t%d\n", p.Name, p.CIDR, p.BlockBits, size(p.Size), p.Blocks, p.Allocated, percent(p.Utilisation()), len(p.Nodes))
	}
	return tw.Flush()
}

// PrintPool writes one pool's usage by node.
func PrintPool(w io.Writer, p usage.Pool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Pool:\t%s\n", p.Name)
	fmt.Fprintf(tw, "CIDR:\t%s, blocks /%d\n", p.CIDR, p.BlockBits)
	fmt.Fprintf(tw, "Used:\t%d of %s addresses (%s), %d blocks holding %d addresses\n", p.Allocated, size(p.Size), percent(p.Utilisation()), p.Blocks, p.BlockAddresses)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NODE\tBLOCKS\tBLOCK ADDRESSES\tALLOCATED\tBLOCK USE\tBORROWED\tLENT")
	for _, n := range p.Nodes {
		use := "-"
		if n.BlockAddresses > 0 {
			use = percent(float64(n.Allocated-n.Borrowed) / float64(n.BlockAddresses))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\t%d\n", n.Name, n.Blocks, n.BlockAddresses, n.Allocated, use, n.Borrowed, n.Lent)
	}
	return tw.Flush()
}

func sourceText(n Node) string {
	if n.Source == SourceAgent {
		return "the node's agent (live)"
	}
	s := "CairnNodeStatus"
	if n.Updated != nil {
		s += ", updated " + n.Updated.UTC().Format(time.RFC3339)
	}
	return s
}

func count(n int) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}

func size(f float64) string {
	if f >= 1<<53 {
		return fmt.Sprintf("%.3g", f)
	}
	return fmt.Sprintf("%.0f", f)
}

func percent(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
