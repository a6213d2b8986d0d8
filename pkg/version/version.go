// Package version holds the build's version, stamped by the Makefile's ldflags.
package version

// Version is the release version, set with -ldflags "-X .../pkg/version.Version=v1.2.3".
var Version = "dev"

// Commit is the git commit the binary was built from, set with -ldflags.
var Commit = "unknown"
