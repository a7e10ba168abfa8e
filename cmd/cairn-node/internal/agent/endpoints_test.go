package agent

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestEndpointStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := openEndpointStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := endpointRecord{ContainerID: "abc123", IfName: "eth0", HostIface: "crn0123456789a", Addresses: []netip.Prefix{netip.MustParsePrefix("10.244.0.5/32")}}
	if err := s.put(r); err != nil {
		t.Fatal(err)
	}
	if err := s.put(endpointRecord{ContainerID: "gone", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.remove(attachment{"gone", "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.remove(attachment{"never-there", "eth0"}); err != nil {
		t.Errorf("removing an unknown record must succeed: %v", err)
	}
	// A damaged file is set aside, not fatal.
	if err := os.WriteFile(filepath.Join(dir, "bad.eth0.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := openEndpointStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := again.all()
	for i := range got {
		got[i].modTime = time.Time{} // the file's, not part of the record
	}
	if !reflect.DeepEqual(got, []endpointRecord{r}) {
		t.Errorf("after reopen: %+v, want only %+v", got, r)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.eth0.json.corrupt")); err != nil {
		t.Errorf("corrupt record not set aside: %v", err)
	}
}

func TestValidateAttachment(t *testing.T) {
	for _, tc := range []struct {
		id, ifname string
		ok         bool
	}{
		{"abc", "eth0", true},
		{"../../etc", "eth0", false},
		{"abc", "eth0/../x", false},
		{"", "eth0", false},
		{"abc", "", false},
		{"abc", "a-very-long-interface", false},
		{"abc", "..", false},
	} {
		if err := validateAttachment(tc.id, tc.ifname); (err == nil) != tc.ok {
			t.Errorf("validateAttachment(%q, %q) = %v, want ok=%v", tc.id, tc.ifname, err, tc.ok)
		}
	}
}

// TestEndpointStoreReadsOlderAgentsRecords: records named the old way
// ("<id>.<ifname>.json", no Seq, no handle ID) are read, renamed to
// today's names keeping their time (which orders them), and released
// through the legacy handle ID.
func TestEndpointStoreReadsOlderAgentsRecords(t *testing.T) {
	dir := t.TempDir()
	older, newer := time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	for _, f := range []struct {
		name, body string
		at         time.Time
	}{
		{"old.eth0.json", `{"containerID":"old","ifname":"eth0","hostIface":"crnweb","addresses":["10.244.0.5/32"]}`, older},
		{"New.x.eth0.json", `{"containerID":"New.x","ifname":"eth0","hostIface":"crnweb","addresses":["10.244.0.6/32"]}`, newer},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.at, f.at); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 2; round++ { // renamed, then read back renamed
		s, err := openEndpointStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		if len(files) != 2 || filepath.Base(files[0]) != "New.x@eth0.json" || filepath.Base(files[1]) != "old@eth0.json" {
			t.Errorf("round %d: files %v, want today's names", round, files)
		}
		holders := interfaceHolders(s.all())
		if len(holders) != 1 || holders[0].ContainerID != "New.x" {
			t.Errorf("round %d: crnweb's holder is %+v, want the newer record New.x", round, holders)
		}
		if r, _ := s.get(attachment{"New.x", "eth0"}); r.handleID() != "new.x.eth0" {
			t.Errorf("round %d: handle of an old record %q, want the legacy ID", round, r.handleID())
		}
	}
}

func TestInterfaceHolders(t *testing.T) {
	at := time.Now()
	rec := func(id, iface string, seq uint64, mod time.Time) endpointRecord {
		return endpointRecord{ContainerID: id, IfName: "eth0", HostIface: iface, Seq: seq, modTime: mod}
	}
	for _, tc := range []struct {
		name string
		recs []endpointRecord
		want []string // container IDs, by interface
	}{
		{"one per interface", []endpointRecord{rec("a", "crn1", 1, at), rec("b", "crn2", 2, at)}, []string{"a", "b"}},
		{"higher Seq wins", []endpointRecord{rec("new", "crn1", 7, at), rec("old", "crn1", 3, at.Add(time.Hour))}, []string{"new"}},
		{"a record with Seq beats one without", []endpointRecord{rec("old", "crn1", 0, at.Add(time.Hour)), rec("new", "crn1", 1, at)}, []string{"new"}},
		{"without Seq the later file wins", []endpointRecord{rec("new", "crn1", 0, at.Add(time.Minute)), rec("old", "crn1", 0, at)}, []string{"new"}},
		{"not up yet: no interface", []endpointRecord{rec("a", "", 9, at), rec("b", "crn1", 1, at)}, []string{"b"}},
	} {
		var got []string
		for _, r := range interfaceHolders(tc.recs) {
			got = append(got, r.ContainerID)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: holders %v, want %v", tc.name, got, tc.want)
		}
	}
}
