#!/usr/bin/env bash
# Builds the pinned etcd and kube-apiserver used by Cairn's tests and lab,
# caching the binaries outside git. A binary is rebuilt only when its
# module's pin (go.mod, go.sum, main.go) changes: the cache key is their hash.
# Prints the directory holding both binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}
out="$cache/controlplane"
mkdir -p "$out"
for name in etcd kube-apiserver; do
  key=$(cat "$here/$name/go.mod" "$here/$name/go.sum" "$here/$name/main.go" | sha256sum | cut -c1-16)
  bin="$out/$name-$key"
  if [ ! -x "$bin" ]; then
    echo "building $name (pin $key), a few minutes the first time..." >&2
    (cd "$here/$name" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin.tmp" .)
    mv "$bin.tmp" "$bin"
  fi
  ln -sfn "$bin" "$out/$name"
done
echo "$out"
