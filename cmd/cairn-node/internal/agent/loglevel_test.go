package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
)

func TestLogSeverityScreenAppliesLive(t *testing.T) {
	v := new(slog.LevelVar)
	v.Set(slog.LevelInfo)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: v}))
	l := newLogLevel(v)
	cfg := func(s string) *v1.BGPConfiguration {
		return &v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.BGPConfigurationSpec{LogSeverityScreen: s}}
	}
	for _, step := range []struct {
		cfg  *v1.BGPConfiguration
		want slog.Level
	}{
		{nil, slog.LevelInfo},
		{cfg("Debug"), slog.LevelDebug},
		{cfg("Error"), slog.LevelError},
		{cfg(""), slog.LevelInfo}, // back to --log-level
		{cfg("Warning"), slog.LevelWarn},
		{nil, slog.LevelInfo}, // the configuration deleted
	} {
		l.apply(step.cfg, log)
		if got := v.Level(); got != step.want {
			t.Errorf("after %+v: level %v, want %v", step.cfg, got, step.want)
		}
	}
	if n := strings.Count(buf.String(), "log level changed"); n != 5 {
		t.Errorf("logged %d changes, want 5:\n%s", n, buf.String())
	}
	newLogLevel(nil).apply(cfg("Debug"), log) // no level to change: no panic
}
