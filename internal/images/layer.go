package images

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// epoch is every entry's modification time, so that equal inputs give
// equal layers and digests.
var epoch = time.Unix(0, 0).UTC()

// layerFile is a file of a layer with its content on disk.
type layerFile struct {
	path  string // absolute, in the image
	mode  fs.FileMode
	local string // where the content is
}

// writeLayer writes a tar of files and their parent directories, owned by
// root, in path order, with fixed times.
func writeLayer(w io.Writer, files []layerFile) error {
	tw := tar.NewWriter(w)
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b layerFile) int { return strings.Compare(a.path, b.path) })
	dirs := map[string]bool{}
	for _, f := range sorted {
		if !path.IsAbs(f.path) || path.Clean(f.path) != f.path {
			return fmt.Errorf("layer file %q: not a clean absolute path", f.path)
		}
		if err := writeParents(tw, f.path, dirs); err != nil {
			return err
		}
		if err := writeFile(tw, f); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finish layer: %w", err)
	}
	return nil
}

// writeParents adds the directories above p not added yet, top down.
func writeParents(tw *tar.Writer, p string, done map[string]bool) error {
	var missing []string
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if !done[d] {
			missing = append(missing, d)
		}
	}
	slices.Reverse(missing)
	for _, d := range missing {
		h := &tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("add directory %s to layer: %w", d, err)
		}
		done[d] = true
	}
	return nil
}

func writeFile(tw *tar.Writer, f layerFile) error {
	src, err := os.Open(f.local)
	if err != nil {
		return fmt.Errorf("add %s to layer: %w", f.path, err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("add %s to layer: %w", f.path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("add %s to layer: %s is not a regular file", f.path, f.local)
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: f.path[1:], Mode: int64(f.mode.Perm()), Size: st.Size(), ModTime: epoch}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("add %s to layer: %w", f.path, err)
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("add %s to layer: %w", f.path, err)
	}
	return nil
}
