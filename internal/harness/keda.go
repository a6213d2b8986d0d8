package harness

import (
	"context"
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

// KEDACRDs returns the folder of all of KEDA's own CustomResourceDefinition manifests
// (ScaledObjects, ScaledJobs, TriggerAuthentications, CloudEventSources and their cluster
// kinds), from the module at KEDAVersion: KEDA's operator watches every one of them.
func KEDACRDs() (string, error) {
	return moduleFile("github.com/kedacore/keda/v2", KEDAVersion, "config", "crd", "bases")
}

// KEDAOperator returns the path of KEDA's operator at KEDAVersion ($KEDA_OPERATOR when set,
// else the binary hack/keda-operator.sh has built into the cache outside the checkout), or
// "" when it is not built. It never builds it: the first build takes many minutes (every
// scaler's cloud SDK), so make test runs the script before the tests.
func KEDAOperator() (string, error) {
	if p := os.Getenv("KEDA_OPERATOR"); p != "" {
		return p, nil
	}
	script := filepath.Join(RepoRoot(), "hack", "keda-operator.sh")
	out, err := exec.Command(script, "--if-built").Output()
	if err != nil {
		return "", fmt.Errorf("%s --if-built: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// StartKEDAOperator starts KEDA's operator (bin, from KEDAOperator) as the cluster admin,
// watching every namespace, with "keda" as its namespace for cluster objects; KEDA's CRDs
// (KEDACRDs) must be installed first. It turns each ScaledObject into the HPA it owns and
// runs the scalers' polling loop. Its Prometheus and health endpoints are off; its gRPC
// metrics service, which only KEDA's metrics API server calls (not run here), listens on a
// free port of 127.0.0.1 with the cluster's certificates, which it requires.
func (c *Cluster) StartKEDAOperator(ctx context.Context, bin string) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p := &Process{LogFile: filepath.Join(c.Dir, "keda-operator.log")}
	p.cmd = exec.CommandContext(ctx, bin,
		"--leader-elect=false",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
		fmt.Sprintf("--metrics-service-bind-address=127.0.0.1:%d", port),
		"--cert-dir="+c.CertDir)
	p.cmd.Env = append(withoutEnv(os.Environ(), "KUBECONFIG"),
		"KUBECONFIG="+c.AdminKubeconfig, "WATCH_NAMESPACE=", "KEDA_CLUSTER_OBJECT_NAMESPACE=keda", "POD_NAMESPACE=keda")
	c.progress("starting KEDA's operator %s (%s)", KEDAVersion, bin)
	if p.done, err = StartProcess(p.cmd, p.LogFile); err != nil {
		return nil, err
	}
	return p, nil
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
