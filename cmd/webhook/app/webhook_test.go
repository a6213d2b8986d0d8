package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// The integration tests run the command's own Run() against a real kube-apiserver, with
// the webhook configurations of manifests/base registered (pointed at this process), and
// check what a user of kubectl or client-go sees.

type fixture struct {
	env    *harness.ControlPlane
	client kubernetes.Interface
	warns  *harness.Warnings
	health string // host:port of /healthz and /readyz
	// metrics is the host:port of /metrics ("0" where a test turned it off).
	metrics string
	// kubeconfig is an administrator's, for kubectl.
	kubeconfig string
	// stop ends the webhook (as an outage would) and waits for it; the test's end calls it too.
	stop func()
}

// startWebhook starts a control plane and the webhook (scaler off unless enabled) and waits
// until it is ready.
func startWebhook(t *testing.T, configure func(*Options)) *fixture {
	t.Helper()
	f := launchWebhook(t, func(_ *harness.ControlPlane, o *Options) {
		if configure != nil {
			configure(o)
		}
	})
	f.waitReady(t)
	return f
}

// launchWebhook is startWebhook without the wait for readiness; configure also gets the
// control plane (to make users).
func launchWebhook(t *testing.T, configure func(*harness.ControlPlane, *Options)) *fixture {
	t.Helper()
	return launchWebhookOn(t, harness.ControlPlaneOptions{
		WebhookPaths: []string{filepath.Join(harness.RepoRoot(), "manifests", "base", "webhooks.yaml")},
	}, configure)
}

// launchWebhookOn is launchWebhook on a control plane started with cp.
func launchWebhookOn(t *testing.T, cp harness.ControlPlaneOptions, configure func(*harness.ControlPlane, *Options)) *fixture {
	t.Helper()
	return runWebhookOn(t, harness.StartControlPlane(t, cp), configure)
}

// runWebhookOn is launchWebhookOn on the running control plane env: a restart, once the
// webhook that ran there before has stopped.
func runWebhookOn(t *testing.T, env *harness.ControlPlane, configure func(*harness.ControlPlane, *Options)) *fixture {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.AdminKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	wio := env.WebhookInstallOptions
	o := NewOptions()
	o.Kubeconfig = kubeconfig
	o.CertDir = wio.LocalServingCertDir
	o.Port = wio.LocalServingPort
	o.MetricsBindAddress = freeAddress(t)
	health := freeAddress(t)
	o.HealthProbeBindAddress = health
	o.EnableScaler = false
	o.ShutdownDelay = 0
	o.inProcessTest = true
	configure(env, o)
	stop := harness.RunInBackground(t, "webhook", 40*time.Second, func(ctx context.Context) error { return Run(ctx, o) })

	f := &fixture{env: env, warns: &harness.Warnings{}, health: health, metrics: o.MetricsBindAddress, kubeconfig: kubeconfig, stop: stop}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = f.warns
	f.client = kubernetes.NewForConfigOrDie(cfg)
	createNamespaces(t, f.client, policy.DefaultNamespace)
	return f
}

