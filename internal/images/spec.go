package images

import (
	"io/fs"
	"path"
)

// Registry is the registry part of every image reference. Nothing is
// pushed there: the images reach nodes as tarballs, and pods name them
// with imagePullPolicy Never.
const Registry = "cairn.dev"

// DefaultTag is the tag of images built for the lab.
const DefaultTag = "lab"

// Names of the images.
const (
	Cairn    = "cairn"
	Pause    = "pause"
	Workload = "workload"
)

// Paths inside the cairn image that the DaemonSet and the Dockerfile name.
const (
	// BinDir holds cairn-node, cairn-cni and cairnctl.
	BinDir = "/usr/local/bin"
	// ConflistPath is the CNI configuration the image carries; the
	// DaemonSet's ConfigMap normally overrides it.
	ConflistPath = "/etc/cairn/10-cairn.conflist"
)

// Spec states everything that goes into one image.
type Spec struct {
	// Name is the image's name under Registry.
	Name string
	// Files are the image's regular files; their parent directories are
	// created with mode 0755.
	Files []File
	// Config is the image's runtime configuration.
	Config Config
}

// File is one regular file of an image.
type File struct {
	// Path is absolute, inside the image.
	Path string
	// Mode holds the permission bits.
	Mode fs.FileMode
	// Source is where the content comes from.
	Source Source
}

// Source is where a file's content comes from: exactly one field is set.
type Source struct {
	// Package is a Go main package relative to the repository root
	// ("./cmd/cairn-node"), built static (CGO_ENABLED=0, -trimpath) with BuildTags.
	Package string
	// RepoFile is a file of the repository, relative to its root.
	RepoFile string
}

// Config is the part of an OCI image configuration Cairn sets.
type Config struct {
	Entrypoint []string
	Cmd        []string
	// Env entries are KEY=value.
	Env []string
	// User is numeric (uid:gid): the images have no /etc/passwd.
	User       string
	WorkingDir string
}

// Ref is the image's reference with the given tag.
func (s Spec) Ref(tag string) string { return Registry + "/" + s.Name + ":" + tag }

// Specs are Cairn's images.
func Specs() []Spec { return []Spec{CairnSpec(), PauseSpec(), WorkloadSpec()} }

// CairnSpec is the DaemonSet's image. It runs as root: cairn-node's
// capabilities (NET_ADMIN, NET_BIND_SERVICE) only take effect for uid 0,
// and the CNI installer writes root-owned host directories.
func CairnSpec() Spec {
	bin := func(name string) File {
		return File{Path: path.Join(BinDir, name), Mode: 0o755, Source: Source{Package: "./cmd/" + name}}
	}
	return Spec{
		Name: Cairn,
		Files: []File{
			bin("cairn-node"),
			bin("cairn-cni"),
			bin("cairnctl"),
			{Path: ConflistPath, Mode: 0o644, Source: Source{RepoFile: "deploy/node/10-cairn.conflist"}},
		},
		Config: Config{
			Entrypoint: []string{path.Join(BinDir, "cairn-node")},
			Env:        []string{"PATH=" + BinDir},
			User:       "0:0",
			WorkingDir: "/",
		},
	}
}

// PauseSpec is the sandbox image: it holds a pod's namespaces open. Like
// Kubernetes' own pause image it runs as the unprivileged 65535.
func PauseSpec() Spec {
	return Spec{
		Name:  Pause,
		Files: []File{{Path: "/pause", Mode: 0o755, Source: Source{Package: "./internal/images/pause"}}},
		Config: Config{
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
			WorkingDir: "/",
		},
	}
}

// WorkloadSpec is the test workload (internal/workload): by default it
// answers TCP and UDP on port 7000 and HTTP on 8080; "probe" reaches
// another. It runs as root so that tests may also bind ports below 1024.
func WorkloadSpec() Spec {
	return Spec{
		Name:  Workload,
		Files: []File{{Path: "/workload", Mode: 0o755, Source: Source{Package: "./internal/workload/cmd/workload"}}},
		Config: Config{
			Entrypoint: []string{"/workload"},
			Cmd:        []string{"serve"},
			User:       "0:0",
			WorkingDir: "/",
		},
	}
}
