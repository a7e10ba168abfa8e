package lab

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The reason a wait times out is the condition's last answer before the
// deadline, not the error of a check the deadline itself cut short.
func TestUntilKeepsTheReasonTheDeadlineDidNotCause(t *testing.T) {
	calls := 0
	err := until(context.Background(), 50*time.Millisecond, time.Millisecond, "the thing", func(ctx context.Context) (bool, error) {
		calls++
		if calls == 1 {
			return false, errors.New("session tor1 -> spine_v6 is not Established")
		}
		<-ctx.Done() // a command killed by the deadline
		return false, errors.New("birdc show protocols all: signal: killed")
	})
	if err == nil || !strings.Contains(err.Error(), "spine_v6 is not Established") || strings.Contains(err.Error(), "killed") {
		t.Fatalf("got %v, want the reason given before the deadline", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want it to wrap the deadline", err)
	}
}

func TestUntilReportsTheLatestReason(t *testing.T) {
	calls := 0
	err := until(context.Background(), 30*time.Millisecond, time.Millisecond, "the thing", func(ctx context.Context) (bool, error) {
		calls++
		if calls == 1 {
			return false, errors.New("first reason")
		}
		return false, errors.New("second reason")
	})
	if err == nil || !strings.Contains(err.Error(), "second reason") {
		t.Fatalf("got %v, want the latest reason", err)
	}
}

func TestUntilReportsAReasonGivenOnlyAtTheDeadline(t *testing.T) {
	err := until(context.Background(), 20*time.Millisecond, time.Millisecond, "the thing", func(ctx context.Context) (bool, error) {
		<-ctx.Done()
		return false, errors.New("only reason")
	})
	if err == nil || !strings.Contains(err.Error(), "only reason") {
		t.Fatalf("got %v, want the only reason there is", err)
	}
}
