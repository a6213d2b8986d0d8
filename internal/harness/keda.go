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

// KEDAScaledObjectCRD returns the path of KEDA's own ScaledObject CRD manifest, from the
// module github.com/kedacore/keda/v2 at KEDAVersion, which `go mod download` fetches from
// the Go module proxy into the module cache once (outside the checkout; later runs read the
// cache).
func KEDAScaledObjectCRD() (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/kedacore/keda/v2@"+KEDAVersion)
	// Outside any module, so that the repository's go.mod is not consulted or changed.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	out, _ := cmd.Output() // its exit status is 1 when it extracted but cannot build the module
	if len(out) == 0 {
		return "", fmt.Errorf("go mod download github.com/kedacore/keda/v2@%s printed nothing", KEDAVersion)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("go mod download github.com/kedacore/keda/v2@%s: %w", KEDAVersion, err)
	}
	if mod.Dir == "" {
		// KEDA v2.21.1's go.mod requires go 1.27.4: the Go of this machine (1.26, with
		// GOTOOLCHAIN=local) extracts the module into its cache, then reports that it cannot
		// build it. Only its CRD is read, from where the cache keeps it.
		cache, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			return "", fmt.Errorf("go env GOMODCACHE: %w (go mod download said: %s)", err, mod.Error)
		}
		mod.Dir = filepath.Join(strings.TrimSpace(string(cache)), "github.com", "kedacore", "keda", "v2@"+KEDAVersion)
	}
	path := filepath.Join(mod.Dir, "config", "crd", "bases", "keda.sh_scaledobjects.yaml")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("KEDA %s has no ScaledObject CRD where expected: %w (go mod download: %s)", KEDAVersion, err, mod.Error)
	}
	return path, nil
}
