package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// KEDA's operator (github.com/kedacore/keda/v2 at harness.KEDAVersion, built by
// hack/keda-operator.sh) with KEDA's own CRDs, beside the real HPA controller: the HPA that
// KEDA writes from a ScaledObject, with and without replica-policy deciding ScaledObjects.
//
// The baseline ("before") is a ScaledObject created while the webhook configuration lacks
// the rule manifests/components/keda adds: KEDA writes its HPA with the ScaledObject's range
// [20, 30], the HPA entry lets it in with the warning for an HPA that a controller owns
// (never patched: KEDA would write it back), and only the clamp of scale writes is left.
// Without a metrics API the HPA controller scales whenever replicas are outside the range,
// as it would for load: every sync period it writes 20 to the Deployment's scale, the clamp
// answers 10, and it records one more SuccessfulRescale for a size that never happens. With
// the rule ("after") the same ScaledObject is clamped to [10, 10] where it is written, KEDA
// writes its HPA as [10, 10] and keeps it, and the controller goes quiet after one rescale.
// Both run side by side in the same window.

const kedaOperatorPolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- name: keda-cap
  namespaces: ["keda-*"]
  maxReplicas: 10
`

// kedaHPA is the name KEDA gives the HPA of ScaledObject "web".
const kedaHPA = "keda-hpa-web"

// scaledObjectManifest is ScaledObject name in namespace for Deployment web, with the range
// [20, 30] and a cpu trigger: KEDA polls nothing for it (the HPA reads the metric) and holds
// the ScaledObject active, so KEDA's own loop never writes the Deployment's scale here.
func scaledObjectManifest(namespace, name string) string {
	return fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: %s, namespace: %s}
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 20
  maxReplicaCount: 30
  triggers:
  - type: cpu
    metricType: Utilization
    metadata: {value: "60"}
`, name, namespace)
}

// kedaComponentHPARules returns, as JSON, the rules that manifests/components/keda gives the
// webhook entry hpa.replicapolicy.io in built (the component's manifests).
func kedaComponentHPARules(t *testing.T, built string) string {
	t.Helper()
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.Unmarshal([]byte(harness.ManifestOfKind(built, "MutatingWebhookConfiguration")), &mwc); err != nil {
		t.Fatal(err)
	}
	for _, w := range mwc.Webhooks {
		if w.Name == "hpa.replicapolicy.io" {
			b, err := json.Marshal(w.Rules)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "scaledobjects") {
				t.Fatalf("the keda component's hpa.replicapolicy.io rules lack scaledobjects: %s", b)
			}
			return string(b)
		}
	}
	t.Fatal("the keda component has no webhook entry hpa.replicapolicy.io")
	return ""
}

