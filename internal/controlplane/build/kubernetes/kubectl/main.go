// Command kubectl is the real kubectl of the pinned Kubernetes release, for
// the lab (`cairn-lab kubectl`) and for reading printer columns in tests.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() {
	// kubectl prints its own errors; only the exit code is left to set.
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		os.Exit(1)
	}
}