func (f *fixture) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + f.health + "/readyz?verbose")
		var body []byte
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not ready after 30s (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeAddress is a free local address, for one of the webhook's endpoints.
func freeAddress(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", harness.MustFreePort(t))
}

// scrape reads the metrics the webhook serves.
func (f *fixture) scrape(t *testing.T) harness.Metrics {
	t.Helper()
	m, err := harness.ScrapeMetrics("http://" + f.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// applyPolicy sets the policy ConfigMap to doc and waits until inForce, a dry-run write
// that the new policy decides, says the webhook enforces it; the probes' warnings are
// dropped.
func (f *fixture) applyPolicy(t *testing.T, doc string, inForce func() bool) {
	t.Helper()
	if err := harness.SetPolicy(context.Background(), f.client, doc); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "policy in force", inForce)
	f.warns.Take()
}

// scaleUpdater is a typed client's UpdateScale: Deployments', StatefulSets' or ReplicaSets'.
type scaleUpdater func(context.Context, string, *autoscalingv1.Scale, metav1.UpdateOptions) (*autoscalingv1.Scale, error)

// setScale writes ns/name's scale through update (dryRun: with the API server's dry run).
func setScale(ctx context.Context, update scaleUpdater, ns, name string, replicas int32, dryRun bool) (*autoscalingv1.Scale, error) {
	opts := metav1.UpdateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return update(ctx, name, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}, opts)
}

// waitScaleWarning retries a dry-run /scale write of ns/name to replicas until the webhook
// answers with warning: a rule that reads the workload's labels decides only once the
// workload is in the webhook's cache.
func (f *fixture) waitScaleWarning(t *testing.T, update scaleUpdater, ns, name string, replicas int32, warning string) {
	t.Helper()
	f.warns.Take()
	harness.Eventually(t, 15*time.Second, 50*time.Millisecond, ns+"/"+name+" in the webhook's cache", func() bool {
		_, err := setScale(context.Background(), update, ns, name, replicas, true)
		return err == nil && harness.HasWarning(f.warns.Take(), warning)
	})
}

// createNamespaces creates each namespace; one that exists already is left as it is.
func createNamespaces(t *testing.T, c kubernetes.Interface, names ...string) {
	t.Helper()
	for _, name := range names {
		_, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

const basePolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
exemptNamespaces: [exempt]
rules:
- name: web-tier
  namespaces: [apps]
  selector:
    matchLabels: {tier: web}
  minReplicas: 3
  maxReplicas: 6
- name: capped
  namespaces: [apps]
  minReplicas: 2
  maxReplicas: 10
- name: no-huge
  namespaces: ["strict-*"]
  maxReplicas: 5
  action: deny
- name: heads-up
  namespaces: [loose]
  maxReplicas: 4
  action: warn
`

func TestAdmissionAgainstAPIServer(t *testing.T) {
	f := startWebhook(t, nil)
	ctx := context.Background()
	createNamespaces(t, f.client, "apps", "strict-a", "loose", "exempt")
	f.applyPolicy(t, basePolicy, func() bool {
		d, err := f.client.AppsV1().Deployments("apps").Create(ctx, harness.Deployment("apps", "probe", 50, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && *d.Spec.Replicas == 10
	})
	deps := f.client.AppsV1().Deployments("apps")

	t.Run("create is clamped to max with a warning naming the rule", func(t *testing.T) {
		d, err := deps.Create(ctx, harness.Deployment("apps", "api", 50, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := *d.Spec.Replicas; got != 10 {
			t.Fatalf("replicas = %d, want 10", got)
		}
		assertWarning(t, f.warns.Take(), `spec.replicas 50 clamped to 10 by replica policy rule "capped"`)
	})

	t.Run("update is clamped up to min", func(t *testing.T) {
		d, err := deps.Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Spec.Replicas = ptr.To(int32(1))
		d, err = deps.Update(ctx, d, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := *d.Spec.Replicas; got != 2 {
			t.Fatalf("replicas = %d, want 2", got)
		}
	})

	t.Run("scale subresource update above max is clamped", func(t *testing.T) {
		s, err := deps.GetScale(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Spec.Replicas = 40
		s, err = deps.UpdateScale(ctx, "api", s, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Spec.Replicas != 10 {
			t.Fatalf("scale replicas = %d, want 10", s.Spec.Replicas)
		}
		assertStored(t, f.client, "apps", "api", 10)
		assertWarning(t, f.warns.Take(), `spec.replicas 40 clamped to 10 by replica policy rule "capped"`)
	})

	t.Run("merge patch on /scale below min is raised, and to zero too", func(t *testing.T) {
		for _, want := range []struct{ patch, warn string }{
			{`{"spec":{"replicas":1}}`, `spec.replicas 1 clamped to 2`},
			{`{"spec":{"replicas":0}}`, `spec.replicas 0 clamped to 2`},
		} {
			_, err := deps.Patch(ctx, "api", types.MergePatchType, []byte(want.patch), metav1.PatchOptions{}, "scale")
			if err != nil {
				t.Fatal(err)
			}
			assertStored(t, f.client, "apps", "api", 2)
			assertWarning(t, f.warns.Take(), want.warn)
		}
	})

	t.Run("selector rule applies to a scale request through the parent's labels", func(t *testing.T) {
		if _, err := deps.Create(ctx, harness.Deployment("apps", "web", 4, map[string]string{"tier": "web"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.waitScaleWarning(t, deps.UpdateScale, "apps", "web", 9, `clamped to 6 by replica policy rule "web-tier"`)
		s, err := setScale(ctx, deps.UpdateScale, "apps", "web", 8, false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Spec.Replicas != 6 {
			t.Fatalf("scale replicas = %d, want 6 (rule web-tier through the Deployment's labels)", s.Spec.Replicas)
		}
	})

	t.Run("deny rule rejects with field, value, bounds and rule", func(t *testing.T) {
		_, err := f.client.AppsV1().Deployments("strict-a").Create(ctx, harness.Deployment("strict-a", "big", 7, nil), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
			t.Fatalf("want a rejection, got %v", err)
		}
		for _, part := range []string{"spec.replicas", "7", "[0, 5]", `"no-huge"`} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("denial %q does not mention %s", err.Error(), part)
			}
		}
		if _, err := f.client.AppsV1().Deployments("strict-a").Get(ctx, "big", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("denied Deployment exists: %v", err)
		}
	})

	t.Run("deny rule never blocks an update that leaves replicas unchanged", func(t *testing.T) {
		// Created while the policy allowed it: a deny rule that is tightened later must not
		// block an image rollout.
		if err := harness.SetPolicy(ctx, f.client, strings.Replace(basePolicy, "maxReplicas: 5", "maxReplicas: 50", 1)); err != nil {
			t.Fatal(err)
		}
		sd := f.client.AppsV1().Deployments("strict-a")
		harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "loosened policy", func() bool {
			_, err := sd.Create(ctx, harness.Deployment("strict-a", "legacy", 8, nil), metav1.CreateOptions{})
			return err == nil
		})
		if err := harness.SetPolicy(ctx, f.client, basePolicy); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 15*time.Second, 50*time.Millisecond, "tightened policy", func() bool {
			_, err := sd.Create(ctx, harness.Deployment("strict-a", "probe", 8, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err != nil
		})
		d, err := sd.Get(ctx, "legacy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Spec.Template.Spec.Containers[0].Image = "registry.k8s.io/pause:3.11"
		if _, err := sd.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("image-only update of an out-of-bounds Deployment under a deny rule was rejected: %v", err)
		}
		// A replica change that stays outside the bounds is rejected.
		if _, err := sd.Patch(ctx, "legacy", types.MergePatchType, []byte(`{"spec":{"replicas":9}}`), metav1.PatchOptions{}, "scale"); err == nil {
			t.Fatal("scale to 9 under a deny rule with max 5 was allowed")
		}
	})

	t.Run("warn rule allows with a warning", func(t *testing.T) {
		f.warns.Take()
		d, err := f.client.AppsV1().Deployments("loose").Create(ctx, harness.Deployment("loose", "chatty", 9, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *d.Spec.Replicas != 9 {
			t.Fatalf("replicas = %d, want 9 (warn never changes)", *d.Spec.Replicas)
		}
		ws := f.warns.Take()
		assertWarning(t, ws, `replica policy rule "heads-up", action warn`)
		if len(ws) != 1 {
			t.Errorf("want exactly one warning, got %q", ws)
		}
	})

	t.Run("exempt namespace is untouched", func(t *testing.T) {
		d, err := f.client.AppsV1().Deployments("exempt").Create(ctx, harness.Deployment("exempt", "free", 99, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *d.Spec.Replicas != 99 {
			t.Fatalf("replicas = %d, want 99", *d.Spec.Replicas)
		}
	})

	t.Run("server-side dry-run gets the same answer and changes nothing", func(t *testing.T) {
		before, err := deps.Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := deps.Patch(ctx, "api", types.MergePatchType, []byte(`{"spec":{"replicas":30}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, "scale")
		if err != nil {
			t.Fatal(err)
		}
		got, err := deps.Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != before.ResourceVersion || *got.Spec.Replicas != *before.Spec.Replicas {
			t.Fatalf("dry-run changed the Deployment: rv %s -> %s, replicas %d -> %d", before.ResourceVersion, got.ResourceVersion, *before.Spec.Replicas, *got.Spec.Replicas)
		}
		if s == nil {
			t.Fatal("no answer to the dry-run")
		}
		assertWarning(t, f.warns.Take(), `spec.replicas 30 clamped to 10`)
	})

	t.Run("a policy edit takes effect within 2 seconds", func(t *testing.T) {
		if err := harness.SetPolicy(ctx, f.client, strings.Replace(basePolicy, "maxReplicas: 10", "maxReplicas: 7", 1)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			d, err := deps.Create(ctx, harness.Deployment("apps", "live", 50, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil && *d.Spec.Replicas == 7 {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("policy edit not in force after 2s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("policy edit in force after %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("an invalid policy is rejected at apply with every error and the old one stays", func(t *testing.T) {
		bad := basePolicy + "- name: capped\n  minReplicas: 5\n  maxReplicas: 1\n  maxReplica: 3\n"
		err := harness.SetPolicy(ctx, f.client, bad)
		if err == nil {
			t.Fatal("invalid policy was accepted")
		}
		for _, part := range []string{"rules[4].maxReplica", "unknown field"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("rejection %q does not mention %s", err.Error(), part)
			}
		}
		// Unknown fields stop parsing; with them fixed, every validation error is listed.
		err = harness.SetPolicy(ctx, f.client, basePolicy+"- name: capped\n  minReplicas: 5\n  maxReplicas: 1\n  action: block\n")
		if err == nil {
			t.Fatal("invalid policy was accepted")
		}
		for _, part := range []string{`rules[4].name: Duplicate value: "capped"`, "rules[4].maxReplicas: Invalid value: 1: must be greater than or equal to minReplicas (5)", `rules[4].action: Unsupported value: "block"`} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("rejection %q does not mention %s", err.Error(), part)
			}
		}
		d, err := deps.Create(ctx, harness.Deployment("apps", "after-bad", 50, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if *d.Spec.Replicas != 7 {
			t.Fatalf("replicas = %d, want 7: the last valid policy must stay", *d.Spec.Replicas)
		}
	})
}

func assertStored(t *testing.T, c kubernetes.Interface, ns, name string, want int32) {
	t.Helper()
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != want {
		t.Fatalf("stored %s/%s replicas = %d, want %d", ns, name, *d.Spec.Replicas, want)
	}
}

func assertWarning(t *testing.T, ws []string, part string) {
	t.Helper()
	if !harness.HasWarning(ws, part) {
		t.Fatalf("no warning containing %q in %q", part, ws)
	}
}
