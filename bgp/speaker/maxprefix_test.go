package speaker

import (
	"strings"
	"testing"
	"time"
)

// A session held down says, in its LastError, that it went over its
// limit, which limit, and when it is tried again; callers classify it
// with IsMaxPrefixes.
func TestMaxPrefixDetail(t *testing.T) {
	retry := time.Date(2026, 11, 30, 7, 31, 5, 0, time.UTC)
	for _, tc := range []struct {
		limit     uint32
		want, not []string
	}{
		{limit: 1000, want: []string{"maximum prefixes exceeded (more than 1000 prefixes of one address family)", "session shut down (Cease)", "tried again at 07:31:05 UTC (idle time 20s)"}},
		{limit: 0, want: []string{"maximum prefixes exceeded: session shut down", "tried again at 07:31:05 UTC"}, not: []string{"more than"}},
	} {
		got := maxPrefixDetail(tc.limit, retry, 20*time.Second)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("limit %d: %q lacks %q", tc.limit, got, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(got, w) {
				t.Errorf("limit %d: %q has %q", tc.limit, got, w)
			}
		}
		if !IsMaxPrefixes(got) {
			t.Errorf("IsMaxPrefixes(%q) = false", got)
		}
	}
	for _, other := range []string{"", "hold timer expired", "peer de-configured: maximum prefixes exceeded"} {
		if IsMaxPrefixes(other) {
			t.Errorf("IsMaxPrefixes(%q) = true", other)
		}
	}
	if !IsMaxPrefixes(maxPrefixReason) {
		t.Errorf("GoBGP's shutdown, as translated (%q), is not classified", maxPrefixReason)
	}
}
