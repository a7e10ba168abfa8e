package images

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Options configure Build. Zero values mean the defaults.
type Options struct {
	// OutDir receives the tarballs (NAME.tar), the binaries (bin/) and what
	// the cache needs. Required.
	OutDir string
	// RepoRoot is Cairn's repository; default: found from the working
	// directory upwards.
	RepoRoot string
	// Tag of every reference; default DefaultTag.
	Tag string
	// Version is stamped into the binaries (-X main.version); default Tag.
	Version string
	// GOARCH of the binaries and the images; default this machine's.
	GOARCH string
	// Go is the go command; default "go".
	Go string
	// Names selects images by name; default all of Specs.
	Names []string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Image is one built image.
type Image struct {
	// Name is the Spec's name.
	Name string
	// Ref is the reference the tarball carries (cairn.dev/NAME:TAG).
	Ref string
	// Tarball is a docker-archive: `ctr -n k8s.io images import` or
	// `docker load` takes it.
	Tarball string
	// ID is the digest of the image's configuration, the image ID that
	// crictl and docker show.
	ID string
}

func (o Options) withDefaults() (Options, error) {
	if o.OutDir == "" {
		return o, errors.New("build images: no output directory")
	}
	var err error
	if o.OutDir, err = filepath.Abs(o.OutDir); err != nil {
		return o, fmt.Errorf("build images: %w", err)
	}
	if o.RepoRoot == "" {
		if o.RepoRoot, err = FindRepoRoot(); err != nil {
			return o, err
		}
	}
	o.Tag = cmp.Or(o.Tag, DefaultTag)
	o.Version = cmp.Or(o.Version, o.Tag)
	o.GOARCH = cmp.Or(o.GOARCH, runtime.GOARCH)
	o.Go = cmp.Or(o.Go, "go")
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Build builds the selected images into o.OutDir. An image whose inputs
// (binaries, files, configuration, tag) are unchanged since the last Build
// into the same directory is not written again.
func Build(ctx context.Context, o Options) ([]Image, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	specs, err := selectSpecs(o.Names)
	if err != nil {
		return nil, err
	}
	bins, err := goBuild(ctx, o, packagesOf(specs), filepath.Join(o.OutDir, "bin", o.GOARCH))
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	var out []Image
	for _, s := range specs {
		img, err := buildImage(o, s, bins)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

func selectSpecs(names []string) ([]Spec, error) {
	all := Specs()
	if len(names) == 0 {
		return all, nil
	}
	var out []Spec
	for _, n := range names {
		i := slices.IndexFunc(all, func(s Spec) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("build images: no image named %q", n)
		}
		out = append(out, all[i])
	}
	return out, nil
}

func packagesOf(specs []Spec) []string {
	var pkgs []string
	for _, s := range specs {
		for _, f := range s.Files {
			if f.Source.Package != "" && !slices.Contains(pkgs, f.Source.Package) {
				pkgs = append(pkgs, f.Source.Package)
			}
		}
	}
	return pkgs
}

// buildImage writes one image's tarball unless the one there was built
// from the same inputs.
func buildImage(o Options, s Spec, bins map[string]string) (Image, error) {
	ref := s.Ref(o.Tag)
	img := Image{Name: s.Name, Ref: ref, Tarball: filepath.Join(o.OutDir, s.Name+".tar")}
	files, err := layerFiles(o, s, bins)
	if err != nil {
		return img, err
	}
	key, err := inputKey(o, s, files)
	if err != nil {
		return img, err
	}
	stamp := img.Tarball + ".inputs"
	if id, ok := cached(img.Tarball, stamp, key); ok {
		o.Logger.Info("image up to date", "image", ref, "tarball", img.Tarball)
		img.ID = id
		return img, nil
	}
	if img.ID, err = writeImage(o, s, ref, files, img.Tarball); err != nil {
		return img, fmt.Errorf("build image %s: %w", ref, err)
	}
	if err := writeAtomic(stamp, []byte(key+"\n"+img.ID+"\n")); err != nil {
		return img, fmt.Errorf("build image %s: %w", ref, err)
	}
	o.Logger.Info("image built", "image", ref, "tarball", img.Tarball, "id", img.ID)
	return img, nil
}

// layerFiles finds each file's content on disk.
func layerFiles(o Options, s Spec, bins map[string]string) ([]layerFile, error) {
	var out []layerFile
	for _, f := range s.Files {
		lf := layerFile{path: f.Path, mode: f.Mode}
		switch {
		case f.Source.Package != "" && f.Source.RepoFile == "":
			lf.local = bins[f.Source.Package]
		case f.Source.RepoFile != "" && f.Source.Package == "":
			lf.local = filepath.Join(o.RepoRoot, filepath.FromSlash(f.Source.RepoFile))
		default:
			return nil, fmt.Errorf("image %s: file %s needs exactly one source", s.Name, f.Path)
		}
		out = append(out, lf)
	}
	return out, nil
}

// keyVersion changes when the way images are written changes, so that an
// older Build's tarballs are not taken for current ones.
const keyVersion = "cairn-images/1"

// inputKey hashes everything an image is made of.
func inputKey(o Options, s Spec, files []layerFile) (string, error) {
	h := sha256.New()
	cfg, err := json.Marshal(s.Config)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", keyVersion, s.Ref(o.Tag), o.GOARCH, cfg)
	for _, f := range files {
		sum, err := fileSHA256(f.local)
		if err != nil {
			return "", fmt.Errorf("image %s: %w", s.Name, err)
		}
		fmt.Fprintf(h, "%s %o %s\n", f.path, f.mode.Perm(), sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cached returns the image ID recorded for key when the tarball is there.
func cached(tarPath, stamp, key string) (string, bool) {
	b, err := os.ReadFile(stamp)
	if err != nil {
		return "", false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != key {
		return "", false
	}
	if _, err := os.Stat(tarPath); err != nil {
		return "", false
	}
	return lines[1], true
}

// writeImage writes the layer and the tarball, each under a temporary name
// renamed into place, and returns the image ID.
func writeImage(o Options, s Spec, ref string, files []layerFile, dst string) (string, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("parse reference: %w", err)
	}
	layerPath := filepath.Join(o.OutDir, s.Name+".layer.tar")
	if err := writeFileAtomic(layerPath, func(w io.Writer) error { return writeLayer(w, files) }); err != nil {
		return "", err
	}
	defer os.Remove(layerPath)
	layer, err := tarball.LayerFromFile(layerPath)
	if err != nil {
		return "", fmt.Errorf("read layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", fmt.Errorf("add layer: %w", err)
	}
	if img, err = configure(img, s.Config, o.GOARCH); err != nil {
		return "", err
	}
	id, err := img.ConfigName()
	if err != nil {
		return "", fmt.Errorf("image ID: %w", err)
	}
	err = writeFileAtomic(dst, func(w io.Writer) error { return tarball.Write(tag, img, w) })
	return id.String(), err
}

// configure sets the image's platform and runtime configuration, keeping
// the layers' diff IDs that AppendLayers recorded.
func configure(img v1.Image, c Config, goarch string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image configuration: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goarch
	cf.Config.Entrypoint = slices.Clone(c.Entrypoint)
	cf.Config.Cmd = slices.Clone(c.Cmd)
	cf.Config.Env = slices.Clone(c.Env)
	cf.Config.User = c.User
	cf.Config.WorkingDir = c.WorkingDir
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set image configuration: %w", err)
	}
	return img, nil
}
