// Package version carries the build's version string, stamped by the Makefile
// (-ldflags -X) so every binary, log line and build-info metric names the same
// release.
package version

import "runtime/debug"

// Version is set at build time; "dev" for plain `go build`.
var Version = "dev"

// String returns the stamped version, or the module version when not stamped.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}
