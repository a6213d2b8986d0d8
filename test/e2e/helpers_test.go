package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// leaseName is the leader-election Lease of manifests/base.
const leaseName = "replica-policy-leader"

// poll is how often the tests here poll (most conditions run kubectl or list objects).
const poll = 100 * time.Millisecond

// build is the webhook binary, built once per test run with exactly the Makefile target the
// Dockerfile runs (static, trimmed, version stamped).
var build harness.WebhookBuild

func TestMain(m *testing.M) { build.Main(m) }

// webhookBinary is the built binary.
func webhookBinary(t *testing.T) string {
	t.Helper()
	return build.Binary(t)
}

// needKubectl fails the test, saying why, where kubectl is missing: these tests use it as a
// user does.
func needKubectl(t *testing.T) string {
	t.Helper()
	return harness.NeedKubectl(t, "this test runs kubectl as a user would")
}

// startCluster starts a control plane with the manifests' local overlay applied with kubectl.
func startCluster(t *testing.T) *harness.Cluster {
	t.Helper()
	needKubectl(t)
	c, err := harness.StartCluster(context.Background(), harness.ClusterOptions{Dir: t.TempDir(), Log: harness.LogWriter(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// setup builds the binary and starts a control plane with start (startCluster,
// startNativeCluster), and returns both with a cluster-admin client.
func setup(t *testing.T, start func(*testing.T) *harness.Cluster) (string, *harness.Cluster, kubernetes.Interface) {
	t.Helper()
	bin := webhookBinary(t)
	c := start(t)
	admin, _ := adminClient(t, c)
	return bin, c, admin
}

// createDeployments creates each namespace and in it a Deployment name with replicas and
// labels.
func createDeployments(t *testing.T, c *harness.Cluster, admin kubernetes.Interface, name string, replicas int32, labels map[string]string, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		kubectl(t, c, "create", "namespace", ns)
		if _, err := admin.AppsV1().Deployments(ns).Create(context.Background(), harness.Deployment(ns, name, replicas, labels), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkScaleClamped is the demo's first step: prod/web, created with kubectl (3 replicas,
// labelled app=web), scaled to 40 with kubectl, is clamped to 10 by rule prod-web, and
// kubectl shows the warning.
func checkScaleClamped(c *harness.Cluster) func(*testing.T) {
	return func(t *testing.T) {
		kubectl(t, c, "create", "namespace", "prod")
		kubectl(t, c, "-n", "prod", "create", "deployment", "web", "--image="+harness.PauseImage, "--replicas=3")
		waitClampReady(t, c, "prod", "web", 40)
		out := kubectl(t, c, "-n", "prod", "scale", "deployment", "web", "--replicas=40")
		for _, want := range []string{`Warning: Deployment "web": spec.replicas 40 clamped to 10 by replica policy rule "prod-web"`, "deployment.apps/web scaled"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl scale output lacks %q:\n%s", want, out)
			}
		}
		if got := strings.TrimSpace(kubectl(t, c, "-n", "prod", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}")); got != "10" {
			t.Fatalf("replicas %s, want 10", got)
		}
	}
}

// runWebhook starts the binary (ready when it returns); it is killed at the end of the test
// if the test did not stop it.
func runWebhook(t *testing.T, c *harness.Cluster, o harness.WebhookOptions) *harness.Webhook {
	t.Helper()
	w, err := c.RunWebhook(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Kill()
		if t.Failed() {
			t.Logf("log of %s (%s):\n%s", o.Name, w.LogFile, harness.TailLines(w.Log(), 60))
		}
	})
	return w
}

// stopWebhook sends SIGTERM and checks the contract: exit code 0 within 30 seconds.
func stopWebhook(t *testing.T, w *harness.Webhook) time.Duration {
	t.Helper()
	start := time.Now()
	if err := w.Stop(30 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v (want exit code 0 within 30s)\n%s", err, harness.TailLines(w.Log(), 40))
	}
	return time.Since(start)
}

// applyComponentRole builds manifests/base with the component manifests/components/name
// and applies its ClusterRole, as `kubectl apply -k` of base + component would leave it; it
// fails t when that role does not mention want, and returns the built manifests.
func applyComponentRole(t *testing.T, c *harness.Cluster, name, want string) string {
	t.Helper()
	built, err := os.ReadFile(harness.ComponentManifests(t, name, name+".yaml", nil))
	if err != nil {
		t.Fatal(err)
	}
	role := harness.ManifestOfKind(string(built), "ClusterRole")
	if !strings.Contains(role, want) {
		t.Fatalf("the ClusterRole of component %s lacks %s:\n%s", name, want, role)
	}
	kubectlStdin(t, c, role, "apply", "-f", "-")
	return string(built)
}

func kubectl(t *testing.T, c *harness.Cluster, args ...string) string {
	t.Helper()
	return kubectlStdin(t, c, "", args...)
}

func kubectlStdin(t *testing.T, c *harness.Cluster, stdin string, args ...string) string {
	t.Helper()
	out, err := c.KubectlStdin(context.Background(), stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// events returns the Events with reason about the object kind namespace/name (either Events
// API: both read the same objects).
func events(ctx context.Context, cs kubernetes.Interface, namespace, kind, name, reason string) ([]eventsv1.Event, error) {
	list, err := cs.EventsV1().Events(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Reason == reason && e.Regarding.Kind == kind && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out, nil
}

// adminClient is a cluster-admin client whose warnings land in the returned collector.
func adminClient(t *testing.T, c *harness.Cluster) (kubernetes.Interface, *harness.Warnings) {
	t.Helper()
	cs, warns, err := harness.WarningClient(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs, warns
}

func replicasOf(ctx context.Context, cs kubernetes.Interface, namespace, name string) (int32, error) {
	d, err := cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	return *d.Spec.Replicas, nil
}

// waitReplicas waits until namespace/name has want replicas.
func waitReplicas(t *testing.T, cs kubernetes.Interface, namespace, name string, want int32, timeout time.Duration) {
	t.Helper()
	harness.Eventually(t, timeout, poll, fmt.Sprintf("%s/%s at %d replicas", namespace, name, want), func() (bool, string) {
		got, err := replicasOf(context.Background(), cs, namespace, name)
		if err != nil {
			return false, err.Error()
		}
		return got == want, fmt.Sprintf("replicas %d", got)
	})
}

// waitEvent waits for an Event with reason about kind namespace/name and returns it.
func waitEvent(t *testing.T, cs kubernetes.Interface, namespace, kind, name, reason string, timeout time.Duration) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	harness.Eventually(t, timeout, poll, fmt.Sprintf("Event %s on %s %s/%s", reason, kind, namespace, name), func() (bool, string) {
		evs, err := events(context.Background(), cs, namespace, kind, name, reason)
		if err != nil {
			return false, err.Error()
		}
		if len(evs) == 0 {
			return false, "none yet"
		}
		found = evs[len(evs)-1]
		return true, ""
	})
	return found
}

// waitClampReady retries a server-side dry-run scale until the webhook answers it with a
// clamp: the parent Deployment's labels have reached the webhook's cache.
func waitClampReady(t *testing.T, c *harness.Cluster, namespace, name string, replicas int) {
	t.Helper()
	harness.Eventually(t, 15*time.Second, poll, fmt.Sprintf("webhook clamps a dry-run scale of %s/%s", namespace, name), func() (bool, string) {
		out, err := c.KubectlCmd(context.Background(), "-n", namespace, "scale", "deployment", name, fmt.Sprintf("--replicas=%d", replicas), "--dry-run=server")
		return err == nil && strings.Contains(out, "clamped to"), out
	})
}

// deleteWebhookConfigurations deletes both webhook configurations, as in an outage where the
// API server cannot reach the webhook, and waits until the API server has stopped calling it
// (its webhook informer lags the deletion): a dry-run create of a violator comes back
// unclamped. localcluster's LocalOverlay restores them.
func deleteWebhookConfigurations(t *testing.T, c *harness.Cluster) {
	t.Helper()
	kubectl(t, c, "delete", "mutatingwebhookconfiguration", "replica-policy")
	kubectl(t, c, "delete", "validatingwebhookconfiguration", "replica-policy")
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "outage-probe"}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, poll, "the API server no longer calls the webhooks", func() (bool, string) {
		d, err := c.Client.AppsV1().Deployments(ns.Name).Create(ctx, harness.Deployment(ns.Name, "probe", 500, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err.Error()
		}
		return *d.Spec.Replicas == 500, fmt.Sprintf("replicas %d", *d.Spec.Replicas)
	})
}

func readAll(r io.Reader) string { b, _ := io.ReadAll(r); return string(b) }

// webhookIndex is the index of the entry name in MutatingWebhookConfiguration replica-policy,
// for a JSON patch of that entry.
func webhookIndex(t *testing.T, c *harness.Cluster, name string) int {
	t.Helper()
	names := strings.Fields(kubectl(t, c, "get", "mutatingwebhookconfiguration", "replica-policy", "-o", "jsonpath={.webhooks[*].name}"))
	i := slices.Index(names, name)
	if i < 0 {
		t.Fatalf("no webhook %s in replica-policy: %v", name, names)
	}
	return i
}
