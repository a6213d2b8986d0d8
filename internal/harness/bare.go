package harness

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// StartBare starts a control plane, copies manifests/ to o.Dir/manifests and generates
// certificates into the copy with the certs tool's logic (certs/certgen; extraSANs, e.g.
// "127.0.0.1", are added to the serving certificate; none gives what `go run ./certs` gives
// a user), but applies nothing: tests of the manifests themselves apply what they check.
// Cluster.Port is o.Port as given (no free port is picked: no overlay points at it).
func StartBare(ctx context.Context, o ClusterOptions, extraSANs ...string) (*Cluster, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	kubectl, err := findKubectl()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: o.Dir, Port: o.Port, Kubectl: kubectl, log: o.Log}
	c.progress("starting kube-apiserver and etcd")
	env, err := NewControlPlane(ControlPlaneOptions{APIServerArgs: o.APIServerArgs})
	if err != nil {
		return nil, err
	}
	c.ControlPlane = env
	c.AdminKubeconfig = filepath.Join(o.Dir, "admin.kubeconfig")
	if err := env.AdminKubeconfig(c.AdminKubeconfig); err != nil {
		c.Stop()
		return nil, err
	}
	c.Manifests = filepath.Join(o.Dir, "manifests")
	c.CertDir = filepath.Join(c.Manifests, "certs")
	c.progress("copying manifests/ to %s", c.Manifests)
	if err := CopyManifests(c.Manifests); err != nil {
		c.Stop()
		return nil, err
	}
	c.progress("generating a CA and a serving certificate with the certs tool (extra SANs %v)", extraSANs)
	if _, err := GenerateCerts(c.CertDir, extraSANs...); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// CopyManifests copies the checkout's manifests/ to dst, without any certificate or key
// generated in the checkout: dst/certs holds only the checked-in kustomization.yaml.
func CopyManifests(dst string) error {
	return copyTree(filepath.Join(RepoRoot(), "manifests"), dst)
}

// LocalOverlay is the kustomization Start applied: the manifests' local overlay with the
// webhook URLs pointing at Cluster.Port. `kubectl apply -k` it again to restore what a test
// deleted (the webhook configurations, the policy).
func (c *Cluster) LocalOverlay() string { return filepath.Join(c.Dir, "overlay") }

// FindKubectl returns the kubectl the clusters use: the machine's, else the one
// hack/controlplane.sh --with-kubectl builds; the error says how to get one.
func FindKubectl() (string, error) { return findKubectl() }

// NeedKubectl returns FindKubectl's kubectl, or fails t saying why the test needs one (e.g.
// "this test runs kubectl as a user would") and how to get it.
func NeedKubectl(t testing.TB, why string) string {
	t.Helper()
	k, err := findKubectl()
	if err != nil {
		t.Fatalf("%s, and none was found: %v", why, err)
	}
	return k
}
