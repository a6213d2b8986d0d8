package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RepoRoot is the root of the checkout, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	assetsOnce sync.Once
	assetsDir  string
	assetsErr  error
)

// Assets returns the folder holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS when set,
// else the cache that hack/controlplane.sh fills (building the binaries if missing).
func Assets() (string, error) {
	assetsOnce.Do(func() {
		assetsDir, assetsErr = fromCache("KUBEBUILDER_ASSETS", "controlplane.sh", "the test control plane")
	})
	return assetsDir, assetsErr
}

// fromCache returns $env when set, else the path that hack/<script> prints once it has
// built what is missing into the cache outside the checkout (its progress goes to stderr:
// the first build takes minutes).
func fromCache(env, script, what string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	cmd := exec.Command(filepath.Join(RepoRoot(), "hack", script))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s with hack/%s: %w", what, script, err)
	}
	return strings.TrimSpace(out.String()), nil
}

// ControlPlane is a running kube-apiserver and etcd.
type ControlPlane struct {
	*envtest.Environment
	Config *rest.Config
	Client kubernetes.Interface
}

// ControlPlaneOptions for StartControlPlane and NewControlPlane.
type ControlPlaneOptions struct {
	// WebhookPaths are files or folders of webhook configurations to install, pointed at
	// a local server (ControlPlane.WebhookInstallOptions says where and with which certificates).
	WebhookPaths []string
	// APIServerArgs are extra kube-apiserver flags, "name=value".
	APIServerArgs []string
	// CRDPaths are files or folders of CustomResourceDefinitions to install (and wait for)
	// before the control plane is returned, e.g. TestCRDs().
	CRDPaths []string
}

// NewControlPlane starts kube-apiserver and etcd; the caller stops them with Stop.
func NewControlPlane(opts ControlPlaneOptions) (*ControlPlane, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:   assets,
		WebhookInstallOptions:   envtest.WebhookInstallOptions{Paths: opts.WebhookPaths},
		CRDDirectoryPaths:       opts.CRDPaths,
		ErrorIfCRDPathMissing:   len(opts.CRDPaths) > 0,
		ControlPlaneStopTimeout: time.Minute,
	}
	api := env.ControlPlane.GetAPIServer()
	for _, a := range opts.APIServerArgs {
		k, v, _ := strings.Cut(a, "=")
		api.Configure().Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &ControlPlane{Environment: env, Config: cfg, Client: cs}, nil
}

// StartControlPlane starts kube-apiserver and etcd and stops them when the test ends.
func StartControlPlane(t testing.TB, opts ControlPlaneOptions) *ControlPlane {
	t.Helper()
	env, err := NewControlPlane(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stopping the control plane: %v", err)
		}
	})
	return env
}

// AdminKubeconfig writes a kubeconfig for a system:masters user to path.
func (e *ControlPlane) AdminKubeconfig(path string) error {
	return e.UserKubeconfig(path, envtest.User{Name: "admin", Groups: []string{"system:masters"}})
}

// UserKubeconfig adds user, authenticated by a client certificate, and writes a kubeconfig
// for it to path. Its rights are whatever RBAC grants it.
func (e *ControlPlane) UserKubeconfig(path string, user envtest.User) error {
	u, err := e.AddUser(user, nil)
	if err != nil {
		return err
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return err
	}
	return os.WriteFile(path, kc, 0o600)
}
