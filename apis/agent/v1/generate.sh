#!/usr/bin/env bash
# Regenerates the Go code for agent.proto with pinned generators.
# Needs protoc (Debian: apt-get install -y protobuf-compiler) and Go; the
# generators are built from the Go module proxy into a temporary GOBIN.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12      # google.golang.org/protobuf
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2   # google.golang.org/grpc/cmd/protoc-gen-go-grpc

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v protoc >/dev/null 2>&1; then
	echo "generate.sh: protoc not found (apt-get install -y protobuf-compiler)" >&2
	exit 1
fi

gobin="$(mktemp -d)"
trap 'rm -rf "$gobin"' EXIT

# go install pkg@version ignores the enclosing module, so go.mod is untouched.
GOBIN="$gobin" GOFLAGS=-buildvcs=false go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
GOBIN="$gobin" GOFLAGS=-buildvcs=false go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

cd "$here"
protoc \
	--plugin=protoc-gen-go="$gobin/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$gobin/protoc-gen-go-grpc" \
	--proto_path=. \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	agent.proto
