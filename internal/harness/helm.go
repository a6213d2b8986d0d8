package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

var (
	helmOnce sync.Once
	helmBin  string
	helmErr  error
)

// Helm returns the helm binary the chart's tests use: $HELM when set, else the one
// hack/helm.sh builds from the Go module proxy into the cache outside the checkout (building
// it on the first call on a cold cache, with progress on stderr).
func Helm() (string, error) {
	helmOnce.Do(func() { helmBin, helmErr = fromCache("HELM", "helm.sh", "helm") })
	return helmBin, helmErr
}

// Chart is the folder of the repository's Helm chart.
func Chart() string { return filepath.Join(RepoRoot(), "charts", "replica-policy") }

// HelmCmd runs helm with args and returns its standard output. Its configuration, cache and
// data folders are under dir, so that nothing of the user's ~/.config/helm is read or
// written; a Cluster's helm also gets its admin kubeconfig (see Cluster.Helm).
func HelmCmd(ctx context.Context, dir string, args ...string) (string, error) {
	stdout, _, err := helmCmd(ctx, dir, "", args...)
	return stdout, err
}

// Helm runs helm as the cluster admin (its kubeconfig), with its folders under c.Dir, and
// returns what it printed on stdout and stderr (where helm prints the API server's warnings).
func (c *Cluster) Helm(ctx context.Context, args ...string) (string, error) {
	stdout, stderr, err := helmCmd(ctx, c.Dir, c.AdminKubeconfig, args...)
	return stdout + stderr, err
}

// helmCmd runs helm and returns its stdout and stderr; the error holds stderr too.
func helmCmd(ctx context.Context, dir, kubeconfig string, args ...string) (string, string, error) {
	bin, err := Helm()
	if err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	home := filepath.Join(dir, "helm")
	cmd.Env = append(withoutEnv(os.Environ(), "KUBECONFIG"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	if kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+kubeconfig)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), stderr.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), stderr.String(), nil
}
