// Package images builds Cairn's container images without Docker or a
// registry: each image is one layer of static Go binaries (CGO_ENABLED=0)
// and files of the repository on an empty base, written as a docker-archive
// tarball that `ctr -n k8s.io images import` and `docker load` accept.
//
// The images and their references (tag "lab" unless Options.Tag says
// otherwise):
//
//   - cairn.dev/cairn:lab: cairn-node, cairn-cni and cairnctl in
//     /usr/local/bin, the CNI configuration in /etc/cairn; the DaemonSet's
//     image. The repository's Dockerfile builds the same image with Docker;
//     a test keeps the two equal.
//   - cairn.dev/pause:lab: a static pause binary, the sandbox image of the
//     lab's kubelets.
//   - cairn.dev/workload:lab: the test workload (internal/workload), which
//     serves and probes TCP, UDP and HTTP.
//
// Specs are the single statement of what goes into each image; Build turns
// them into tarballs and skips an image whose inputs did not change.
package images
