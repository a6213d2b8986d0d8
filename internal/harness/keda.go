package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KEDAVersion is the KEDA release whose CustomResourceDefinitions the tests install:
// keda.sh/v1alpha1 ScaledObjects as KEDA v2.21.1 defines them, validations included.
const KEDAVersion = "v2.21.1"

// OpenReportsVersion is the release of github.com/openreports/reports-api whose Report CRD
// the tests install: the openreports.io/v1alpha1 Report that --reports writes.
const OpenReportsVersion = "v0.2.1"

// KEDAScaledObjectCRD returns the path of KEDA's own ScaledObject CRD manifest, from the
// module github.com/kedacore/keda/v2 at KEDAVersion.
func KEDAScaledObjectCRD() (string, error) {
	return moduleFile("github.com/kedacore/keda/v2", KEDAVersion, "config", "crd", "bases", "keda.sh_scaledobjects.yaml")
}

// OpenReportsReportCRD returns the path of the OpenReports Report CRD manifest, from the
// module github.com/openreports/reports-api at OpenReportsVersion.
func OpenReportsReportCRD() (string, error) {
	return moduleFile("github.com/openreports/reports-api", OpenReportsVersion, "config", "crd", "openreports.io_reports.yaml")
}

// moduleFile returns the path of a file in module@version, which `go mod download` fetches
// from the Go module proxy into the module cache once (outside the checkout; later runs
// read the cache).
func moduleFile(module, version string, path ...string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	// Outside any module, so that the repository's go.mod is not consulted or changed.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	out, _ := cmd.Output() // its exit status is 1 when it extracted but cannot build the module
	if len(out) == 0 {
		return "", fmt.Errorf("go mod download %s@%s printed nothing", module, version)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	if mod.Dir == "" {
		// A module whose go.mod requires a newer Go (KEDA v2.21.1 requires go 1.27.4; this
		// machine's is 1.26 with GOTOOLCHAIN=local) is extracted into the module cache all
		// the same, and then reported as one it cannot build. Only a file of it is read, from
		// where the cache keeps it.
		cache, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			return "", fmt.Errorf("go env GOMODCACHE: %w (go mod download said: %s)", err, mod.Error)
		}
		mod.Dir = filepath.Join(strings.TrimSpace(string(cache)), filepath.FromSlash(module)+"@"+version)
	}
	file := filepath.Join(append([]string{mod.Dir}, path...)...)
	if _, err := os.Stat(file); err != nil {
		return "", fmt.Errorf("%s@%s has no %s: %w (go mod download: %s)", module, version, filepath.Join(path...), err, mod.Error)
	}
	return file, nil
}
