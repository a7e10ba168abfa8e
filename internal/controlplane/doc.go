// Package controlplane runs a real etcd and kube-apiserver for Cairn's
// tests and lab: pinned binaries built from the Go module proxy (see
// build/), temporary directories, free loopback ports (or fixed addresses
// inside a lab namespace), readiness, Cairn's CRDs installed and
// Established, and a complete teardown. Tests start one with
// cptest.ForTest, kept apart so that binaries do not link "testing".
package controlplane
