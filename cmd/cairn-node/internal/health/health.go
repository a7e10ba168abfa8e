// Package health answers cairn-node's liveness and readiness probes
// (/livez, /readyz): each is a list of named checks, 200 "ok" when all
// pass and 503 naming every check with its result otherwise, in the style
// of the Kubernetes API server's health endpoints. It also holds the pieces
// the agent builds its checks from: Beat for a loop that promises a next
// round by some time, and Pinger for a loop that answers calls on its own
// goroutine. It knows nothing of what the loops do.
package health

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Check is one named condition.
type Check struct {
	// Name shows in the answer: short, lower case ("felix").
	Name string
	// Check returns nil when the condition holds, else why not; it must
	// return soon after ctx ends.
	Check func(ctx context.Context) error
}

// Handler answers GET with the result of checks, run in order: 200 and
// "ok" when every one passes (?verbose lists them all anyway), else 503
// with one line per check. what names the endpoint in the last line
// ("livez"); timeout bounds all the checks of one request.
func Handler(what string, timeout time.Duration, checks []Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		var b strings.Builder
		failed := false
		for _, c := range checks {
			if err := c.Check(ctx); err != nil {
				failed = true
				fmt.Fprintf(&b, "[-]%s failed: %s\n", c.Name, oneLine(err.Error()))
			} else {
				fmt.Fprintf(&b, "[+]%s ok\n", c.Name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case failed:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%s%s check failed\n", b.String(), what)
		case r.URL.Query().Has("verbose"):
			fmt.Fprintf(w, "%s%s check passed\n", b.String(), what)
		default:
			fmt.Fprint(w, "ok")
		}
	})
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// Overdue reports a loop that promised its next round by due and has not
// made it by due+grace: it is wedged. A zero due (the loop has not
// started) is never overdue.
func Overdue(now, due time.Time, grace time.Duration) error {
	if due.IsZero() || !now.After(due.Add(grace)) {
		return nil
	}
	return fmt.Errorf("no progress for %s past when it was due", now.Sub(due).Round(time.Second))
}
