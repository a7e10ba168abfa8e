package kernel

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestSysctlPath(t *testing.T) {
	for _, tc := range []struct {
		dir, name, want string
	}{
		{DefaultProcSysNet, "net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward"},
		{"/host/proc/sys/net", "net/ipv4/conf/crn1/rp_filter", "/host/proc/sys/net/ipv4/conf/crn1/rp_filter"},
		{"/host/proc/sys/net", "net/ipv6/conf/all/forwarding", "/host/proc/sys/net/ipv6/conf/all/forwarding"},
		{DefaultProcSysNet, "kernel/hostname", ""},
		{DefaultProcSysNet, "net/../kernel/hostname", ""},
		{DefaultProcSysNet, "net", ""},
	} {
		got, err := sysctlPath(tc.dir, tc.name)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("sysctlPath(%q, %q) = %q, %v; want %q", tc.dir, tc.name, got, err, tc.want)
		}
	}
}

// A Netlink given another ProcSysNet reads and writes sysctls there: the
// DaemonSet's mount of the host's /proc/sys/net.
func TestNetlinkUsesProcSysNet(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ipv4", "ip_forward")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := NewNetlink(NetlinkOptions{ProcSysNet: dir})
	if err != nil {
		t.Skipf("no netlink socket here: %v", err)
	}
	defer k.Close()
	if v, err := k.ReadSysctl("net/ipv4/ip_forward"); err != nil || v != "0" {
		t.Fatalf("read: %q, %v; want \"0\" from %s", v, err, p)
	}
	if err := k.WriteSysctl("net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "1" {
		t.Fatalf("%s holds %q after the write, want \"1\"", p, b)
	}
	if _, err := k.ReadSysctl("net/ipv4/conf/crn9/rp_filter"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read of a missing sysctl: %v, want not-exist", err)
	}
}
