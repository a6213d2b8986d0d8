// Package e2e runs the built webhook binary against a local control plane, installed with
// the manifests and kubectl as a user installs it, and checks what a user sees.
package e2e

import (
	"context"
	"debug/elf"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/test/controlplane"
	"github.com/replica-policy/replica-policy/test/localcluster"
)

// buildBinary builds the webhook with exactly the Makefile target the Dockerfile runs.
func buildBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is required to build the binary the way the Dockerfile does")
	}
	out := filepath.Join(t.TempDir(), "webhook")
	cmd := exec.Command("make", "-C", controlplane.RepoRoot(), "build", "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, b)
	}
	return out
}

func TestBuildIsStatic(t *testing.T) {
	bin := buildBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has an ELF interpreter: it is dynamically linked and will not run on distroless/static", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("%s needs shared libraries %v", bin, libs)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "replica-policy ") {
		t.Fatalf("%s --version: %v %q", bin, err, out)
	}
}

func startCluster(t *testing.T) *localcluster.Cluster {
	t.Helper()
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{Dir: t.TempDir(), Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func kubectl(t *testing.T, c *localcluster.Cluster, args ...string) string {
	t.Helper()
	out, err := c.KubectlCmd(context.Background(), args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestInstallAndUse(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t)
	ctx := context.Background()
	w, err := c.RunWebhook(ctx, localcluster.WebhookOptions{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Stop(40 * time.Second); err != nil {
			t.Errorf("webhook exit: %v\n%s", err, w.Log())
		}
	})
	kubectl(t, c, "create", "namespace", "prod")
	kubectl(t, c, "-n", "prod", "create", "deployment", "web", "--image=registry.k8s.io/pause:3.10", "--replicas=3")
	kubectl(t, c, "-n", "prod", "label", "deployment", "web", "app=web")
	time.Sleep(time.Second) // the label reaches the webhook's cache
	out := kubectl(t, c, "-n", "prod", "scale", "deployment", "web", "--replicas=40")
	t.Log(out)
	got := strings.TrimSpace(kubectl(t, c, "-n", "prod", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"))
	if got != "10" {
		t.Fatalf("after kubectl scale --replicas=40, replicas = %s, want 10 (rule prod-web of the example policy)\nwebhook log:\n%s", got, w.Log())
	}
}
