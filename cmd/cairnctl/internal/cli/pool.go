package cli

import (
	"context"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/cmd/cairnctl/internal/view"
	"github.com/cairn-net/cairn/ipam/usage"
)

// poolList is "pool list".
func poolList(ctx context.Context, env Env, args []string) (int, error) {
	o, pos, err := parse("pool list", args, false)
	if err != nil {
		return ExitError, err
	}
	if len(pos) > 0 {
		return ExitError, fmt.Errorf("%w: pool list takes no argument", errUsage)
	}
	pools, err := readUsage(ctx, env)
	if err != nil {
		return ExitError, err
	}
	return ExitOK, emit(env.Stdout, o.output, pools, func() error { return view.PrintPools(env.Stdout, pools) })
}

// poolShow is "pool show NAME".
func poolShow(ctx context.Context, env Env, args []string) (int, error) {
	o, pos, err := parse("pool show", args, false)
	if err != nil {
		return ExitError, err
	}
	if len(pos) != 1 {
		return ExitError, fmt.Errorf("%w: pool show takes one NAME", errUsage)
	}
	pools, err := readUsage(ctx, env)
	if err != nil {
		return ExitError, err
	}
	i := slices.IndexFunc(pools, func(p usage.Pool) bool { return p.Name == pos[0] })
	if i < 0 {
		return ExitError, fmt.Errorf("IP pool %s: %w", pos[0], errNotFound)
	}
	p := pools[i]
	return ExitOK, emit(env.Stdout, o.output, p, func() error { return view.PrintPool(env.Stdout, p) })
}

// readUsage reads the pools and blocks and computes their usage.
func readUsage(ctx context.Context, env Env) ([]usage.Pool, error) {
	pools, blocks, err := readIPAM(ctx, env)
	if err != nil {
		return nil, err
	}
	return usage.Compute(pools, blocks), nil
}

func readIPAM(ctx context.Context, env Env) ([]*v1.IPPool, []*v1.IPAMBlock, error) {
	cl, err := env.Kube()
	if err != nil {
		return nil, nil, err
	}
	pl, err := cl.Cairn.CairnV1alpha1().IPPools().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list IPPools: %w", err)
	}
	bl, err := cl.Cairn.CairnV1alpha1().IPAMBlocks().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list IPAMBlocks: %w", err)
	}
	return ptrs(pl.Items), ptrs(bl.Items), nil
}

func ptrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
