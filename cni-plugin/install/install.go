// Package install puts the CNI plugin and its configuration into a node's
// CNI directories, as the DaemonSet's init container does
// (`cairn-cni install`). Each file is written under a temporary name in
// its target directory, synced, and renamed over the old one, so the
// container runtime never runs half a binary or reads half a
// configuration; the binary goes first, so a configuration never names a
// plugin that is not there yet.
package install

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Defaults, as the DaemonSet mounts the host's directories and the image
// (or the ConfigMap) holds the configuration.
const (
	DefaultBinDir   = "/host/opt/cni/bin"
	DefaultConfDir  = "/host/etc/cni/net.d"
	DefaultConflist = "/etc/cairn/10-cairn.conflist"
	// PluginName is the binary's name in the CNI bin directory: the type
	// the conflist names.
	PluginName = "cairn-cni"
)

// Options say what goes where. Zero values mean the defaults.
type Options struct {
	// BinDir and ConfDir are the node's CNI directories as mounted.
	BinDir, ConfDir string
	// Plugin is the binary to install; default the running executable.
	Plugin string
	// Conflist is the configuration to install; it keeps its file name.
	Conflist string
}

// Result says what changed.
type Result struct {
	// Written lists the files replaced; files already identical are left
	// alone and not listed.
	Written []string
}

func (o Options) withDefaults() (Options, error) {
	o.BinDir = cmp.Or(o.BinDir, DefaultBinDir)
	o.ConfDir = cmp.Or(o.ConfDir, DefaultConfDir)
	o.Conflist = cmp.Or(o.Conflist, DefaultConflist)
	if o.Plugin == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("find the plugin binary: %w", err)
		}
		o.Plugin = exe
	}
	return o, nil
}

// Install installs the plugin, then the configuration, after checking
// that the configuration is a CNI network configuration list: a broken one
// would stop every pod start on the node.
func Install(o Options) (Result, error) {
	var res Result
	o, err := o.withDefaults()
	if err != nil {
		return res, err
	}
	conf, err := os.ReadFile(o.Conflist)
	if err != nil {
		return res, fmt.Errorf("read CNI configuration: %w", err)
	}
	if err := checkConflist(conf); err != nil {
		return res, fmt.Errorf("CNI configuration %s: %w", o.Conflist, err)
	}
	bin, err := os.ReadFile(o.Plugin)
	if err != nil {
		return res, fmt.Errorf("read plugin binary: %w", err)
	}
	for _, f := range []struct {
		dst  string
		data []byte
		mode fs.FileMode
	}{
		{filepath.Join(o.BinDir, PluginName), bin, 0o755},
		{filepath.Join(o.ConfDir, filepath.Base(o.Conflist)), conf, 0o644},
	} {
		written, err := replace(f.dst, f.data, f.mode)
		if err != nil {
			return res, err
		}
		if written {
			res.Written = append(res.Written, f.dst)
		}
	}
	return res, nil
}

// replace makes dst hold data with mode, atomically; it reports whether
// it wrote anything.
func replace(dst string, data []byte, mode fs.FileMode) (bool, error) {
	if cur, err := os.ReadFile(dst); err == nil && bytes.Equal(cur, data) {
		if st, err := os.Stat(dst); err == nil && st.Mode().Perm() == mode {
			return false, nil
		}
	}
	dir := filepath.Dir(dst)
	removeLeftovers(dir, filepath.Base(dst))
	tmp, err := os.CreateTemp(dir, tempPrefix(filepath.Base(dst))+"*")
	if err != nil {
		return false, fmt.Errorf("install %s: %w", dst, err)
	}
	undo := func(err error) (bool, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return false, fmt.Errorf("install %s: %w", dst, err)
	}
	if _, err := io.Copy(tmp, bytes.NewReader(data)); err != nil {
		return undo(err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return undo(err)
	}
	if err := tmp.Sync(); err != nil {
		return undo(err)
	}
	if err := tmp.Close(); err != nil {
		return undo(err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return undo(err)
	}
	// The rename itself survives a crash only once the directory is synced.
	if err := syncDir(dir); err != nil {
		return true, fmt.Errorf("install %s: %w", dst, err)
	}
	return true, nil
}

// tempPrefix starts the temporary names of name: hidden, and no CNI
// runtime loads a configuration file that does not end in .conf,
// .conflist or .json.
func tempPrefix(name string) string { return "." + name + ".tmp-" }

// removeLeftovers deletes temporary files an interrupted install left.
func removeLeftovers(dir, name string) {
	old, _ := filepath.Glob(filepath.Join(dir, tempPrefix(name)+"*"))
	for _, p := range old {
		os.Remove(p)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// checkConflist checks what a runtime needs of a network configuration
// list before it runs any plugin: a version, a name, and plugins each with
// a type. (libcni would check the same, at the price of tracing libraries
// in a binary the runtime executes for every pod.)
func checkConflist(b []byte) error {
	var l struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	switch {
	case l.CNIVersion == "":
		return errors.New("no cniVersion")
	case l.Name == "":
		return errors.New("no name")
	case len(l.Plugins) == 0:
		return errors.New("no plugins: a single network configuration, or an empty list")
	}
	for i, p := range l.Plugins {
		if p.Type == "" {
			return fmt.Errorf("plugin %d has no type", i)
		}
	}
	return nil
}
