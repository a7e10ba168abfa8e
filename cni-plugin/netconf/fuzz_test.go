package netconf

import (
	"errors"
	"strings"
	"testing"
)

// The plugin's stdin and CNI_ARGS come from the runtime and, through the
// pod spec, partly from users: any bytes must give a config or a typed
// error, never a panic, and what is accepted must hold its invariants.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"cniVersion":"1.1.0","name":"cairn","type":"cairn-cni"}`,
		`{"cniVersion":"1.1.0","name":"cairn","ipFamilies":["ipv4","ipv6"],"mtu":1450,"ipPool":"default","agentTimeoutSeconds":5}`,
		`{"cniVersion":"1.1.0","name":"n","agentSocket":"/run/x/../agent.sock"}`,
		`{"cniVersion":"1.1.0","name":"n","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.1/32"}]}}`,
		`{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"abc","ifname":"eth0"}]}`,
		`{"cniVersion":1}`, `[]`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		cfg, err := Parse(stdin)
		if err != nil {
			var de *DecodeError
			var fe *FieldError
			if !errors.As(err, &de) && !errors.As(err, &fe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if cfg.Name == "" || cfg.CNIVersion == "" || len(cfg.Families) == 0 || len(cfg.Families) > 2 {
			t.Fatalf("accepted a config without name, version or families: %+v", cfg)
		}
		if !strings.HasPrefix(cfg.AgentSocket, "/") || cfg.AgentTimeout <= 0 || cfg.AgentTimeout > maxAgentTimeout {
			t.Fatalf("accepted socket %q timeout %v", cfg.AgentSocket, cfg.AgentTimeout)
		}
	})
}

func FuzzParseArgs(f *testing.F) {
	for _, seed := range []string{
		"K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=0f3c-11;IgnoreUnknown=1",
		"K8S_POD_NAMESPACE=a", "K8S_POD_NAME=../../etc", "=;;=", "K8S_POD_UID=",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseArgs(s)
		if err != nil {
			var ae *ArgsError
			if !errors.As(err, &ae) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		// What is accepted ends up in interface names, file names and
		// API objects: no separators or path elements.
		for _, v := range []string{p.Namespace, p.Name, p.UID} {
			if strings.ContainsAny(v, "/ \x00;=") || v == "." || v == ".." {
				t.Fatalf("accepted %q from %q", v, s)
			}
		}
		if (p.Namespace == "") != (p.Name == "") {
			t.Fatalf("accepted a namespace without a name: %+v", p)
		}
	})
}
