package app

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/replica-policy/replica-policy/internal/harness"
)

const kedaPolicy = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
rules:
- {name: cap, namespaces: [prod], minReplicas: 1, maxReplicas: 10}
`

var scaledObjects = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}

// TestScaledObjectsAgainstAPIServer: with manifests/components/keda and KEDA's own
// ScaledObject CRD (KEDA v2.21.1, from the Go module proxy), a ScaledObject whose
// maxReplicaCount leaves its target's bounds is clamped where KEDA reads it, so the HPA KEDA
// writes from it stays inside them; an update that leaves the range alone never reaches
// the webhook. (KEDA's operator itself, which reads the ScaledObject as the API server stores
// it and writes the HPA, runs in test/e2e's TestKEDAOperatorWithTheHPAController.)
func TestScaledObjectsAgainstAPIServer(t *testing.T) {
	crd, err := harness.KEDAScaledObjectCRD()
	if err != nil {
		t.Fatal(err)
	}
	manifests := harness.ComponentManifests(t, "keda", "keda.yaml", nil)
	f := launchWebhookOn(t, harness.ControlPlaneOptions{WebhookPaths: []string{manifests}, CRDPaths: []string{crd}}, func(*harness.ControlPlane, *Options) {})
	f.waitReady(t)
	ctx := context.Background()
	createNamespaces(t, f.client, "prod")
	if err := harness.SetPolicy(ctx, f.client, kedaPolicy); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.AppsV1().Deployments("prod").Create(ctx, harness.Deployment("prod", "web", 3, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(f.env.Config)
	cfg.WarningHandler = f.warns
	sos := dynamic.NewForConfigOrDie(cfg).Resource(scaledObjects).Namespace("prod")
	scaledObject := func(name string, maxReplicas int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
			"metadata": map[string]any{"name": name, "namespace": "prod"},
			"spec": map[string]any{
				"scaleTargetRef":  map[string]any{"name": "web"},
				"minReplicaCount": int64(1), "maxReplicaCount": maxReplicas,
				"triggers": []any{map[string]any{"type": "cron", "metadata": map[string]any{
					"timezone": "UTC", "start": "0 8 * * *", "end": "0 18 * * *", "desiredReplicas": "5"}}},
			},
		}}
	}
	storedMax := func(so *unstructured.Unstructured) int64 {
		v, _, _ := unstructured.NestedInt64(so.Object, "spec", "maxReplicaCount")
		return v
	}
	// The policy is in force once a dry run is clamped.
	harness.Eventually(t, 15*time.Second, 100*time.Millisecond, "the policy clamps ScaledObjects", func() bool {
		so, err := sos.Create(ctx, scaledObject("probe", 30), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && storedMax(so) == 10
	})
	f.warns.Take()

	so, err := sos.Create(ctx, scaledObject("web", 30), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := storedMax(so); got != 10 {
		t.Errorf("ScaledObject stored with maxReplicaCount %d, want 10", got)
	}
	want := `ScaledObject "web": spec.maxReplicaCount 30 clamped to 10 by replica policy rule "cap"`
	if ws := f.warns.Take(); !strings.Contains(strings.Join(ws, "\n"), want) {
		t.Errorf("warnings %q lack %q", ws, want)
	}

	// An update of its triggers alone leaves the range as it is (the range-changed condition
	// skips the webhook); one that raises the range is clamped again.
	so.Object["spec"].(map[string]any)["triggers"].([]any)[0].(map[string]any)["metadata"].(map[string]any)["desiredReplicas"] = "10"
	if so, err = sos.Update(ctx, so, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ws := f.warns.Take(); len(ws) != 0 {
		t.Errorf("a triggers-only update was warned about: %q", ws)
	}
	_ = unstructured.SetNestedField(so.Object, int64(50), "spec", "maxReplicaCount")
	if so, err = sos.Update(ctx, so, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := storedMax(so); got != 10 {
		t.Errorf("maxReplicaCount raised to 50 stored as %d, want 10", got)
	}

	// spec.idleReplicaCount is decided as the range is: 0 needs allowZero, so it is moved to
	// the lower bound 1 while that stays below minReplicaCount, and removed when it would not
	// (KEDA refuses an idleReplicaCount that is not below minReplicaCount).
	f.warns.Take()
	idle := func(so *unstructured.Unstructured) (int64, bool) {
		v, found, _ := unstructured.NestedInt64(so.Object, "spec", "idleReplicaCount")
		return v, found
	}
	moved := scaledObject("idle-moved", 10)
	_ = unstructured.SetNestedField(moved.Object, int64(3), "spec", "minReplicaCount")
	_ = unstructured.SetNestedField(moved.Object, int64(0), "spec", "idleReplicaCount")
	if moved, err = sos.Create(ctx, moved, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, found := idle(moved); !found || v != 1 {
		t.Errorf("idleReplicaCount 0 stored as %d (set %t), want 1", v, found)
	}
	want = `ScaledObject "idle-moved": spec.idleReplicaCount 0 clamped to 1 by replica policy rule "cap"`
	if ws := f.warns.Take(); !slices.Contains(ws, want) {
		t.Errorf("warnings %q lack %q", ws, want)
	}
	// An update of idleReplicaCount alone reaches the webhook (the range-changed condition
	// reads it) and is clamped again.
	_ = unstructured.SetNestedField(moved.Object, int64(0), "spec", "idleReplicaCount")
	if moved, err = sos.Update(ctx, moved, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, found := idle(moved); !found || v != 1 {
		t.Errorf("idleReplicaCount lowered to 0 stored as %d (set %t), want 1", v, found)
	}
	removed := scaledObject("idle-removed", 10)
	_ = unstructured.SetNestedField(removed.Object, int64(0), "spec", "idleReplicaCount")
	if removed, err = sos.Create(ctx, removed, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, found := idle(removed); found {
		t.Errorf("idleReplicaCount 0 under minReplicaCount 1 stored as %d, want it removed", v)
	}
	want = `ScaledObject "idle-removed": spec.idleReplicaCount 0 removed by replica policy rule "cap": its nearest bound 1 is not below spec.minReplicaCount 1, as KEDA requires, so the ScaledObject idles at spec.minReplicaCount`
	if ws := f.warns.Take(); !slices.Contains(ws, want) {
		t.Errorf("warnings %q lack %q", ws, want)
	}
}
