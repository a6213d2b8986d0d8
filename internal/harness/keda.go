package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download github.com/kedacore/keda/v2@%s: %w", KEDAVersion, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Error != "" {
		return "", fmt.Errorf("go mod download github.com/kedacore/keda/v2@%s: %v %s", KEDAVersion, err, mod.Error)
	}
	path := filepath.Join(mod.Dir, "config", "crd", "bases", "keda.sh_scaledobjects.yaml")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("KEDA %s has no ScaledObject CRD where expected: %w", KEDAVersion, err)
	}
	return path, nil
}
