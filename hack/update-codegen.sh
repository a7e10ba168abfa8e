#!/usr/bin/env bash
# Regenerates everything derived from apis/: deepcopy functions, the typed
# clientset, listers and informers (k8s.io/code-generator), and the CRD
# manifests under deploy/crds (sigs.k8s.io/controller-tools). The generator
# versions are pinned here; `go run mod@version` builds each from the module
# proxy without adding it to Cairn's go.mod.
#
# Usage: hack/update-codegen.sh [ROOT]   (ROOT defaults to the repo; the
# staleness test runs it on a copy and compares.)
set -euo pipefail
CODEGEN_VERSION=v0.37.2
CONTROLLER_TOOLS_VERSION=v0.23.0

root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
cd "$root"
mod=github.com/cairn-net/cairn
api=$mod/apis/cairn/v1alpha1
out=apis/client
hdr=hack/boilerplate.go.txt
gen() { go run "k8s.io/code-generator/cmd/$1@$CODEGEN_VERSION" "${@:2}"; }

gen deepcopy-gen --go-header-file "$hdr" --output-file zz_generated.deepcopy.go ./apis/cairn/v1alpha1

rm -rf "$out"
gen client-gen --go-header-file "$hdr" --clientset-name versioned \
  --input-base "" --input "$api" \
  --output-dir "$out/clientset" --output-pkg "$mod/$out/clientset"
gen lister-gen --go-header-file "$hdr" \
  --output-dir "$out/listers" --output-pkg "$mod/$out/listers" ./apis/cairn/v1alpha1
gen informer-gen --go-header-file "$hdr" \
  --versioned-clientset-package "$mod/$out/clientset/versioned" \
  --listers-package "$mod/$out/listers" \
  --output-dir "$out/informers" --output-pkg "$mod/$out/informers" ./apis/cairn/v1alpha1

rm -rf deploy/crds
go run "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION" \
  crd:crdVersions=v1 paths=./apis/... output:crd:artifacts:config=deploy/crds

# Optional parts owned by other packages regenerate themselves.
for script in apis/agent/v1/generate.sh; do
  [ -x "$script" ] && "$script"
done
exit 0
