package install

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const goodConflist = `{"cniVersion":"1.1.0","name":"cairn","plugins":[{"type":"cairn-cni","agentSocket":"/var/run/cairn/agent.sock"}]}`

// node is a fake node: its CNI directories, a plugin binary and a
// configuration to install.
type node struct {
	bin, conf, plugin, conflist string
}

func newNode(t *testing.T, conflist string) node {
	t.Helper()
	d := t.TempDir()
	n := node{bin: filepath.Join(d, "opt/cni/bin"), conf: filepath.Join(d, "etc/cni/net.d"),
		plugin: filepath.Join(d, "image/cairn-cni"), conflist: filepath.Join(d, "image/10-cairn.conflist")}
	for _, dir := range []string{n.bin, n.conf, filepath.Dir(n.plugin)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, n.plugin, "plugin v1", 0o700)
	write(t, n.conflist, conflist, 0o600)
	return n
}

func write(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func (n node) opts() Options {
	return Options{BinDir: n.bin, ConfDir: n.conf, Plugin: n.plugin, Conflist: n.conflist}
}

// want checks an installed file's content and mode.
func want(t *testing.T, p, content string, mode os.FileMode) os.FileInfo {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content || st.Mode().Perm() != mode {
		t.Errorf("%s: %q mode %o, want %q mode %o", p, b, st.Mode().Perm(), content, mode)
	}
	return st
}

func TestInstallWritesPluginThenConflist(t *testing.T) {
	n := newNode(t, goodConflist)
	res, err := Install(n.opts())
	if err != nil {
		t.Fatal(err)
	}
	bin, conf := filepath.Join(n.bin, "cairn-cni"), filepath.Join(n.conf, "10-cairn.conflist")
	if !slices.Equal(res.Written, []string{bin, conf}) {
		t.Errorf("written %v, want the plugin then the conflist", res.Written)
	}
	want(t, bin, "plugin v1", 0o755)
	want(t, conf, goodConflist, 0o644)
	assertOnly(t, n.bin, "cairn-cni")
	assertOnly(t, n.conf, "10-cairn.conflist")
}

// An unchanged install writes nothing (the files keep their inodes); a
// changed plugin replaces the old file by rename (a new inode), leaving
// no temporary file behind.
func TestInstallReplacesOnlyWhatChanged(t *testing.T) {
	n := newNode(t, goodConflist)
	if _, err := Install(n.opts()); err != nil {
		t.Fatal(err)
	}
	bin, conf := filepath.Join(n.bin, "cairn-cni"), filepath.Join(n.conf, "10-cairn.conflist")
	bin1, conf1 := want(t, bin, "plugin v1", 0o755), want(t, conf, goodConflist, 0o644)
	res, err := Install(n.opts())
	if err != nil || len(res.Written) != 0 {
		t.Fatalf("second install: wrote %v (%v), want nothing", res.Written, err)
	}
	write(t, n.plugin, "plugin v2", 0o755)
	res, err = Install(n.opts())
	if err != nil || !slices.Equal(res.Written, []string{bin}) {
		t.Fatalf("install of a new plugin: wrote %v (%v), want only the plugin", res.Written, err)
	}
	bin2 := want(t, bin, "plugin v2", 0o755)
	if os.SameFile(bin1, bin2) {
		t.Error("the new plugin was written into the old file, not renamed over it")
	}
	if !os.SameFile(conf1, want(t, conf, goodConflist, 0o644)) {
		t.Error("the unchanged conflist was rewritten")
	}
	assertOnly(t, n.bin, "cairn-cni")
}

func TestInstallRemovesLeftoversOfAnInterruptedInstall(t *testing.T) {
	n := newNode(t, goodConflist)
	write(t, filepath.Join(n.bin, ".cairn-cni.tmp-123"), "half a binary", 0o600)
	write(t, filepath.Join(n.bin, "other-plugin"), "not ours", 0o755)
	if _, err := Install(n.opts()); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, n.bin, "cairn-cni", "other-plugin")
}

func TestInstallRefusesABrokenConflistAndKeepsTheOldOne(t *testing.T) {
	for name, bad := range map[string]string{
		"not JSON":       `{"cniVersion":`,
		"no version":     `{"name":"cairn","plugins":[{"type":"cairn-cni"}]}`,
		"no name":        `{"cniVersion":"1.1.0","plugins":[{"type":"cairn-cni"}]}`,
		"single conf":    `{"cniVersion":"1.1.0","name":"cairn","type":"cairn-cni"}`,
		"untyped plugin": `{"cniVersion":"1.1.0","name":"cairn","plugins":[{"agentSocket":"/x"}]}`,
	} {
		n := newNode(t, goodConflist)
		if _, err := Install(n.opts()); err != nil {
			t.Fatal(err)
		}
		write(t, n.conflist, bad, 0o644)
		write(t, n.plugin, "plugin v2", 0o755)
		if _, err := Install(n.opts()); err == nil {
			t.Errorf("%s: installed", name)
		}
		want(t, filepath.Join(n.conf, "10-cairn.conflist"), goodConflist, 0o644)
		want(t, filepath.Join(n.bin, "cairn-cni"), "plugin v1", 0o755)
	}
}

func TestInstallFailsWhenADirectoryIsMissing(t *testing.T) {
	n := newNode(t, goodConflist)
	o := n.opts()
	o.ConfDir = filepath.Join(n.conf, "missing")
	if _, err := Install(o); err == nil {
		t.Fatal("installed into a missing directory")
	}
}

// assertOnly: dir holds exactly names.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}
