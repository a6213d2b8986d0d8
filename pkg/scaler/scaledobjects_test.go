package scaler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/scaler"
)

var scaledObjectsResource = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}

// TestScaledObjects: the scaler starts and corrects workloads where KEDA is not installed
// (no ScaledObject is listed or watched); once KEDA's own ScaledObject CRD (v2.21.1) is
// installed, the next full pass starts the watch, and ScaledObjects whose range or
// idleReplicaCount leaves their target's bounds are reported (Event ScaledObjectOutOfBounds
// on the ScaledObject, the scaledobjects gauge), never written. A scaler that may not list
// ScaledObjects (KEDA installed, the keda component not) runs as before and reports none.
func TestScaledObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	crd, err := harness.KEDAScaledObjectCRD()
	if err != nil {
		t.Fatal(err)
	}
	env := harness.StartControlPlane(t, harness.ControlPlaneOptions{})
	cfg, cs := env.Config, env.Client
	ns := newNamespace(t, cs, nil)
	rule := "so-" + suffix()
	store := newStore()
	doc := fmt.Sprintf("rules:\n- {name: %s, namespaces: [%s], minReplicas: 2, maxReplicas: 10}\n", rule, ns)
	applyPolicy(t, store, doc)
	createDeployment(t, cs, ns, "web", 30, nil)
	run := startScaler(t, cfg, store, testOptions(), nil, nil)
	// Without KEDA the scaler works as before.
	waitReplicas(t, cs, ns, "web", 10, 20*time.Second)

	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{crd}, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(cfg)
	sos := dyn.Resource(scaledObjectsResource).Namespace(ns)
	createIn := func(ns, name string, spec map[string]any) *unstructured.Unstructured {
		spec["scaleTargetRef"] = map[string]any{"name": "web"}
		spec["triggers"] = []any{map[string]any{"type": "cron", "metadata": map[string]any{
			"timezone": "UTC", "start": "0 8 * * *", "end": "0 18 * * *", "desiredReplicas": "5"}}}
		so, err := dyn.Resource(scaledObjectsResource).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
			"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec,
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return so
	}
	create := func(name string, spec map[string]any) *unstructured.Unstructured { return createIn(ns, name, spec) }
	wide := create("wide", map[string]any{"minReplicaCount": int64(2), "maxReplicaCount": int64(30)})
	idle := create("idle", map[string]any{"idleReplicaCount": int64(0), "minReplicaCount": int64(3), "maxReplicaCount": int64(10)})
	create("inside", map[string]any{"minReplicaCount": int64(2), "maxReplicaCount": int64(10)})

	// A policy change is a full pass, which finds the CRD served and starts the watch.
	applyPolicy(t, store, doc+fmt.Sprintf("- {name: other-%s, namespaces: [nowhere], maxReplicas: 1}\n", rule))
	const tail = ": KEDA writes it into the HPA it owns, which then asks for sizes the bounds forbid; set it inside the bounds (the scaler never changes a ScaledObject)"
	want := map[string]string{
		"wide": fmt.Sprintf(`ScaledObject "wide": spec.maxReplicaCount: Invalid value: 30: must be within [2, 10] (replica policy rule %q, action clamp)`, rule) + tail,
		"idle": fmt.Sprintf(`ScaledObject "idle": spec.idleReplicaCount: Invalid value: 0: must be within [2, 10] (replica policy rule %q, action clamp)`, rule) + tail,
	}
	harness.Eventually(t, 20*time.Second, poll, "ScaledObjectOutOfBounds Events", func() error {
		got := events(t, cs, ns, scaler.ReasonScaledObjectOutOfBounds)
		if len(got) != len(want) {
			return fmt.Errorf("Events on %d ScaledObjects, want %d: %v", len(got), len(want), got)
		}
		for name, note := range want {
			if len(got[name]) != 1 || got[name][0].Note != note || got[name][0].Regarding.Kind != "ScaledObject" {
				return fmt.Errorf("Events on %s: %+v\nwant one with note %s", name, got[name], note)
			}
		}
		return nil
	})
	gauge := func() float64 {
		v, _ := metric(t, "replicapolicy_scaler_scaledobjects_out_of_bounds", map[string]string{"rule": rule, "action": "clamp"})
		return v
	}
	if g := gauge(); g != 2 {
		t.Errorf("replicapolicy_scaler_scaledobjects_out_of_bounds{rule=%q} = %v, want 2", rule, g)
	}
	if g, _ := metric(t, "replicapolicy_scaler_autoscalers_out_of_bounds", map[string]string{"rule": rule}); g != 0 {
		t.Errorf("ScaledObjects counted among HPAs: %v", g)
	}

	// Never written: the ScaledObjects are as they were created.
	for _, so := range []*unstructured.Unstructured{wide, idle} {
		got, err := sos.Get(ctx, so.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetResourceVersion() != so.GetResourceVersion() {
			t.Errorf("ScaledObject %s was written (resourceVersion %s, created %s)", so.GetName(), got.GetResourceVersion(), so.GetResourceVersion())
		}
	}

	// A change of the range is watched: moved inside the bounds, it is no longer counted.
	_ = unstructured.SetNestedField(wide.Object, int64(10), "spec", "maxReplicaCount")
	if _, err := sos.Update(ctx, wide, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, poll, "the gauge after the fix", func() (bool, string) {
		return gauge() == 1, fmt.Sprintf("gauge %v, want 1", gauge())
	})
	if c := run.R.Counts(); c.Corrections != 1 {
		t.Errorf("counts %+v: want the one correction of the Deployment", c)
	}

	// KEDA installed, but not the keda component's read right: a scaler that may not list
	// ScaledObjects starts, corrects workloads and reports no ScaledObject.
	const user = "scaler-without-keda"
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"", "apps", "autoscaling", "events.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	restricted := rest.CopyConfig(cfg)
	restricted.Impersonate = rest.ImpersonationConfig{UserName: user}
	ns2 := newNamespace(t, cs, nil)
	store2 := newStore()
	doc2 := fmt.Sprintf("rules:\n- {name: %s-2, namespaces: [%s], minReplicas: 2, maxReplicas: 10}\n", rule, ns2)
	applyPolicy(t, store2, doc2)
	createDeployment(t, cs, ns2, "web", 30, nil)
	createIn(ns2, "wide", map[string]any{"maxReplicaCount": int64(30)})
	// RBAC reaches the authorizer through an informer: the cache syncs once it has.
	run2 := startScaler(t, restricted, store2, testOptions(), nil, nil)
	waitReplicas(t, cs, ns2, "web", 10, 20*time.Second)
	before := run2.R.Counts().Reconciles
	applyPolicy(t, store2, doc2+fmt.Sprintf("- {name: other2-%s, namespaces: [nowhere], maxReplicas: 1}\n", rule))
	harness.Eventually(t, 10*time.Second, poll, "a full pass", func() bool { return run2.R.Counts().Reconciles > before })
	if got := events(t, cs, ns2, scaler.ReasonScaledObjectOutOfBounds); len(got) != 0 {
		t.Errorf("a scaler that may not list ScaledObjects reported %v", got)
	}
}
