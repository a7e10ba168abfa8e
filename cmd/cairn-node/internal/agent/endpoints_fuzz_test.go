package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// The agent's endpoint records survive its restarts on the node's disk,
// written by this or an older agent, and possibly damaged by a crash or a
// person: whatever a record file holds, opening the store must not panic
// nor fail, a record it keeps must name a valid attachment, and opening
// the directory again finds the same records.
func FuzzEndpointRecords(f *testing.F) {
	f.Add([]byte(`{"containerID":"abc","ifname":"eth0","hostIface":"crn0123456789a","addresses":["10.244.0.5/32"],"namespace":"default","pod":"web","network":"cairn","handleID":"node1/abc/eth0","seq":7}`), "abc@eth0.json")
	f.Add([]byte(`{"containerID":"abc","ifname":"eth0","addresses":["fd00::5/128"]}`), "abc.eth0.json")
	f.Add([]byte(`{"containerID":"../../etc","ifname":"eth0"}`), "x.json")
	f.Add([]byte(`{"containerID":"a","ifname":"e","seq":-1,"addresses":["bogus"]}`), "a@e.json")
	f.Add([]byte(`{`), "h-00.json")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		name = filepath.Base(name)
		if name == "." || name == "/" || len(name) > 200 || filepath.Ext(name) != ".json" {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return // not a name this file system takes
		}
		s, err := openEndpointStore(dir)
		if err != nil {
			t.Fatalf("open a store holding one damaged or odd record: %v", err)
		}
		recs := s.all()
		for _, r := range recs {
			if err := validateAttachment(r.ContainerID, r.IfName); err != nil {
				t.Fatalf("kept a record with an invalid attachment: %v", err)
			}
		}
		_ = interfaceHolders(recs)
		again, err := openEndpointStore(dir)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if len(again.all()) != len(recs) {
			t.Fatalf("reopening found %d records, first open %d", len(again.all()), len(recs))
		}
	})
}
