package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// redacted replaces a secret wherever it would have appeared.
const redacted = "[redacted]"

// secrets holds the current peer passwords so that nothing this package
// emits (its logs, GoBGP's logs, errors, status) can carry one, even if a
// library starts printing its configuration one day. The speaker itself
// never formats a password; this is the second line of defence.
type secrets struct {
	mu   sync.RWMutex
	list []string
}

// set replaces the known secrets (the passwords of the desired peers plus
// the ones applied to GoBGP, which may still be in use).
func (s *secrets) set(list []string) {
	var keep []string
	for _, v := range list {
		if v != "" {
			keep = append(keep, v)
		}
	}
	sortLongestFirst(keep)
	s.mu.Lock()
	s.list = keep
	s.mu.Unlock()
}

// sortLongestFirst makes a secret that contains another one get replaced
// whole, not in pieces.
func sortLongestFirst(list []string) {
	slices.SortFunc(list, func(a, b string) int { return len(b) - len(a) })
}

// add makes more secrets known (new passwords, before they reach GoBGP).
func (s *secrets) add(list []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range list {
		if v != "" && !slices.Contains(s.list, v) {
			s.list = append(s.list, v)
		}
	}
	sortLongestFirst(s.list)
}

// redact removes every known secret from v.
func (s *secrets) redact(v string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sec := range s.list {
		if strings.Contains(v, sec) {
			v = strings.ReplaceAll(v, sec, redacted)
		}
	}
	return v
}

// redactingHandler wraps a slog.Handler and scrubs secrets from the message
// and from every string-valued attribute. It can also drop records that are
// known noise during shutdown (see speaker.stop).
type redactingHandler struct {
	next    slog.Handler
	secrets *secrets
	// quiet, when set, drops records whose message is quietMsg.
	quiet    *atomic.Bool
	quietMsg string
}

func (h *redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.quiet != nil && h.quiet.Load() && r.Message == h.quietMsg {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, h.secrets.redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.redactAttr(a)
	}
	c := *h
	c.next = h.next.WithAttrs(clean)
	return &c
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

func (h *redactingHandler) redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.secrets.redact(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]slog.Attr, len(group))
		for i, g := range group {
			clean[i] = h.redactAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	case slog.KindAny:
		// Anything else is formatted here, where a secret inside it (a
		// config struct, an error) can still be scrubbed.
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, h.secrets.redact(x.Error()))
		default:
			return slog.String(a.Key, h.secrets.redact(fmt.Sprintf("%+v", x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
