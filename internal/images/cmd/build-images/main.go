// Command build-images builds Cairn's image tarballs (internal/images)
// into a directory and prints one line per image: its reference, its
// tarball and its ID. `make images` runs it. Import a tarball on a node
// with `ctr -n k8s.io images import DIR/cairn.tar`, or `docker load -i`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cairn-net/cairn/internal/images"
)

func main() {
	var (
		o     images.Options
		names string
	)
	flag.StringVar(&o.OutDir, "out", "", "directory for the tarballs (required)")
	flag.StringVar(&o.Tag, "tag", images.DefaultTag, "tag of every image")
	flag.StringVar(&o.Version, "version", "", "version stamped into the binaries (default: the tag)")
	flag.StringVar(&o.GOARCH, "arch", "", "GOARCH of the images (default: this machine's)")
	flag.StringVar(&names, "images", "", "comma-separated names to build (default: all)")
	flag.Parse()
	if o.OutDir == "" {
		fmt.Fprintln(os.Stderr, "build-images: -out is required")
		os.Exit(2)
	}
	if names != "" {
		o.Names = strings.Split(names, ",")
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	imgs, err := images.Build(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "build-images: %v\n", err)
		os.Exit(1)
	}
	for _, img := range imgs {
		fmt.Printf("%s\t%s\t%s\n", img.Ref, img.Tarball, img.ID)
	}
}
