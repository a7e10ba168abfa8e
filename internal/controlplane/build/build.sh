#!/usr/bin/env bash
# Builds the pinned etcd, kube-apiserver and kubectl used by Cairn's tests
# and lab, caching the binaries outside git. A binary is rebuilt only when
# its module's pin (go.mod, go.sum, its main.go) changes: the cache key is
# their hash, leaving out go.mod's module line so that moving this folder
# does not force a rebuild. Prints the directory holding the binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}
out="$cache/controlplane"
mkdir -p "$out"
build() { # name module-dir package-dir
  local name=$1 mod=$here/$2 pkg=$3
  local key
  key=$({ grep -v '^module ' "$mod/go.mod"; cat "$mod/go.sum" "$mod/$pkg/main.go"; } | sha256sum | cut -c1-16)
  local bin="$out/$name-$key"
  if [ ! -x "$bin" ]; then
    echo "building $name (pin $key), minutes the first time..." >&2
    (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin.tmp" "./$pkg")
    mv "$bin.tmp" "$bin"
  fi
  ln -sfn "$bin" "$out/$name"
}
build etcd etcd .
build kube-apiserver kubernetes kube-apiserver
build kubectl kubernetes kubectl
echo "$out"
