package agent

import (
	"context"
	"log/slog"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

// logLevel applies BGPConfiguration's logSeverityScreen to the agent's
// log level while it runs; an empty field restores the level the agent
// started with (its --log-level).
type logLevel struct {
	v   *slog.LevelVar // nil: the level is not ours to change
	def slog.Level
}

func newLogLevel(v *slog.LevelVar) logLevel {
	if v == nil {
		return logLevel{}
	}
	return logLevel{v: v, def: v.Level()}
}

// severities are logSeverityScreen's values (the CRD admits no other).
var severities = map[string]slog.Level{
	"Debug": slog.LevelDebug, "Info": slog.LevelInfo, "Warning": slog.LevelWarn, "Error": slog.LevelError,
}

func (l logLevel) apply(cfg *v1.BGPConfiguration, log *slog.Logger) {
	if l.v == nil {
		return
	}
	want := l.def
	if cfg != nil {
		if lv, ok := severities[cfg.Spec.LogSeverityScreen]; ok {
			want = lv
		}
	}
	if old := l.v.Level(); old != want {
		// Said at both levels' threshold so the change is seen either way.
		log.Log(context.Background(), max(old, want), "log level changed by BGPConfiguration logSeverityScreen", "from", old, "to", want)
		l.v.Set(want)
	}
}
