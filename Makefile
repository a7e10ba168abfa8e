# Cairn's entry points. `make test` is what CI runs (.ci/run): it installs
# what it needs, builds, and runs every test tier.
SHELL := /bin/bash
GO ?= go
PKGS := ./...
# Where the pinned control-plane binaries are cached (build.sh reads the same).
export CAIRN_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/cairn
export CAIRN_CONTROLPLANE_BIN ?= $(CAIRN_CACHE)/controlplane

.PHONY: all deps controlplane test unit race lint fuzz generate bench bench-go lab build clean images

all: build

## deps: apt packages and the pinned control-plane binaries
deps:
	hack/install-deps.sh

controlplane:
	internal/controlplane/build/build.sh

build:
	$(GO) build ./...

## images: the cairn, pause and workload image tarballs, built without Docker
## (internal/images); import one with `ctr -n k8s.io images import DIR/cairn.tar`
IMAGES_DIR ?= $(CAIRN_CACHE)/images
images:
	$(GO) run ./internal/images/cmd/build-images -out $(IMAGES_DIR)

## lint: go vet and gofmt
lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## unit: the fast tier, no root, no cluster
unit:
	$(GO) test -short -count=1 $(PKGS)

## race: the unit tier under the race detector (the allocator's group
## commit, felix's reconcilers, the speaker and the agent are concurrent)
race:
	$(GO) test -race -short -count=1 $(PKGS)

## fuzz: every fuzz target for FUZZTIME each (default 10s); crashers fail
fuzz:
	GO=$(GO) hack/fuzz.sh

## test: everything, as CI runs it (root for the privileged and e2e tiers)
test: deps lint race fuzz
	$(GO) test -count=1 -timeout 80m $(PKGS)

## generate: deepcopy, clientset, listers, informers, CRD manifests, gRPC stubs
generate:
	hack/update-codegen.sh

## bench: the benchmark report, bench/results/<date>/ (bench/README.md);
## BENCH=dataplane,cni runs only those sections, BENCHFLAGS=-rounds 7 more rounds.
## It never fails on a time; it fails when a section's machinery does.
BENCH ?=
BENCHFLAGS ?=
bench: deps
	$(GO) run ./cmd/cairn-bench $(if $(BENCH),-sections $(BENCH)) $(BENCHFLAGS)

## bench-go: every package's Go benchmarks once (go test -bench), no report
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 $(PKGS)

## lab: bring up the lab, show pods talking across nodes, tear it down
lab: deps
	@if [ -d cmd/cairn-lab ]; then $(GO) run ./cmd/cairn-lab demo $(LABFLAGS); \
	else echo "The lab (cmd/cairn-lab) comes with the first-routed-packet issue; nothing to run yet."; fi
