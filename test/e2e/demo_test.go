package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// TestDemoFlow does what `make demo` shows, with assertions and no terminal: a clamped
// kubectl scale with its warning, a denied create naming the rule, a tightened policy that
// the scaler applies to the existing Deployment with an Event; then SIGTERM.
func TestDemoFlow(t *testing.T) {
	bin, c, admin := setup(t, startCluster)
	ctx := context.Background()
	w := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "demo"})

	t.Run("kubectl scale is clamped, with a warning", checkScaleClamped(c))

	t.Run("a deny rule rejects a create, naming the rule", func(t *testing.T) {
		out, err := c.KubectlStdin(ctx, harness.DemoDatabase, "apply", "-f", "-")
		if err == nil {
			t.Fatalf("the database Deployment with 12 replicas was not denied:\n%s", out)
		}
		for _, want := range []string{
			"denied the request",
			`Deployment "db": spec.replicas: Invalid value: 12: must be within [3, 7] (replica policy rule "databases", action deny)`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("denial lacks %q:\n%s", want, out)
			}
		}
		if out, err := c.KubectlCmd(ctx, "-n", "prod", "get", "deployment", "db"); err == nil {
			t.Errorf("the denied Deployment exists:\n%s", out)
		}
	})

	t.Run("a tightened policy is applied by the scaler, with an Event", func(t *testing.T) {
		doc := kubectl(t, c, "-n", policy.DefaultNamespace, "get", "configmap", policy.DefaultConfigMapName, "-o", "yaml")
		tightened := strings.Replace(doc, "maxReplicas: 10\n", "maxReplicas: 5\n", 1)
		if tightened == doc {
			t.Fatal("the example policy has no prod-web maxReplicas: 10 to tighten")
		}
		kubectlStdin(t, c, tightened, "apply", "-f", "-")
		applied := time.Now()
		// Design: a policy change takes effect within 2 s and the scaler starts at once.
		waitReplicas(t, admin, "prod", "web", 5, 10*time.Second)
		t.Logf("corrected %v after kubectl apply of the policy returned", time.Since(applied).Round(time.Millisecond))
		out := kubectl(t, c, "-n", "prod", "get", "events", "--field-selector", "reason=ReplicasCorrected",
			"-o", "custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message")
		if !strings.Contains(out, "web") || !strings.Contains(out, "prod-web") {
			t.Errorf("kubectl get events shows no ReplicasCorrected Event for web naming prod-web:\n%s", out)
		}
	})

	t.Run("SIGTERM: readiness false at once, still answering, exit 0 within 30s", func(t *testing.T) {
		checkGracefulStop(t, c, w, "prod", "web")
	})
}

// checkGracefulStop sends SIGTERM and checks the reliability contract: readiness turns false
// at once, an admission request meanwhile still gets the webhook's answer (a clamp of a
// dry-run scale of namespace/name to 40 replicas), and the process exits 0 within 30 seconds.
func checkGracefulStop(t *testing.T, c *harness.Cluster, w *harness.Webhook, namespace, name string) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop(30 * time.Second) }()
	harness.Eventually(t, 2*time.Second, poll, "/readyz failing after SIGTERM", func() (bool, string) {
		resp, err := http.Get("http://" + w.Health + "/readyz")
		if err != nil {
			return true, "" // already gone is not ready either
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusOK, resp.Status
	})
	// The default --shutdown-delay (5s) keeps the webhook answering while endpoints drop it;
	// a request sent well within it must still be clamped (with failurePolicy Ignore, a
	// closed port would let it through unclamped).
	if time.Since(start) < 3*time.Second {
		s, err := c.Client.AppsV1().Deployments(namespace).UpdateScale(ctx, name, &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: 40}},
			metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil || s.Spec.Replicas == 40 {
			t.Errorf("an admission request %v after SIGTERM was not answered by the webhook: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("after SIGTERM: %v (want exit code 0 within 30s)\n%s", err, harness.TailLines(w.Log(), 30))
	}
	t.Logf("exited 0, %v after SIGTERM", time.Since(start).Round(100*time.Millisecond))
}

// TestInCluster runs the binary as a Pod does, with no kubeconfig: the in-cluster
// configuration from KUBERNETES_SERVICE_HOST/PORT and the ServiceAccount files under
// /var/run/secrets/kubernetes.io/serviceaccount (a tmpfs in a private mount namespace), so
// with exactly the manifests' RBAC, and checks that the webhook clamps and the scaler
// corrects, and that SIGTERM ends it with exit code 0.
func TestInCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the in-cluster files are mounted in a private mount namespace (unshare -m)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed to give the process its own /var/run/secrets: %v", err)
	}
	bin, c, admin := setup(t, startCluster)
	w := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "in-cluster", InCluster: true})
	if log := w.Log(); !strings.Contains(log, `"from":"in-cluster ServiceAccount"`) {
		t.Fatalf("the binary did not use the in-cluster configuration:\n%s", harness.TailLines(log, 20))
	}

	t.Run("webhook clamps", func(t *testing.T) {
		kubectl(t, c, "create", "namespace", "prod")
		kubectl(t, c, "-n", "prod", "create", "deployment", "web", "--image="+harness.PauseImage, "--replicas=3")
		waitClampReady(t, c, "prod", "web", 40)
		out := kubectl(t, c, "-n", "prod", "scale", "deployment", "web", "--replicas=40")
		if !strings.Contains(out, `clamped to 10 by replica policy rule "prod-web"`) {
			t.Errorf("no clamp warning:\n%s", out)
		}
		waitReplicas(t, admin, "prod", "web", 10, time.Second)
	})

	t.Run("scaler corrects what got past during an outage", func(t *testing.T) {
		deleteWebhookConfigurations(t, c)
		kubectl(t, c, "-n", "prod", "create", "deployment", "api", "--image="+harness.PauseImage, "--replicas=30")
		kubectl(t, c, "apply", "-k", c.LocalOverlay())
		waitReplicas(t, admin, "prod", "api", 10, 30*time.Second)
		waitEvent(t, admin, "prod", "Deployment", "api", "ReplicasCorrected", 10*time.Second)
	})

	t.Run("SIGTERM", func(t *testing.T) {
		checkGracefulStop(t, c, w, "prod", "web")
		if log := w.Log(); strings.Contains(strings.ToLower(log), "forbidden") {
			t.Errorf("authorization errors in the log under the manifests' RBAC:\n%s", harness.TailLines(log, 20))
		}
	})
}

// TestDemoCommand runs hack/demo as `make demo` does, but without a terminal: no standard
// input and --no-wait. It must finish on its own with exit code 0, show each step's outcome
// and remove its working folder.
func TestDemoCommand(t *testing.T) {
	bin := webhookBinary(t)
	needKubectl(t)
	port := harness.MustFreePort(t)
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./hack/demo", "--binary", bin, "--port", fmt.Sprint(port), "--no-wait")
	cmd.Dir = harness.RepoRoot()
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp) // its working folder, to check the cleanup
	cmd.Stdin = nil                               // no terminal
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./hack/demo --no-wait: %v\n%s", err, out)
	}
	for _, want := range []string{
		`Warning: Deployment "web": spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`,
		`(replica policy rule "databases", action deny)`,
		"corrected within",
		"ReplicasCorrected",
		"The demo took",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "replica-policy-demo-*")); len(left) > 0 {
		t.Errorf("the demo left its working folder behind: %v", left)
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}
