package certgen

// The tests of the manifests (manifests_test.go) are in package certgen_test, so that they
// can copy manifests/ with internal/harness, which imports this package; these are the
// in-package test helpers they use.
var (
	RunCerts = runCerts
	Verify   = verify
)
