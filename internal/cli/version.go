package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version describes the running binary as `name --version` prints it:
//
//	vbsim v0.0.0-20261203072555-c06c1191b92b (revision c06c1191b92b, modified; go1.26.8 linux/amd64)
//
// from the build information Go stamps into every binary: the main
// module's version, the VCS revision and whether the work tree had
// uncommitted changes ("modified"). A binary built outside a git checkout
// (or with -buildvcs=false, or from a git worktree, which Go does not
// stamp) says "no VCS revision" instead.
func Version(name string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("%s (no build information; %s %s/%s)", name, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	return formatVersion(name, bi)
}

func formatVersion(name string, bi *debug.BuildInfo) string {
	mod := bi.Main.Version
	if mod == "" {
		mod = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	goVer := bi.GoVersion
	if goVer == "" {
		goVer = runtime.Version()
	}
	platform := goVer + " " + runtime.GOOS + "/" + runtime.GOARCH
	if rev == "" {
		return fmt.Sprintf("%s %s (no VCS revision: built outside a git checkout or with -buildvcs=false; %s)", name, mod, platform)
	}
	return fmt.Sprintf("%s %s (revision %s%s; %s)", name, mod, shortRev(rev), modified, platform)
}

// ShortVersion is the compact form that run metadata stores: the module
// version when it names a release or a pseudo-version, else the VCS
// revision (with "+dirty" when modified), else "(devel)".
func ShortVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return shortVersion(bi)
}

func shortVersion(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "(devel)"
	}
	if dirty {
		return shortRev(rev) + "+dirty"
	}
	return shortRev(rev)
}

func shortRev(rev string) string {
	rev = strings.TrimSpace(rev)
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
