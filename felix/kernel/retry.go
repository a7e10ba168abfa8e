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

// WithDumpRetry wraps k so that LinkList is retried through RetryDump.
// RouteDump streams into its caller, which alone knows how to start over,
// so the caller wraps its whole read-back in RetryDump instead.
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

// RetryDump is felix's one retry loop for dumps: it runs dump, which must
// start its read-back from scratch each time, until it is not interrupted,
// at most attempts times.
func RetryDump(attempts int, what string, dump func() error) error {
	if attempts < 1 {
		attempts = DefaultDumpAttempts
	}
	var err error
	for i := 0; i < attempts; i++ {
		err = dump()
		if err == nil {
			return nil
		}
		if !Retryable(err) {
			return fmt.Errorf("dump %s: %w", what, err)
		}
	}
	return fmt.Errorf("dump %s: still interrupted after %d attempts: %w", what, attempts, err)
}

// LinkList lists links, retrying interrupted dumps.
func (r *retrying) LinkList() ([]Link, error) {
	var links []Link
	err := RetryDump(r.attempts, "links", func() error {
		var err error
		links, err = r.Kernel.LinkList()
		return err
	})
	if err != nil {
		return nil, err
	}
	return links, nil
}
