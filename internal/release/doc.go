// Package release tests what ships, as it ships: the static distlock that
// scripts/build-static makes for the container image (Dockerfile) and the
// releases (.goreleaser.yaml), that binary as a container's PID 1 in the
// image's file tree, and the deb and rpm packages. It has no code of its
// own; docs/development.md, "Releasing", says why these tests stand in for building
// the image and running GoReleaser.
package release