func TestKEDAOperatorWithTheHPAController(t *testing.T) {
	operator, err := harness.KEDAOperator()
	if err != nil {
		t.Fatal(err)
	}
	if operator == "" {
		t.Skip("KEDA's operator is not built: run hack/keda-operator.sh first (make test does; the first build takes many minutes)")
	}
	bin, c, admin := setup(t, startCluster)
	ctx := context.Background()

	crds, err := harness.KEDACRDs()
	if err != nil {
		t.Fatal(err)
	}
	// Server-side: the ScaledJob CRD is too large for the annotation of a client-side apply.
	kubectl(t, c, "apply", "--server-side", "-f", crds)
	kubectl(t, c, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
	built := applyComponentRole(t, c, "keda", "scaledobjects")
	if err := harness.SetPolicy(ctx, admin, kedaOperatorPolicy); err != nil {
		t.Fatal(err)
	}
	runWebhook(t, c, harness.WebhookOptions{Binary: bin, Name: "keda"})
	hpac, err := c.StartHPAController(ctx, hpaSyncPeriod)
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, c, "create", "namespace", "keda")
	keda, err := c.StartKEDAOperator(ctx, operator)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keda.Stop()
		hpac.Stop()
		if t.Failed() {
			t.Logf("KEDA operator log:\n%s", harness.TailLines(keda.Log(), 40))
			t.Logf("kube-controller-manager log:\n%s", harness.TailLines(hpac.Log(), 40))
		}
	})
	createDeployments(t, c, admin, "web", 3, map[string]string{"app": "web"}, "keda-fight", "keda-peace")
	waitClampReady(t, c, "keda-peace", "web", 40)

	soRange := func(ns string) string {
		return strings.TrimSpace(kubectl(t, c, "-n", ns, "get", "scaledobject", "web", "-o", "jsonpath=[{.spec.minReplicaCount}, {.spec.maxReplicaCount}]"))
	}
	waitKEDAHPA := func(ns, want string) {
		t.Helper()
		harness.Eventually(t, 60*time.Second, poll, fmt.Sprintf("KEDA's HPA %s/%s with range %s", ns, kedaHPA, want), func() (bool, string) {
			out, err := c.KubectlCmd(ctx, "-n", ns, "get", "hpa", kedaHPA, "-o", "jsonpath=[{.spec.minReplicas}, {.spec.maxReplicas}]")
			return err == nil && strings.TrimSpace(out) == want, out
		})
	}
	dryRunSO := func(ns string) string {
		out, _ := c.KubectlStdin(ctx, scaledObjectManifest(ns, "probe"), "apply", "--dry-run=server", "-f", "-")
		return out
	}

	// The baseline: manifests/base, whose webhook configuration does not name ScaledObjects.
	if out := dryRunSO("keda-fight"); strings.Contains(out, "clamped") {
		t.Fatalf("manifests/base sends ScaledObjects to the webhook:\n%s", out)
	}
	kubectlStdin(t, c, scaledObjectManifest("keda-fight", "web"), "apply", "-f", "-")
	if got := soRange("keda-fight"); got != "[20, 30]" {
		t.Fatalf("baseline ScaledObject stored as %s, want [20, 30] (unclamped)", got)
	}
	waitKEDAHPA("keda-fight", "[20, 30]")
	// KEDA's client logs the API server's warnings: the HPA entry warned, and let it be.
	harness.Eventually(t, 10*time.Second, poll, "KEDA's operator logs the warning for its HPA", func() (bool, string) {
		log := keda.Log()
		return strings.Contains(log, "keda-hpa-web") && strings.Contains(log, "controlled by ScaledObject"), ""
	})

	// With manifests/components/keda: its rules for the HPA entry, which add ScaledObjects.
	kubectl(t, c, "patch", "mutatingwebhookconfiguration", "replica-policy", "--type=json",
		"-p", fmt.Sprintf(`[{"op":"replace","path":"/webhooks/%d/rules","value":`, webhookIndex(t, c, "hpa.replicapolicy.io"))+kedaComponentHPARules(t, built)+`}]`)
	harness.Eventually(t, 10*time.Second, poll, "the API server sends ScaledObjects to the webhook", func() (bool, string) {
		out := dryRunSO("keda-peace")
		return strings.Contains(out, "clamped"), out
	})
	out := kubectlStdin(t, c, scaledObjectManifest("keda-peace", "web"), "apply", "-f", "-")
	for _, want := range []string{
		`Warning: ScaledObject "web": spec.minReplicaCount 20 clamped to 10 by replica policy rule "keda-cap"`,
		`Warning: ScaledObject "web": spec.maxReplicaCount 30 clamped to 10 by replica policy rule "keda-cap"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply output lacks %q:\n%s", want, out)
		}
	}
	if got := soRange("keda-peace"); got != "[10, 10]" {
		t.Fatalf("ScaledObject stored as %s, want [10, 10]", got)
	}
	waitKEDAHPA("keda-peace", "[10, 10]")
	hpaGeneration := func(ns string) int64 {
		h, err := admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, kedaHPA, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return h.Generation
	}
	fightGen, peaceGen := hpaGeneration("keda-fight"), hpaGeneration("keda-peace")
	start := time.Now()
	time.Sleep(hpaWindow)

	for name, p := range map[string]*harness.Process{"kube-controller-manager": hpac, "KEDA's operator": keda} {
		if exited, err := p.Exited(); exited {
			t.Fatalf("%s exited: %v\n%s", name, err, harness.TailLines(p.Log(), 40))
		}
	}
	status := func(ns string) (rescaled, desired, replicas int32, hpa string) {
		n, err := rescales(ctx, admin, ns, kedaHPA)
		if err != nil {
			t.Fatal(err)
		}
		h, err := admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, kedaHPA, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := replicasOf(ctx, admin, ns, "web")
		if err != nil {
			t.Fatal(err)
		}
		return n, h.Status.DesiredReplicas, r, fmt.Sprintf("[%d, %d]", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	fight, fightDesired, fightReplicas, fightRange := status("keda-fight")
	peace, peaceDesired, peaceReplicas, peaceRange := status("keda-peace")
	t.Logf("KEDA %s, over %v with a %v HPA sync period: ScaledObject [20, 30] not decided (its HPA %s under the controlled-HPA warning): %d SuccessfulRescale (desiredReplicas %d, Deployment at %d); decided (clamped to [10, 10], its HPA %s): %d (desiredReplicas %d, Deployment at %d)",
		harness.KEDAVersion, time.Since(start).Round(time.Second), hpaSyncPeriod,
		fightRange, fight, fightDesired, fightReplicas, peaceRange, peace, peaceDesired, peaceReplicas)

	// The baseline fights: a rescale every sync, none of which happens.
	if fight < 3 || fightReplicas != 10 || fightDesired != 20 || fightRange != "[20, 30]" {
		t.Errorf("baseline: HPA %s, %d SuccessfulRescale, desiredReplicas %d, Deployment at %d; want a fight ([20, 30], at least 3, 20, 10)", fightRange, fight, fightDesired, fightReplicas)
	}
	// Decided: one rescale to 10, then quiet, a true desiredReplicas, and the HPA as KEDA
	// wrote it, never rewritten in the window.
	if peace > 1 || peaceReplicas != 10 || peaceDesired != peaceReplicas || peaceRange != "[10, 10]" {
		t.Errorf("decided: HPA %s, %d SuccessfulRescale, desiredReplicas %d, Deployment at %d; want [10, 10], at most 1, and desiredReplicas = replicas = 10", peaceRange, peace, peaceDesired, peaceReplicas)
	}
	if f, p := hpaGeneration("keda-fight"), hpaGeneration("keda-peace"); f != fightGen || p != peaceGen {
		t.Errorf("KEDA's HPAs were rewritten during the window: generation %d -> %d (baseline), %d -> %d (decided)", fightGen, f, peaceGen, p)
	}

	// KEDA owns its HPA: an edit of the HPA's range is written back from the ScaledObject,
	// which is why the webhook never patches such an HPA, and why the range is decided at the
	// ScaledObject.
	t.Run("KEDA writes its HPA's range back from the ScaledObject", func(t *testing.T) {
		for _, e := range []struct{ ns, patch, stored string }{
			{"keda-fight", `{"spec":{"minReplicas":10,"maxReplicas":10}}`, "[10, 10]"},
			{"keda-peace", `{"spec":{"maxReplicas":30}}`, "[10, 30]"}, // warned about, not clamped
		} {
			out := kubectl(t, c, "-n", e.ns, "patch", "hpa", kedaHPA, "--type=merge", "-p", e.patch, "-o", "jsonpath=[{.spec.minReplicas}, {.spec.maxReplicas}]")
			if !strings.Contains(out, e.stored) {
				t.Errorf("%s/%s patched with %s: stored %q, want %s", e.ns, kedaHPA, e.patch, out, e.stored)
			}
		}
		waitKEDAHPA("keda-fight", "[20, 30]")
		waitKEDAHPA("keda-peace", "[10, 10]")
	})
}
