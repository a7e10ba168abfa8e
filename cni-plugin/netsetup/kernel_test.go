package netsetup

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A netns path that is gone, or that a runtime has unmounted but not yet
// deleted (a plain file), counts as a gone namespace. No root needed: the
// path is rejected before any namespace is entered.
func TestGoneNetns(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "unmounted")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	k := &Kernel{Log: slog.New(slog.DiscardHandler)}
	for _, path := range []string{filepath.Join(dir, "missing"), plain} {
		if err := k.DeletePodInterface(path, "eth0"); err != nil {
			t.Errorf("DeletePodInterface(%s) = %v, want nil", path, err)
		}
		if err := k.CheckPod(path, "eth0"); !errors.Is(err, ErrNetnsNotFound) {
			t.Errorf("CheckPod(%s) = %v, want ErrNetnsNotFound", path, err)
		}
		if err := k.CreateVeth(path, Veth{HostName: "crn0", PodIfName: "eth0"}); !errors.Is(err, ErrNetnsNotFound) {
			t.Errorf("CreateVeth(%s) = %v, want ErrNetnsNotFound", path, err)
		}
	}
}
