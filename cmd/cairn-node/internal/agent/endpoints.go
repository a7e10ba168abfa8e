package agent

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/cairn-net/cairn/ipam"
)

// attachment names one CNI attachment exactly as the runtime names it:
// container ID and interface name, compared byte for byte (no case
// folding) everywhere in the agent.
type attachment struct{ ContainerID, IfName string }

// String is "<container ID>/<ifname>", unambiguous because '/' occurs in
// neither. felix gets it as the owner of the attachment's endpoint.
func (a attachment) String() string { return a.ContainerID + "/" + a.IfName }

func compareAttachments(a, b attachment) int {
	return cmp.Or(cmp.Compare(a.ContainerID, b.ContainerID), cmp.Compare(a.IfName, b.IfName))
}

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
	// Network is the CNI network the attachment belongs to; a GC touches
	// only its own network's records. Empty in records written before it
	// was recorded: no GC releases those (DEL still does).
	Network string `json:"network,omitempty"`
	// HandleID is the IPAM handle holding the addresses. Empty in records
	// written before handle IDs named the node: those used
	// ipam.LegacyHandleID.
	HandleID string `json:"handleID,omitempty"`
	// Seq orders the records that were given a host interface: of several
	// naming one interface (a pod's old and new sandboxes), the highest is
	// the one whose routes felix must have. Zero in records written before
	// it existed; the file's modification time orders those.
	Seq uint64 `json:"seq,omitempty"`

	// modTime is the record file's, as read at start.
	modTime time.Time
}

func (r endpointRecord) attachment() attachment { return attachment{r.ContainerID, r.IfName} }

// handleID is the IPAM handle that holds the record's addresses.
func (r endpointRecord) handleID() string {
	if r.HandleID != "" {
		return r.HandleID
	}
	return ipam.LegacyHandleID(r.ContainerID, r.IfName)
}

// newer reports whether a took its host interface after b did.
func newer(a, b endpointRecord) bool {
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	if !a.modTime.Equal(b.modTime) {
		return a.modTime.After(b.modTime)
	}
	return compareAttachments(a.attachment(), b.attachment()) > 0 // any fixed order
}

// interfaceHolders returns, of the records that name a host interface, the
// newest per interface, sorted by interface: the endpoints felix must
// have. Older ones belong to sandboxes replaced since; their release must
// not touch the interface.
func interfaceHolders(recs []endpointRecord) []endpointRecord {
	byIface := map[string]endpointRecord{}
	for _, r := range recs {
		if r.HostIface == "" { // allocated, but ADD never finished
			continue
		}
		if cur, ok := byIface[r.HostIface]; !ok || newer(r, cur) {
			byIface[r.HostIface] = r
		}
	}
	out := make([]endpointRecord, 0, len(byIface))
	for _, r := range byIface {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b endpointRecord) int { return cmp.Compare(a.HostIface, b.HostIface) })
	return out
}

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

// maxFileName is the longest file name Linux file systems take (NAME_MAX).
const maxFileName = 255

// recordFile names an attachment's record file: "<container ID>@<ifname>
// .json" ('@' occurs in neither, so two attachments never share a name),
// or, when that and its ".tmp" would not fit in a file name, "h-" and a
// hash of the attachment. The record inside holds the real IDs.
func recordFile(a attachment) string {
	name := a.ContainerID + "@" + a.IfName + ".json"
	if len(name)+len(".tmp") <= maxFileName {
		return name
	}
	sum := sha256.Sum256([]byte(a.String()))
	return "h-" + hex.EncodeToString(sum[:]) + ".json"
}

// endpointStore keeps one JSON file per attachment in a directory that
// survives agent restarts (a hostPath in the DaemonSet). Writes go to a
// temporary file renamed into place, so a crash never leaves half a record.
type endpointStore struct {
	dir string
	mu  sync.Mutex
	mem map[attachment]endpointRecord
	seq uint64 // highest Seq handed out or read
}

func openEndpointStore(dir string) (*endpointStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create endpoint state directory %s: %w", dir, err)
	}
	s := &endpointStore{dir: dir, mem: map[attachment]endpointRecord{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list endpoint records: %w", err)
	}
	for _, f := range files {
		r, ok, err := readRecord(f)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		// Records of older agents were named "<id>.<ifname>.json", which
		// overflows for long IDs: they move to today's name.
		if filepath.Base(f) != recordFile(r.attachment()) {
			if err := s.write(r); err != nil {
				return nil, err
			}
			// The time orders records without Seq: it moves along.
			if err := os.Chtimes(s.path(r.attachment()), r.modTime, r.modTime); err != nil {
				return nil, fmt.Errorf("keep the time of endpoint record %s: %w", f, err)
			}
			if err := os.Remove(f); err != nil {
				return nil, fmt.Errorf("remove endpoint record %s after renaming it: %w", f, err)
			}
		}
		s.mem[r.attachment()] = r
		s.seq = max(s.seq, r.Seq)
	}
	return s, nil
}

// readRecord reads one record file. A damaged one is set aside and
// reported as not ok: it must not stop the agent, and the pod's route
// comes back when the runtime re-checks it.
func readRecord(f string) (endpointRecord, bool, error) {
	var r endpointRecord
	data, err := os.ReadFile(f)
	if err != nil {
		return r, false, fmt.Errorf("read endpoint record %s: %w", f, err)
	}
	if err := json.Unmarshal(data, &r); err != nil || validateAttachment(r.ContainerID, r.IfName) != nil {
		_ = os.Rename(f, f+".corrupt")
		return r, false, nil
	}
	if fi, err := os.Stat(f); err == nil {
		r.modTime = fi.ModTime()
	}
	return r, true, nil
}

func (s *endpointStore) path(a attachment) string { return filepath.Join(s.dir, recordFile(a)) }

// write stores r's file; s.mu must be held, or s not shared yet.
func (s *endpointStore) write(r endpointRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode endpoint record: %w", err)
	}
	a := r.attachment()
	tmp := s.path(a) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write endpoint record of %s: %w", a, err)
	}
	if err := os.Rename(tmp, s.path(a)); err != nil {
		return fmt.Errorf("commit endpoint record of %s: %w", a, err)
	}
	return nil
}

func (s *endpointStore) put(r endpointRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(r); err != nil {
		return err
	}
	s.mem[r.attachment()] = r
	return nil
}

// bind records that r's addresses are routed to hostIface from now on: r
// becomes the newest record naming that interface.
func (s *endpointStore) bind(r endpointRecord, hostIface string) (endpointRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.HostIface, r.Seq = hostIface, s.seq+1
	if err := s.write(r); err != nil {
		return r, err
	}
	s.seq = r.Seq
	s.mem[r.attachment()] = r
	return r, nil
}

func (s *endpointStore) get(a attachment) (endpointRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.mem[a]
	return r, ok
}

func (s *endpointStore) remove(a attachment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path(a)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove endpoint record of %s: %w", a, err)
	}
	delete(s.mem, a)
	return nil
}

func (s *endpointStore) all() []endpointRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]endpointRecord, 0, len(s.mem))
	for _, r := range s.mem {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b endpointRecord) int { return compareAttachments(a.attachment(), b.attachment()) })
	return out
}
