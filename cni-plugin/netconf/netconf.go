package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
)

// Family is an IP address family an attachment gets an address in.
type Family int

// The families a netconf may ask for in "ipFamilies".
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "ipv4" or "ipv6", as the netconf spells them.
func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Defaults and limits of the fields the plugin reads.
const (
	// DefaultAgentTimeout bounds the agent calls that may write to the API
	// server, unless "agentTimeoutSeconds" says otherwise.
	DefaultAgentTimeout = 30 * time.Second
	// QueryTimeout bounds the read-only agent calls (Check, Status); they
	// touch no API server, so waiting longer only hides a stuck agent.
	QueryTimeout    = 5 * time.Second
	maxAgentTimeout = 10 * time.Minute
	maxSocketPath   = 107 // sun_path holds 108 bytes with the NUL
	minMTU          = 68
	maxMTU          = 65535
)

// Config is a validated network configuration.
type Config struct {
	CNIVersion string
	Name       string
	// AgentSocket is the absolute path of the agent's unix socket.
	AgentSocket string
	// Families lists the families to allocate, in order, without duplicates.
	Families []Family
	// PoolHint optionally names the IPPool to allocate from.
	PoolHint string
	// MTU of both veth ends; 0 keeps the kernel's default.
	MTU int
	// AgentTimeout bounds Allocate, EndpointUp, Release and GC.
	AgentTimeout time.Duration
	// LogLevel is the level of the plugin's stderr log.
	LogLevel slog.Level
	// DNS is returned in the ADD result as configured; empty means none.
	DNS types.DNS
	// PrevResult is set when the runtime passed one (CHECK, DEL).
	PrevResult types.Result
	// ValidAttachments is set for GC.
	ValidAttachments []types.GCAttachment
}

// rawConf is the JSON shape of the netconf; unknown keys are ignored, as
// runtimes add their own (runtimeConfig, capabilities...).
type rawConf struct {
	types.PluginConf
	AgentSocket         string   `json:"agentSocket,omitempty"`
	IPFamilies          []string `json:"ipFamilies,omitempty"`
	IPPool              string   `json:"ipPool,omitempty"`
	MTU                 int      `json:"mtu,omitempty"`
	AgentTimeoutSeconds int      `json:"agentTimeoutSeconds,omitempty"`
	LogLevel            string   `json:"logLevel,omitempty"`
}

// Parse decodes and validates the netconf from stdin. Errors are
// *DecodeError or *FieldError.
func Parse(stdin []byte) (*Config, error) {
	var raw rawConf
	if err := json.Unmarshal(stdin, &raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return nil, &FieldError{Field: typeErr.Field, Problem: "must be " + jsonKind(typeErr.Type.Kind())}
		}
		return nil, &DecodeError{Err: err}
	}
	cfg := &Config{
		CNIVersion:       raw.CNIVersion,
		Name:             raw.Name,
		DNS:              raw.DNS,
		ValidAttachments: raw.ValidAttachments,
	}
	steps := []func(*rawConf, *Config) error{
		parseIdentity, parseAgent, parseFamilies, parsePool, parseMTU, parseLogLevel, parsePrevResult,
	}
	for _, step := range steps {
		if err := step(&raw, cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// jsonKind names a Go kind the way a JSON author thinks of it.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	default:
		return "a number"
	}
}

func parseIdentity(raw *rawConf, _ *Config) error {
	if raw.CNIVersion == "" {
		return &FieldError{Field: "cniVersion", Problem: "is required"}
	}
	if _, _, _, err := version.ParseVersion(raw.CNIVersion); err != nil {
		return &FieldError{Field: "cniVersion", Problem: fmt.Sprintf("is not a version: %v", err)}
	}
	if raw.Name == "" {
		return &FieldError{Field: "name", Problem: "is required"}
	}
	return nil
}

func parseAgent(raw *rawConf, cfg *Config) error {
	cfg.AgentSocket = agentv1.DefaultSocketPath
	if raw.AgentSocket != "" {
		if !filepath.IsAbs(raw.AgentSocket) || filepath.Clean(raw.AgentSocket) != raw.AgentSocket {
			return &FieldError{Field: "agentSocket", Problem: "must be a clean absolute path"}
		}
		if len(raw.AgentSocket) > maxSocketPath {
			return &FieldError{Field: "agentSocket", Problem: fmt.Sprintf("is longer than a unix socket path may be (%d bytes)", maxSocketPath)}
		}
		cfg.AgentSocket = raw.AgentSocket
	}
	cfg.AgentTimeout = DefaultAgentTimeout
	if raw.AgentTimeoutSeconds != 0 {
		d := time.Duration(raw.AgentTimeoutSeconds) * time.Second
		if d < time.Second || d > maxAgentTimeout {
			return &FieldError{Field: "agentTimeoutSeconds", Problem: fmt.Sprintf("must be between 1 and %d", int(maxAgentTimeout.Seconds()))}
		}
		cfg.AgentTimeout = d
	}
	return nil
}

func parseFamilies(raw *rawConf, cfg *Config) error {
	if len(raw.IPFamilies) == 0 {
		cfg.Families = []Family{IPv4}
		return nil
	}
	seen := map[Family]bool{}
	for _, s := range raw.IPFamilies {
		var f Family
		switch strings.ToLower(s) {
		case "ipv4", "v4":
			f = IPv4
		case "ipv6", "v6":
			f = IPv6
		default:
			return &FieldError{Field: "ipFamilies", Problem: fmt.Sprintf("unknown family %q (want \"ipv4\" or \"ipv6\")", s)}
		}
		if seen[f] {
			return &FieldError{Field: "ipFamilies", Problem: fmt.Sprintf("family %q listed twice", s)}
		}
		seen[f] = true
		cfg.Families = append(cfg.Families, f)
	}
	return nil
}

func parsePool(raw *rawConf, cfg *Config) error {
	// A pool is a Kubernetes object name: a DNS-1123 subdomain.
	if raw.IPPool != "" && !isDNSSubdomain(raw.IPPool) {
		return &FieldError{Field: "ipPool", Problem: "must be an IPPool name (lower-case DNS-1123 subdomain)"}
	}
	cfg.PoolHint = raw.IPPool
	return nil
}

func parseMTU(raw *rawConf, cfg *Config) error {
	if raw.MTU != 0 && (raw.MTU < minMTU || raw.MTU > maxMTU) {
		return &FieldError{Field: "mtu", Problem: fmt.Sprintf("must be between %d and %d, got %d", minMTU, maxMTU, raw.MTU)}
	}
	cfg.MTU = raw.MTU
	return nil
}

func parseLogLevel(raw *rawConf, cfg *Config) error {
	switch strings.ToLower(raw.LogLevel) {
	case "", "info":
		cfg.LogLevel = slog.LevelInfo
	case "debug":
		cfg.LogLevel = slog.LevelDebug
	case "warn", "warning":
		cfg.LogLevel = slog.LevelWarn
	case "error":
		cfg.LogLevel = slog.LevelError
	default:
		return &FieldError{Field: "logLevel", Problem: fmt.Sprintf("unknown level %q (want debug, info, warn or error)", raw.LogLevel)}
	}
	return nil
}

func parsePrevResult(raw *rawConf, cfg *Config) error {
	if raw.RawPrevResult == nil {
		return nil
	}
	if err := version.ParsePrevResult(&raw.PluginConf); err != nil {
		return &FieldError{Field: "prevResult", Problem: err.Error()}
	}
	cfg.PrevResult = raw.PrevResult
	return nil
}
