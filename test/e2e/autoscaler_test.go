package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// HorizontalPodAutoscalers against the real HPA controller (kube-controller-manager with
// only --controllers=horizontalpodautoscaling, no metrics API: it scales whenever replicas
// are outside [minReplicas, maxReplicas]).
//
// The baseline is an HPA created while the webhook configuration lacks the HPA rule (only
// the clamp of scale writes active): every sync period it writes 20 to the Deployment's
// scale, the clamp answers 10, and it records one more SuccessfulRescale for a size that
// never happens. The same HPA created with the rule is clamped to [10, 10] at creation and
// the controller goes quiet after one rescale. Both run side by side in the same minute.

// hpaSyncPeriod is the HPA controller's sync period here: a third of its 15 s default, so
// that a minute shows a dozen syncs.
const hpaSyncPeriod = 5 * time.Second

// hpaWindow is how long the fight is watched.
const hpaWindow = 60 * time.Second

const autoscalerPolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- name: databases
  namespaces: ["hpa-*"]
  kinds: [StatefulSet]
  minReplicas: 3
  maxReplicas: 5
- name: hpa-deny
  namespaces: [hpa-deny]
  maxReplicas: 10
  action: deny
- name: hpa-zero
  namespaces: [hpa-zero]
  minReplicas: 2
  maxReplicas: 10
  allowZero: true
- name: hpa-nozero
  namespaces: [hpa-nozero]
  minReplicas: 2
  maxReplicas: 10
- name: hpa-cap
  namespaces: ["hpa-*"]
  maxReplicas: 10
`

// hpaManifest is an HPA of apiVersion (autoscaling/v1 or v2) for targetKind/target.
func hpaManifest(apiVersion, namespace, name, targetKind, target string, minReplicas, maxReplicas int) string {
	return fmt.Sprintf(`apiVersion: %s
kind: HorizontalPodAutoscaler
metadata: {name: %s, namespace: %s}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: %s, name: %s}
  minReplicas: %d
  maxReplicas: %d
