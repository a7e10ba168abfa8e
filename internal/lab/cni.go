package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CNI error codes the lab acts on (CNI 1.1 SPEC.md).
const (
	cniCodeTryAgainLater = 11
	cniCodeNotAvailable  = 50
	cniCodeLimited       = 51
)

// CNIError is an error result printed by the plugin.
type CNIError struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
}

func (e *CNIError) Error() string {
	if e.Details != "" {
		return fmt.Sprintf("CNI error %d: %s (%s)", e.Code, e.Msg, e.Details)
	}
	return fmt.Sprintf("CNI error %d: %s", e.Code, e.Msg)
}

// cniCall is one invocation of the plugin, with what a runtime passes.
type cniCall struct {
	Command     string
	ContainerID string
	NetnsPath   string
	PodName     string
	PodUID      string
	// PrevResult is the ADD result, given back on DEL as runtimes do.
	PrevResult json.RawMessage
}

// netconf is the network configuration a runtime would read from
// /etc/cni/net.d for the node. A node of a dual-stack lab asks for an
// address of each family.
func netconf(stateDir string, n Node, prevResult json.RawMessage) ([]byte, error) {
	conf := map[string]any{
		"cniVersion":  "1.1.0",
		"name":        "cairn",
		"type":        binCNI,
		"agentSocket": agentSocket(stateDir, n.Name),
	}
	if n.Addr6.IsValid() {
		conf["ipFamilies"] = []string{"ipv4", "ipv6"}
	}
	if len(prevResult) > 0 {
		conf["prevResult"] = prevResult
	}
	data, err := json.Marshal(conf)
	if err != nil {
		return nil, fmt.Errorf("encode netconf: %w", err)
	}
	return data, nil
}

// runCNI runs cairn-cni inside the node's namespace exactly as a container
// runtime does: CNI_* environment, netconf on stdin, result on stdout. The
// plugin's stderr log is appended to the node's cni.log.
func runCNI(ctx context.Context, stateDir string, n Node, c cniCall) ([]byte, error) {
	stdin, err := netconf(stateDir, n, c.PrevResult)
	if err != nil {
		return nil, err
	}
	bin := binDir(stateDir)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.NS, filepath.Join(bin, binCNI))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CNI_COMMAND=" + c.Command, "CNI_PATH=" + bin}
	if c.ContainerID != "" {
		cmd.Env = append(cmd.Env,
			"CNI_CONTAINERID="+c.ContainerID,
			"CNI_NETNS="+c.NetnsPath,
			"CNI_IFNAME=eth0",
			fmt.Sprintf("CNI_ARGS=K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_UID=%s", PodNamespace, c.PodName, c.PodUID),
		)
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	logPath := filepath.Join(nodeDir(stateDir, n.Name), "cni.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(logPath), err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open CNI log: %w", err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	runErr := cmd.Run()
	if runErr == nil {
		return stdout.Bytes(), nil
	}
	var cniErr CNIError
	if json.Unmarshal(stdout.Bytes(), &cniErr) == nil && cniErr.Msg != "" {
		return nil, fmt.Errorf("cairn-cni %s on %s: %w", c.Command, n.Name, &cniErr)
	}
	return nil, fmt.Errorf("cairn-cni %s on %s: %w (stdout %q, log %s)", c.Command, n.Name, runErr, strings.TrimSpace(stdout.String()), logPath)
}

// retryable reports whether a CNI failure says "not yet": the agent is not
// ready, or asks to be called again.
func retryable(err error) bool {
	var ce *CNIError
	if !errors.As(err, &ce) {
		return false
	}
	return ce.Code == cniCodeTryAgainLater || ce.Code == cniCodeNotAvailable || ce.Code == cniCodeLimited
}

// resultIPs are every address of a CNI result, in its order (IPv4 first
// as the lab's netconf asks).
func resultIPs(result []byte) ([]netip.Addr, error) {
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(result, &r); err != nil {
		return nil, fmt.Errorf("decode CNI result: %w", err)
	}
	if len(r.IPs) == 0 {
		return nil, fmt.Errorf("CNI result has no address: %s", result)
	}
	var out []netip.Addr
	for _, ip := range r.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			return nil, fmt.Errorf("CNI result address %q: %w", ip.Address, err)
		}
		out = append(out, p.Addr())
	}
	return out, nil
}
