package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cairn-net/cairn/internal/images"
)

// Images real nodes run, by internal/images name.
const (
	imagePause    = images.Pause
	imageWorkload = images.Workload
)

// nodeImages are the images built for real nodes.
type nodeImages []images.Image

// buildImages builds Cairn's images (internal/images) into a cache shared
// by labs, where an unchanged image is not written again.
func buildImages(ctx context.Context, repo string) (nodeImages, error) {
	cache, err := binCacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(filepath.Dir(cache), "lab-images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	imgs, err := images.Build(ctx, images.Options{OutDir: dir, RepoRoot: repo})
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	return imgs, nil
}

// useImages records the images' references for the nodes' configuration
// and pods, and their tarballs for import.
func (l *Lab) useImages(imgs nodeImages) {
	if len(imgs) == 0 {
		return
	}
	l.st.Images = map[string]string{}
	for _, img := range imgs {
		l.st.Images[img.Name] = img.Ref
		l.imageFiles = append(l.imageFiles, img.Tarball)
	}
}