`, apiVersion, name, namespace, targetKind, target, minReplicas, maxReplicas)
}

// rescales sums the count of the SuccessfulRescale Events of HPA namespace/name: the HPA
// controller's recorder merges repeats into one Event and counts them.
func rescales(ctx context.Context, cs kubernetes.Interface, namespace, name string) (int32, error) {
	list, err := cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.kind": "HorizontalPodAutoscaler", "involvedObject.name": name, "reason": "SuccessfulRescale"}.String()})
	if err != nil {
		return 0, err
	}
	var n int32
	for _, e := range list.Items {
		n += max(e.Count, 1)
	}
	return n, nil
}

// hpaRange reads the stored range of HPA namespace/name as "[min, max]".
func hpaRange(t *testing.T, c *harness.Cluster, namespace, name string) string {
	t.Helper()
	return strings.TrimSpace(kubectl(t, c, "-n", namespace, "get", "hpa", name, "-o", "jsonpath=[{.spec.minReplicas}, {.spec.maxReplicas}]"))
}

// applyHPA applies manifest with kubectl, wants each of warnings in its output and the HPA
// namespace/name stored with the range want ("[min, max]").
func applyHPA(t *testing.T, c *harness.Cluster, manifest, namespace, name, want string, warnings ...string) {
	t.Helper()
	out := kubectlStdin(t, c, manifest, "apply", "-f", "-")
	for _, w := range warnings {
		if !strings.Contains(out, w) {
			t.Errorf("kubectl apply output lacks %q:\n%s", w, out)
		}
	}
	if got := hpaRange(t, c, namespace, name); got != want {
		t.Fatalf("HPA %s/%s stored as %s, want %s", namespace, name, got, want)
	}
}

func TestAutoscalersWithTheHPAController(t *testing.T) {
	bin, c, admin := setup(t, startCluster)
	ctx := context.Background()
	if err := harness.SetPolicy(ctx, admin, autoscalerPolicy); err != nil {
		t.Fatal(err)
	}
	w := runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "hpa"})
	hpac, err := c.StartHPAController(ctx, hpaSyncPeriod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hpac.Stop()
		if t.Failed() {
			t.Logf("kube-controller-manager log:\n%s", harness.TailLines(hpac.Log(), 40))
		}
	})
	createDeployments(t, c, admin, "web", 3, map[string]string{"app": "web"}, "hpa-fight", "hpa-peace", "hpa-deny")
	// The webhook's cache has the Deployments once a dry-run scale is clamped.
	waitClampReady(t, c, "hpa-peace", "web", 40)

	// The baseline: the HPA rule taken out of the webhook configuration, so that only the
	// clamp of scale writes is active, as before replica-policy handled HPAs.
	hpaEntry := webhookIndex(t, c, "hpa.replicapolicy.io")
	mwc := kubectl(t, c, "get", "mutatingwebhookconfiguration", "replica-policy", "-o", fmt.Sprintf("jsonpath={.webhooks[%d].rules[0].resources[0]}", hpaEntry))
	if mwc != "horizontalpodautoscalers" {
		t.Fatalf("webhooks[%d].rules[0] is %q, not the HPA rule", hpaEntry, mwc)
	}
	kubectl(t, c, "patch", "mutatingwebhookconfiguration", "replica-policy", "--type=json",
		"-p", fmt.Sprintf(`[{"op":"remove","path":"/webhooks/%d/rules/0"}]`, hpaEntry))
	dryRunHPA := func(ns string) string {
		out, _ := c.KubectlStdin(ctx, hpaManifest("autoscaling/v2", ns, "probe", "Deployment", "web", 1, 30), "apply", "--dry-run=server", "-f", "-")
		return out
	}
	harness.Eventually(t, 10*time.Second, poll, "the API server no longer sends HPAs to the webhook", func() (bool, string) {
		out := dryRunHPA("hpa-fight")
		return !strings.Contains(out, "clamped"), out
	})
	kubectlStdin(t, c, hpaManifest("autoscaling/v2", "hpa-fight", "web", "Deployment", "web", 20, 30), "apply", "-f", "-")
	if got := hpaRange(t, c, "hpa-fight", "web"); got != "[20, 30]" {
		t.Fatalf("baseline HPA stored as %s, want [20, 30] (unclamped)", got)
	}
	kubectl(t, c, "patch", "mutatingwebhookconfiguration", "replica-policy", "--type=json", "-p",
		fmt.Sprintf(`[{"op":"add","path":"/webhooks/%d/rules","value":[{"apiGroups":["autoscaling"],"apiVersions":["v2"],"operations":["CREATE","UPDATE"],"resources":["horizontalpodautoscalers"],"scope":"Namespaced"}]}]`, hpaEntry))
	harness.Eventually(t, 10*time.Second, poll, "the API server sends HPAs to the webhook again", func() (bool, string) {
		out := dryRunHPA("hpa-peace")
		return strings.Contains(out, "clamped"), out
	})

	// With the HPA handling: clamped at creation, with the warning kubectl prints.
	applyHPA(t, c, hpaManifest("autoscaling/v2", "hpa-peace", "web", "Deployment", "web", 20, 30), "hpa-peace", "web", "[10, 10]",
		`Warning: HorizontalPodAutoscaler "web": spec.minReplicas 20 clamped to 10 by replica policy rule "hpa-cap"`,
		`Warning: HorizontalPodAutoscaler "web": spec.maxReplicas 30 clamped to 10 by replica policy rule "hpa-cap"`)
	decisionsBefore, _ := w.Metric("replicapolicy_admission_decisions_total", `kind="HorizontalPodAutoscaler"`)
	start := time.Now()

	t.Run("a deny rule rejects the HPA at kubectl apply", func(t *testing.T) {
		out, err := c.KubectlStdin(ctx, hpaManifest("autoscaling/v2", "hpa-deny", "web", "Deployment", "web", 2, 30), "apply", "-f", "-")
		want := `HorizontalPodAutoscaler "web": spec.maxReplicas: Invalid value: 30: must be within [0, 10] (replica policy rule "hpa-deny", action deny)`
		if err == nil || !strings.Contains(out, "denied the request") || !strings.Contains(out, want) {
			t.Fatalf("kubectl apply: err %v, output lacks %q:\n%s", err, want, out)
		}
		if out, err := c.KubectlCmd(ctx, "-n", "hpa-deny", "get", "hpa", "web"); err == nil {
			t.Errorf("the denied HPA exists:\n%s", out)
		}
	})

	t.Run("an autoscaling/v1 HPA of a StatefulSet is bounded by a kinds rule", func(t *testing.T) {
		if _, err := admin.AppsV1().StatefulSets("hpa-peace").Create(ctx, harness.StatefulSet("hpa-peace", "db", 3, map[string]string{"app": "db"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		applyHPA(t, c, hpaManifest("autoscaling/v1", "hpa-peace", "db", "StatefulSet", "db", 1, 9), "hpa-peace", "db", "[3, 5]",
			`Warning: HorizontalPodAutoscaler "db": spec.minReplicas 1 clamped to 3 by replica policy rule "databases"`,
			`Warning: HorizontalPodAutoscaler "db": spec.maxReplicas 9 clamped to 5 by replica policy rule "databases"`)
	})

	t.Run("an update that leaves range and target alone never calls the webhook", func(t *testing.T) {
		kubectl(t, c, "-n", "hpa-peace", "patch", "hpa", "web", "--type=merge", "-p",
			`{"spec":{"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":60}}}]}}`)
		// Counted with the rest at the end of the window: no decision for this patch.
	})

	t.Run("the scaler reports the HPA created without the handling", func(t *testing.T) {
		e := waitEvent(t, admin, "hpa-fight", "HorizontalPodAutoscaler", "web", "HPAOutOfBounds", 15*time.Second)
		want := `HorizontalPodAutoscaler "web": spec.minReplicas: Invalid value: 20: must be within [0, 10] (replica policy rule "hpa-cap", action clamp)`
		if !strings.Contains(e.Note, want) || e.Type != corev1.EventTypeWarning {
			t.Errorf("HPAOutOfBounds Event %s %q lacks %q", e.Type, e.Note, want)
		}
		if v, err := w.Metric("replicapolicy_scaler_autoscalers_out_of_bounds", `rule="hpa-cap"`, `action="clamp"`); err != nil || v != 1 {
			t.Errorf("replicapolicy_scaler_autoscalers_out_of_bounds{rule=hpa-cap} = %v (%v), want 1", v, err)
		}
	})

	t.Run("scale to zero: allowZero decides an HPA's minReplicas 0 and a workload at 0", func(t *testing.T) {
		checkScaleToZero(t, c, admin)
	})

	if rest := hpaWindow - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	if exited, err := hpac.Exited(); exited {
		t.Fatalf("kube-controller-manager exited: %v\n%s", err, harness.TailLines(hpac.Log(), 40))
	}
	fight, err := rescales(ctx, admin, "hpa-fight", "web")
	if err != nil {
		t.Fatal(err)
	}
	peace, err := rescales(ctx, admin, "hpa-peace", "web")
	if err != nil {
		t.Fatal(err)
	}
	status := func(ns string) (desired int32, replicas int32) {
		h, err := admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := replicasOf(ctx, admin, ns, "web")
		if err != nil {
			t.Fatal(err)
		}
		return h.Status.DesiredReplicas, r
	}
	fightDesired, fightReplicas := status("hpa-fight")
	peaceDesired, peaceReplicas := status("hpa-peace")
	t.Logf("over %v with a %v sync period: without the HPA handling %d SuccessfulRescale (desiredReplicas %d, Deployment at %d); with it %d (desiredReplicas %d, Deployment at %d)",
		time.Since(start).Round(time.Second), hpaSyncPeriod, fight, fightDesired, fightReplicas, peace, peaceDesired, peaceReplicas)

	// The baseline fights: a rescale every sync, none of which happens.
	if fight < 3 || fightReplicas != 10 || fightDesired != 20 {
		t.Errorf("baseline: %d SuccessfulRescale, desiredReplicas %d, Deployment at %d; want a fight (at least 3, 20, 10)", fight, fightDesired, fightReplicas)
	}
	// With the handling: one rescale to 10, then quiet, and a true desiredReplicas.
	if peace > 1 || peaceReplicas != 10 || peaceDesired != peaceReplicas {
		t.Errorf("with the HPA handling: %d SuccessfulRescale, desiredReplicas %d, Deployment at %d; want at most 1, and desiredReplicas = replicas = 10", peace, peaceDesired, peaceReplicas)
	}
	// The controller's status writes (every sync of three HPAs) never called the webhook:
	// they go to horizontalpodautoscalers/status, which the configuration does not name.
	// Only the four kubectl applies of the subtests did; the metrics patch was skipped by the
	// matchCondition.
	if after, err := w.Metric("replicapolicy_admission_decisions_total", `kind="HorizontalPodAutoscaler"`); err != nil || after-decisionsBefore != 4 {
		t.Errorf("HPA admission decisions during the window: %v (%v), want 4 (the deny, the StatefulSet's HPA and the two scale-to-zero HPAs)", after-decisionsBefore, err)
	}
}
