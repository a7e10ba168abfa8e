// Command etcd is a real etcd server built from the Go module proxy, pinned
// in this module's go.mod, used only by Cairn's tests and lab.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
