// Command kube-apiserver is a real Kubernetes API server built from the Go
// module proxy, pinned in this module's go.mod, used only by Cairn's tests
// and lab. It lives in its own module so Cairn's go.mod stays small.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
