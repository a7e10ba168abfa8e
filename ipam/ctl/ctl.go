// Package ctl is the "cairnctl ipam" command: show, check and release,
// on top of package audit. It parses arguments and prints; it holds no
// IPAM logic of its own.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/audit"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitProblems = 1 // check found problems, or release left some
	ExitError    = 2 // usage or store error
)

// Usage is the help text.
const Usage = `usage: cairnctl ipam <command> [flags]

commands:
  show [-o table|json] [--addresses]   pools, blocks and owners; every allocation with --addresses
  check [-o text|json]                 allocations without handle, handles without allocations,
                                       duplicate addresses, blocks without affinity, stale claims;
                                       exits 1 when any is found
  release ADDR...                      release addresses, whoever holds them
  release --report FILE|-              repair what a "check -o json" report found; each repair
                                       applies only if the object is still as the check saw it
`

// Run runs "cairnctl ipam" with args (after "ipam") and returns the exit
// code.
func Run(ctx context.Context, store ipam.Store, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return ExitError
	}
	return runWith(ctx, &cmd{store: store, out: stdout, errw: stderr, stdin: os.Stdin}, args)
}

func runWith(ctx context.Context, c *cmd, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.errw, Usage)
		return ExitError
	}
	stdout, stderr := c.out, c.errw
	var err error
	code := ExitOK
	switch args[0] {
	case "show":
		err = c.show(ctx, args[1:])
	case "check":
		code, err = c.check(ctx, args[1:])
	case "release":
		code, err = c.release(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, Usage)
		return ExitOK
	default:
		err = fmt.Errorf("unknown command %q", args[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "cairnctl ipam %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(stderr, Usage)
		}
		return ExitError
	}
	return code
}

var errUsage = errors.New("bad usage")

type cmd struct {
	store ipam.Store
	out   io.Writer
	errw  io.Writer
	stdin io.Reader
}

func (c *cmd) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.errw)
	return fs
}

func (c *cmd) show(ctx context.Context, args []string) error {
	fs := c.flags("show")
	format := fs.String("o", "table", "output format: table or json")
	addrs := fs.Bool("addresses", false, "list every allocation")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	snap, err := audit.Read(ctx, c.store)
	if err != nil {
		return err
	}
	switch {
	case *format == "json":
		return c.json(snap)
	case *format != "table":
		return fmt.Errorf("%w: -o %s", errUsage, *format)
	}
	if err := snap.Show(c.out); err != nil {
		return err
	}
	if *addrs {
		fmt.Fprintln(c.out)
		for _, h := range snap.Addresses() {
			fmt.Fprintf(c.out, "%s\thandle=%s seq=%d node=%s pod=%s/%s\n", h.Addr, h.Handle, h.Sequence, h.Node, h.Namespace, h.Pod)
		}
	}
	return nil
}

func (c *cmd) check(ctx context.Context, args []string) (int, error) {
	fs := c.flags("check")
	format := fs.String("o", "text", "output format: text or json")
	if err := fs.Parse(args); err != nil {
		return ExitError, fmt.Errorf("%w: %w", errUsage, err)
	}
	r, err := audit.Check(ctx, c.store)
	if err != nil {
		return ExitError, err
	}
	switch *format {
	case "json":
		if err := c.json(r); err != nil {
			return ExitError, err
		}
	case "text":
		printReport(c.out, r)
	default:
		return ExitError, fmt.Errorf("%w: -o %s", errUsage, *format)
	}
	if r.Problems() > 0 {
		return ExitProblems, nil
	}
	return ExitOK, nil
}

func (c *cmd) release(ctx context.Context, args []string) (int, error) {
	fs := c.flags("release")
	report := fs.String("report", "", `a "check -o json" report to repair ("-" reads standard input)`)
	if err := fs.Parse(args); err != nil {
		return ExitError, fmt.Errorf("%w: %w", errUsage, err)
	}
	if (*report == "") == (fs.NArg() == 0) {
		return ExitError, fmt.Errorf("%w: give addresses or --report, not both", errUsage)
	}
	var out *audit.Outcome
	var err error
	if *report != "" {
		r, rerr := c.readReport(*report)
		if rerr != nil {
			return ExitError, rerr
		}
		out, err = audit.Repair(ctx, c.store, ipam.Backoff{}, r)
	} else {
		var addrs []netip.Addr
		for _, a := range fs.Args() {
			ad, perr := netip.ParseAddr(a)
			if perr != nil {
				return ExitError, fmt.Errorf("%w: %q is not an address", errUsage, a)
			}
			addrs = append(addrs, ad)
		}
		out, err = audit.ReleaseAddresses(ctx, c.store, ipam.Backoff{}, addrs)
	}
	if out != nil {
		printOutcome(c.out, out)
	}
	if err != nil {
		// Some repairs did not apply (state changed since the check, or
		// a write failed): say so, and ask for a new check.
		fmt.Fprintf(c.errw, "some releases did not apply: %v\nrun check again\n", err)
		return ExitProblems, nil
	}
	if out != nil && len(out.Skipped) > 0 {
		return ExitProblems, nil
	}
	return ExitOK, nil
}

func (c *cmd) readReport(path string) (*audit.Report, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(c.stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r audit.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse report %s: %w", path, err)
	}
	return &r, nil
}

func (c *cmd) json(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

func printReport(w io.Writer, r *audit.Report) {
	fmt.Fprintln(w, r.Summary())
	for _, o := range r.AllocationsWithoutHandle {
		fmt.Fprintf(w, "allocation without handle: %s in %s (handle %q, seq %d, pod %s/%s): %s\n", o.Addr, o.Block, o.Handle, o.Sequence, o.Namespace, o.Pod, o.Reason)
	}
	for _, h := range r.HandlesWithoutAllocations {
		fmt.Fprintf(w, "handle without allocations: %s (pod %s/%s on %s)\n", h.HandleID, h.Namespace, h.Pod, h.Node)
	}
	for _, d := range r.DuplicateAddresses {
		var hs []string
		for _, h := range d.Holders {
			hs = append(hs, fmt.Sprintf("%s in %s", h.Handle, h.Block))
		}
		fmt.Fprintf(w, "duplicate address: %s held by %s\n", d.Addr, strings.Join(hs, ", "))
	}
	for _, b := range r.BlocksWithoutAffinity {
		fmt.Fprintf(w, "block without affinity: %s (affinity %q, %d allocations)\n", b.CIDR, b.Affinity, b.Allocations)
	}
	for _, a := range r.AffinitiesWithoutBlock {
		fmt.Fprintf(w, "affinity without block: %s (node %s, %s, %s)\n", a.Name, a.Node, a.CIDR, a.State)
	}
}

func printOutcome(w io.Writer, o *audit.Outcome) {
	for _, a := range o.Released {
		fmt.Fprintf(w, "released %s\n", a)
	}
	for _, f := range o.Fixed {
		fmt.Fprintf(w, "fixed: %s\n", f)
	}
	for _, s := range o.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	if len(o.Released)+len(o.Fixed)+len(o.Skipped) == 0 {
		fmt.Fprintln(w, "nothing to release")
	}
}
