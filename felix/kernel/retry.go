package kernel

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrDumpInterrupted reports a netlink dump that the kernel flagged
// NLM_F_DUMP_INTR: the table changed while it was read, so the result may be
// inconsistent and the dump must be run again.
var ErrDumpInterrupted = netlink.ErrDumpInterrupted

// DefaultDumpAttempts is how many times WithDumpRetry runs a dump.
const DefaultDumpAttempts = 5

// WithDumpRetry wraps k so that every dump (RouteDump, LinkList) is retried
// when interrupted (ErrDumpInterrupted, EINTR), up to attempts times. It is
// the one place where dumps are retried; felix always wraps its Kernel.
func WithDumpRetry(k Kernel, attempts int) Kernel {
	if attempts < 1 {
		attempts = DefaultDumpAttempts
	}
	if r, ok := k.(*retrying); ok {
		return r
	}
	return &retrying{Kernel: k, attempts: attempts}
}

type retrying struct {
	Kernel
	attempts int
}

// Retryable reports whether a dump failed in a way that running it again can
// fix.
func Retryable(err error) bool {
	return errors.Is(err, ErrDumpInterrupted) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN)
}

func retryDump[T any](attempts int, what string, dump func() ([]T, error)) ([]T, error) {
	var err error
	for i := 0; i < attempts; i++ {
		var out []T
		out, err = dump()
		if err == nil {
			return out, nil
		}
		if !Retryable(err) {
			return nil, fmt.Errorf("dump %s: %w", what, err)
		}
	}
	return nil, fmt.Errorf("dump %s: still interrupted after %d attempts: %w", what, attempts, err)
}

func (r *retrying) RouteDump(family int) ([]Route, error) {
	return retryDump(r.attempts, fmt.Sprintf("IPv%d routes", family), func() ([]Route, error) {
		return r.Kernel.RouteDump(family)
	})
}

func (r *retrying) LinkList() ([]Link, error) {
	return retryDump(r.attempts, "links", r.Kernel.LinkList)
}
