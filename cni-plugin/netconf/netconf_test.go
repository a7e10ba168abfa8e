package netconf

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`{"cniVersion":"1.1.0","name":"cairn","type":"cairn-cni"}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.AgentSocket != "/var/run/cairn/agent.sock" {
		t.Errorf("AgentSocket = %q", cfg.AgentSocket)
	}
	if !slices.Equal(cfg.Families, []Family{IPv4}) {
		t.Errorf("Families = %v, want [ipv4]", cfg.Families)
	}
	if cfg.AgentTimeout != DefaultAgentTimeout || cfg.MTU != 0 || cfg.LogLevel != slog.LevelInfo || cfg.PrevResult != nil {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	if len(cfg.DNS.Nameservers) != 0 {
		t.Errorf("DNS set without configuration: %+v", cfg.DNS)
	}
}

func TestParseAllFields(t *testing.T) {
	cfg, err := Parse([]byte(`{
		"cniVersion":"1.0.0","name":"cairn","type":"cairn-cni",
		"agentSocket":"/run/x/agent.sock","ipFamilies":["IPv6","ipv4"],"ipPool":"pool-a",
		"mtu":1450,"agentTimeoutSeconds":7,"logLevel":"debug",
		"dns":{"nameservers":["10.96.0.10"]},
		"runtimeConfig":{"whatever":1}
	}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Config{CNIVersion: "1.0.0", Name: "cairn", AgentSocket: "/run/x/agent.sock", PoolHint: "pool-a", MTU: 1450, AgentTimeout: 7 * time.Second, LogLevel: slog.LevelDebug}
	if cfg.CNIVersion != want.CNIVersion || cfg.Name != want.Name || cfg.AgentSocket != want.AgentSocket ||
		cfg.PoolHint != want.PoolHint || cfg.MTU != want.MTU || cfg.AgentTimeout != want.AgentTimeout || cfg.LogLevel != want.LogLevel {
		t.Errorf("got %+v", cfg)
	}
	if !slices.Equal(cfg.Families, []Family{IPv6, IPv4}) {
		t.Errorf("Families = %v, want [ipv6 ipv4] (order kept)", cfg.Families)
	}
	if !slices.Equal(cfg.DNS.Nameservers, []string{"10.96.0.10"}) {
		t.Errorf("DNS = %+v", cfg.DNS)
	}
}

func TestParsePrevResult(t *testing.T) {
	cfg, err := Parse([]byte(`{"cniVersion":"1.1.0","name":"cairn","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0"}]}}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.PrevResult == nil {
		t.Fatal("PrevResult not parsed")
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, conf, field string
	}{
		{"no version", `{"name":"cairn"}`, "cniVersion"},
		{"bad version", `{"cniVersion":"one","name":"cairn"}`, "cniVersion"},
		{"no name", `{"cniVersion":"1.1.0"}`, "name"},
		{"relative socket", `{"cniVersion":"1.1.0","name":"n","agentSocket":"run/agent.sock"}`, "agentSocket"},
		{"unclean socket", `{"cniVersion":"1.1.0","name":"n","agentSocket":"/run/../etc/agent.sock"}`, "agentSocket"},
		{"socket path too long", `{"cniVersion":"1.1.0","name":"n","agentSocket":"/` + strings.Repeat("a", 107) + `"}`, "agentSocket"},
		{"socket not a string", `{"cniVersion":"1.1.0","name":"n","agentSocket":5}`, "agentSocket"},
		{"unknown family", `{"cniVersion":"1.1.0","name":"n","ipFamilies":["ipx"]}`, "ipFamilies"},
		{"duplicate family", `{"cniVersion":"1.1.0","name":"n","ipFamilies":["ipv4","v4"]}`, "ipFamilies"},
		{"pool with slash", `{"cniVersion":"1.1.0","name":"n","ipPool":"../etc"}`, "ipPool"},
		{"pool upper case", `{"cniVersion":"1.1.0","name":"n","ipPool":"Pool"}`, "ipPool"},
		{"mtu too small", `{"cniVersion":"1.1.0","name":"n","mtu":67}`, "mtu"},
		{"mtu too large", `{"cniVersion":"1.1.0","name":"n","mtu":65536}`, "mtu"},
		{"mtu a string", `{"cniVersion":"1.1.0","name":"n","mtu":"1500"}`, "mtu"},
		{"timeout negative", `{"cniVersion":"1.1.0","name":"n","agentTimeoutSeconds":-1}`, "agentTimeoutSeconds"},
		{"timeout huge", `{"cniVersion":"1.1.0","name":"n","agentTimeoutSeconds":100000}`, "agentTimeoutSeconds"},
		{"log level", `{"cniVersion":"1.1.0","name":"n","logLevel":"loud"}`, "logLevel"},
		{"prevResult bad", `{"cniVersion":"1.1.0","name":"n","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"nope"}]}}`, "prevResult"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.conf))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error = %v, want a FieldError", err)
			}
			if fe.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tc.field, err)
			}
		})
	}
}

func TestParseNotJSON(t *testing.T) {
	_, err := Parse([]byte(`{"cniVersion":`))
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("Parse error = %v, want a DecodeError", err)
	}
}

func TestParseArgs(t *testing.T) {
	cases := []struct {
		name    string
		args    string
		want    PodInfo
		wantKey string // non-empty: an ArgsError naming this key
	}{
		{"empty", "", PodInfo{}, ""},
		{"kubelet", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1f2e-3d", PodInfo{"default", "web-0", "1f2e-3d"}, ""},
		{"dotted name", "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns.x", PodInfo{"kube-system", "coredns.x", ""}, ""},
		{"unknown keys ignored", "FOO=bar;BAZ=", PodInfo{}, ""},
		{"namespace with slash", "K8S_POD_NAMESPACE=a/b;K8S_POD_NAME=p", PodInfo{}, "K8S_POD_NAMESPACE"},
		{"name with space", "K8S_POD_NAMESPACE=a;K8S_POD_NAME=p q", PodInfo{}, "K8S_POD_NAME"},
		{"uid shell word", "K8S_POD_UID=$(reboot)", PodInfo{}, "K8S_POD_UID"},
		{"name without namespace", "K8S_POD_NAME=p", PodInfo{}, "K8S_POD_NAME"},
		{"not key=value", "K8S_POD_NAME", PodInfo{}, "K8S_POD_NAME"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseArgs(tc.args)
			if tc.wantKey != "" {
				var ae *ArgsError
				if !errors.As(err, &ae) || ae.Key != tc.wantKey {
					t.Fatalf("err = %v, want ArgsError for %s", err, tc.wantKey)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseArgs = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
