package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version, when a release build sets it (go build -ldflags "-X
// main.version=v1.2.3"), is the version --version prints, in place of the
// module's. The revision, Go and platform still come from the build
// information.
var version string

// versionText is what --version prints: the version, where the source came
// from, and what built it for which platform. info is the binary's build
// information (nil if it has none).
//
// go install github.com/tinx/distlock@v1.2.3 records the module version and
// no revision: the version names the source. go build in a git checkout
// records the revision, its commit time and whether the tree had
// uncommitted changes (and, since Go 1.24, a version made of them).
func versionText(override string, info *debug.BuildInfo) string {
	v, goVersion := override, runtime.Version()
	var revision, committed string
	var modified bool
	if info != nil {
		if v == "" {
			v = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				committed = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}

	var b strings.Builder
	b.WriteString("distlock " + v + "\n")
	switch {
	case revision != "":
		b.WriteString("revision " + revision)
		if committed != "" {
			b.WriteString(", committed " + committed)
		}
		if modified {
			b.WriteString(", with uncommitted changes")
		}
		b.WriteString("\n")
	case v == "(devel)":
		// Nothing says which source this is: say why, rather than nothing.
		b.WriteString("revision unknown: built outside a git checkout, or with -buildvcs=false\n")
	}
	b.WriteString("built with " + goVersion + " for " + runtime.GOOS + "/" + runtime.GOARCH + "\n")
	return b.String()
}

// buildInfo is the binary's own build information, or nil.
func buildInfo() *debug.BuildInfo {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return info
}
