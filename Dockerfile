# syntax=docker/dockerfile:1
#
# distlock's container image: the static distlock binary, as /distlock, and
# the CA certificates it needs to reach etcd over https. Nothing else: no
# shell, no libc, no /etc/passwd. distlock needs none of them; its watchdog
# runs as distlock itself where there is no /bin/sh.
#
#   docker build --build-arg VERSION=v1.2.3 -t distlock .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/distlock:TAG .
#
# The build stage runs on the builder's own platform and cross-compiles:
# without cgo, Go builds for any GOOS/GOARCH, so no emulation is needed.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# scripts/build-static holds the flags (static, -trimpath, -s -w), for this
# image and for the releases alike.
# --build-arg VERSION=v1.2.3 is what --version prints (.git is not copied).
ARG TARGETOS TARGETARCH VERSION
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH DISTLOCK_VERSION=$VERSION scripts/build-static /out/distlock

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/distlock /distlock
# A user by number needs no /etc/passwd. An image that copies /distlock
# out of this one does not inherit it.
USER 65532:65532
ENTRYPOINT ["/distlock"]
