# The cairn image (cairn-node, cairn-cni, cairnctl and the CNI
# configuration) for those who build with Docker:
#
#   docker build -t cairn.dev/cairn:dev .
#
# internal/images builds the same image without Docker (`make images`);
# internal/images/dockerfile_test.go fails when the two differ in files,
# modes, entrypoint, user, environment or working directory. Keep the final
# stage to COPY, ENV, USER, WORKDIR, ENTRYPOINT and CMD: the test reads
# nothing else.
ARG GO_VERSION=1.26.8
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETARCH
# Static binaries: the image has no libc. -tags: internal/images.BuildTags.
RUN CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} go build -trimpath -tags grpcnotrace -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./cmd/cairn-node ./cmd/cairn-cni ./cmd/cairnctl

FROM scratch
COPY --from=build --chmod=0755 /out/cairn-node /out/cairn-cni /out/cairnctl /usr/local/bin/
COPY --chmod=0644 deploy/node/10-cairn.conflist /etc/cairn/10-cairn.conflist
ENV PATH=/usr/local/bin
# Root: cairn-node's capabilities (NET_ADMIN, NET_BIND_SERVICE) only take
# effect for uid 0, and the CNI installer writes root-owned host directories.
USER 0:0
WORKDIR /
ENTRYPOINT ["/usr/local/bin/cairn-node"]
