package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultStateDir is where the lab keeps its state, binaries, configs and
// logs unless told otherwise.
const DefaultStateDir = "/run/cairn-lab"

const (
	stateFile = "state.json"
	lockFile  = "lock"
)

// ErrNoLab means the state directory holds no lab.
var ErrNoLab = errors.New("no lab is up (no state file); run `cairn-lab up`")

// State is everything the lab created, written before each thing is
// created, so that Down can undo all of it from a fresh process.
type State struct {
	Dir string `json:"dir"`
	// RepoRoot is the checkout the binaries were built from.
	RepoRoot string `json:"repoRoot"`
	Plan     Plan   `json:"plan"`
	// Namespaces created (or about to be), in order.
	Namespaces []string `json:"namespaces"`
	// Procs are the detached daemons: routers and agents.
	Procs []Proc `json:"procs"`
	// ControlPlane is set once the API server runs.
	ControlPlane *ControlPlaneInfo `json:"controlPlane,omitempty"`
	Pods         []Pod             `json:"pods"`
	// PodSeq numbers pods per node, so a name is never reused.
	PodSeq map[string]int `json:"podSeq"`
	// AgentArgs are Options.AgentArgs, kept for restarts.
	AgentArgs []string `json:"agentArgs,omitempty"`
	// Kubelet says the nodes are real (Options.Kubelet): pods are
	// Kubernetes pods started by kubelets.
	Kubelet bool `json:"kubelet,omitempty"`
	// DaemonSet says cairn-node runs as the DaemonSet of
	// deploy/overlays/lab, not as lab processes.
	DaemonSet bool `json:"daemonSet,omitempty"`
	// Cgroups are the real nodes' cgroups, recorded before creation.
	Cgroups []string `json:"cgroups,omitempty"`
	// Images are the references of the images real nodes hold, by name
	// (internal/images).
	Images map[string]string `json:"images,omitempty"`
}

// ControlPlaneInfo says where the lab's API server is.
type ControlPlaneInfo struct {
	Dir        string `json:"dir"`
	URL        string `json:"url"`
	Kubeconfig string `json:"kubeconfig"`
}

// Pod is a pod the lab created through the CNI plugin.
type Pod struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Node      string `json:"node"`
	NS        string `json:"netns"`
	NetnsPath string `json:"netnsPath"`
	// IP is the pod's first address (IPv4 in a dual-stack lab); IPs are
	// all of them, one per family.
	IP  netip.Addr   `json:"ip"`
	IPs []netip.Addr `json:"ips,omitempty"`
	// ContainerID and UID are what the runtime gave CNI.
	ContainerID string `json:"containerID"`
	UID         string `json:"uid"`
	// Result is the CNI ADD result, handed back on DEL as prevResult.
	Result json.RawMessage `json:"result,omitempty"`
}

func (s *State) path() string { return filepath.Join(s.Dir, stateFile) }

// save writes the state atomically (temp file, then rename).
func (s *State) save() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	tmp := s.path() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	if err := os.Rename(tmp, s.path()); err != nil {
		return fmt.Errorf("replace lab state: %w", err)
	}
	return nil
}

func loadState(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoLab
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode lab state %s: %w", filepath.Join(dir, stateFile), err)
	}
	s.Dir = dir
	if s.PodSeq == nil {
		s.PodSeq = map[string]int{}
	}
	return &s, nil
}

// recordNamespace records a namespace before it is created.
func (s *State) recordNamespace(name string) error {
	s.Namespaces = append(s.Namespaces, name)
	return s.save()
}

// addProc records a started process.
func (s *State) addProc(p Proc) error {
	s.Procs = append(s.Procs, p)
	return s.save()
}

// lockDir takes an exclusive lock on the state directory, so two lab
// commands never edit the state at once. The returned func releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lab lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock lab state: %w", err)
	}
	return func() { f.Close() }, nil
}
