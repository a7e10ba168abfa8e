package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
)

// endpointRecord is what the agent must remember across its own restarts
// about one pod attachment, so felix is told about live pods before it
// reconciles and never removes their routes.
type endpointRecord struct {
	ContainerID string         `json:"containerID"`
	IfName      string         `json:"ifname"`
	HostIface   string         `json:"hostIface"`
	Addresses   []netip.Prefix `json:"addresses"`
	Namespace   string         `json:"namespace,omitempty"`
	Pod         string         `json:"pod,omitempty"`
}

func (r endpointRecord) key() string { return r.ContainerID + "." + r.IfName }

// validIDs are what the store accepts as container IDs and interface
// names; they become file names, so nothing else is let through.
var (
	validContainerID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$`)
	validIfName      = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,15}$`)
)

func validateAttachment(containerID, ifname string) error {
	if !validContainerID.MatchString(containerID) {
		return fmt.Errorf("container ID %q: want letters, digits, '_', '.', '-'", containerID)
	}
	if !validIfName.MatchString(ifname) || ifname == "." || ifname == ".." {
		return fmt.Errorf("interface name %q: want 1 to 15 letters, digits, '_', '.', '-'", ifname)
	}
	return nil
}

// endpointStore keeps one JSON file per attachment in a directory that
// survives agent restarts (a hostPath in the DaemonSet). Writes go to a
// temporary file renamed into place, so a crash never leaves half a record.
type endpointStore struct {
	dir string
	mu  sync.Mutex
	mem map[string]endpointRecord
}

func openEndpointStore(dir string) (*endpointStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create endpoint state directory %s: %w", dir, err)
	}
	s := &endpointStore{dir: dir, mem: map[string]endpointRecord{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list endpoint records: %w", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read endpoint record %s: %w", f, err)
		}
		var r endpointRecord
		if err := json.Unmarshal(data, &r); err != nil || validateAttachment(r.ContainerID, r.IfName) != nil {
			// A damaged record must not stop the agent; the pod's
			// route comes back when the runtime re-checks it.
			_ = os.Rename(f, f+".corrupt")
			continue
		}
		s.mem[r.key()] = r
	}
	return s, nil
}

func (s *endpointStore) path(key string) string { return filepath.Join(s.dir, key+".json") }

func (s *endpointStore) put(r endpointRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode endpoint record: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tmp := s.path(r.key()) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write endpoint record %s: %w", r.key(), err)
	}
	if err := os.Rename(tmp, s.path(r.key())); err != nil {
		return fmt.Errorf("commit endpoint record %s: %w", r.key(), err)
	}
	s.mem[r.key()] = r
	return nil
}

func (s *endpointStore) get(containerID, ifname string) (endpointRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.mem[containerID+"."+ifname]
	return r, ok
}

func (s *endpointStore) remove(containerID, ifname string) error {
	key := containerID + "." + ifname
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove endpoint record %s: %w", key, err)
	}
	delete(s.mem, key)
	return nil
}

func (s *endpointStore) all() []endpointRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]endpointRecord, 0, len(s.mem))
	for _, r := range s.mem {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}
